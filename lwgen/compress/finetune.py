"""Compression fine-tuning: from a trained workdir to a new, normal workdir of a compressed model.

``compress_workdir`` restores the source's full ``GANState``, builds the compressed config (the
source config plus a ``compress`` group, and for structured pruning the smaller
``model.generator.widths``), writes the initial state of the compressed run as the step-0
checkpoint of the new workdir and trains it with ``lwgen.train.loop.train``. Because the new
workdir is self-contained (its ``make_setup`` applies the ``compress`` group), it resumes with
the training loop, and ``lwgen.train.checkpoint.restore_generator`` and the exporter read it
like any other workdir.

The fine-tune starts from the source generator (EMA or raw weights) and discriminator with fresh
Adam moments. For unstructured pruning the generator EMA is switched off
(``optim.ema_decay = 0``, so the EMA equals the trained weights): an average of a weight that
has been pruned decays towards zero but never reaches it, and the EMA is what gets exported.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from lwgen.compress import fake_quant
from lwgen.compress.setup import calibrate_quant_stats, compress_group
from lwgen.compress.structured import prune_generator_channels
from lwgen.train import checkpoint
from lwgen.train.loop import make_setup, train
from lwgen.train.state import GANState, build_models

RESUMED_KEYS = ("method", "amount", "source_params", "scope")


def restore_source(workdir: str) -> tuple[ml_collections.ConfigDict, GANState]:
    """The config and latest full ``GANState`` of a trained workdir.

    Raises:
      FileNotFoundError: if ``workdir`` has no ``config.json`` or no checkpoint.
    """
    config = checkpoint.read_config(workdir)
    manager = checkpoint.checkpoint_manager(workdir, config.train.keep_checkpoints)
    state = checkpoint.restore_state(manager, jax.eval_shape(make_setup(config).init_state))
    if state is None:
        raise FileNotFoundError(f"no checkpoints in {os.path.join(workdir, 'checkpoints')}")
    return config, state


def _generator_variables(state: GANState, source_params: str) -> dict[str, Any]:
    params = state.ema_params if source_params == "ema" else state.g_params
    return {"params": params, "batch_stats": state.g_state["batch_stats"]}


def compressed_config(
    source_config: ml_collections.ConfigDict, group: ml_collections.ConfigDict, num_steps: int
) -> ml_collections.ConfigDict:
    """The source config with ``compress = group``, ``num_train_steps = num_steps`` and the EMA
    off for unstructured pruning (see the module docstring)."""
    config = ml_collections.ConfigDict(source_config.to_dict())
    config.num_train_steps = num_steps
    config.compress = group
    if group.method == "unstructured":
        config.optim.ema_decay = 0.0
    return config


def initial_state(
    config: ml_collections.ConfigDict,
    generator_variables: dict[str, Any],
    source: GANState,
) -> GANState:
    """The step-0 state of the compressed run.

    Args:
      config: the compressed config (``compressed_config``; ``widths`` already set when
        structured).
      generator_variables: ``{"params", "batch_stats"}`` the fine-tune starts from, matching
        ``config.model.generator``.
      source: the source state (its discriminator is reused).

    Returns:
      A ``GANState`` with the given generator as both raw and EMA weights, the source
      discriminator, fresh optimizer states for the compressed setup and, for QAT, activation
      ranges calibrated on the given weights.
    """
    setup = make_setup(config)
    template = setup.init_state()
    params = generator_variables["params"]
    g_state = {**template.g_state, "batch_stats": generator_variables["batch_stats"]}
    if fake_quant.QUANT_COLLECTION in g_state:
        quant = fake_quant.QuantConfig(ema_decay=config.compress.quant_ema_decay)
        g_state[fake_quant.QUANT_COLLECTION] = calibrate_quant_stats(
            setup.generator, generator_variables, config.seed, quant
        )
    return template.replace(
        g_params=params,
        g_state=g_state,
        g_opt_state=setup.g_tx.init(params),
        d_params=source.d_params,
        d_state=source.d_state,
        d_opt_state=setup.d_tx.init(source.d_params),
        ema_params=jax.tree.map(jnp.copy, params),
    )


def _check_resumable(out_workdir: str, config: ml_collections.ConfigDict) -> None:
    saved = checkpoint.read_config(out_workdir)
    if "compress" not in saved:
        raise ValueError(f"{out_workdir!r} is a workdir without a compress group: pick a new one")
    wanted = {k: config.compress[k] for k in RESUMED_KEYS}
    found = {k: saved.compress[k] for k in RESUMED_KEYS}
    if wanted != found or saved.num_train_steps != config.num_train_steps:
        raise ValueError(
            f"{out_workdir!r} holds a different compression run ({found}, "
            f"{saved.num_train_steps} steps) than requested ({wanted}, "
            f"{config.num_train_steps} steps): pick a new --out_workdir"
        )
    if checkpoint.checkpoint_manager(out_workdir).latest_step() is None:
        raise ValueError(f"{out_workdir!r} has a config but no checkpoint: remove it and rerun")


def compress_workdir(
    workdir: str,
    out_workdir: str,
    method: str,
    amount: float,
    num_steps: int,
    *,
    source_params: str = "ema",
    scope: str = "layer",
) -> GANState:
    """Compresses the generator of ``workdir`` and fine-tunes it into ``out_workdir``.

    Args:
      workdir: trained source workdir (``config.json`` + checkpoints); it is only read.
      out_workdir: new workdir; if it already holds the same compression run, that run resumes.
      method: ``"unstructured"``, ``"structured"`` or ``"qat"``.
      amount: target sparsity (unstructured) or fraction of channels removed (structured).
      num_steps: fine-tuning steps.
      source_params: start from the source's ``"ema"`` or ``"raw"`` generator weights.
      scope: ``"layer"`` or ``"global"`` magnitude ranking (unstructured).

    Returns:
      The final ``GANState`` of the fine-tune.

    Raises:
      FileNotFoundError: if ``workdir`` is not a trained workdir.
      ValueError: on bad options, ``out_workdir == workdir``, or an ``out_workdir`` holding a
        different run.
    """
    if os.path.abspath(workdir) == os.path.abspath(out_workdir):
        raise ValueError(f"--out_workdir must differ from --workdir ({workdir!r})")
    source_config, source = restore_source(workdir)
    group = compress_group(
        method,
        amount,
        num_steps,
        source_workdir=os.path.abspath(workdir),
        source_step=int(source.step),
        source_params=source_params,
        scope=scope,
    )
    config = compressed_config(source_config, group, num_steps)
    if os.path.isfile(os.path.join(out_workdir, checkpoint.CONFIG_FILE)):
        _check_resumable(out_workdir, config)
        return train(checkpoint.read_config(out_workdir), out_workdir)
    variables = _generator_variables(source, source_params)
    if method == "structured":
        generator, _ = build_models(source_config.model)
        kwargs, variables = prune_generator_channels(generator, variables, amount)
        config.model.generator.widths = tuple(kwargs["widths"])
    state = initial_state(config, variables, source)
    checkpoint.write_config(out_workdir, config)
    manager = checkpoint.checkpoint_manager(out_workdir, config.train.keep_checkpoints)
    checkpoint.save_state(manager, state)
    manager.wait_until_finished()
    return train(config, out_workdir)
