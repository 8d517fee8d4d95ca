"""Compression fine-tuning: from a trained workdir to a new, normal workdir of a compressed model.

``compress_workdir`` restores the source's full `TrainState`, builds the compressed config (the
source config plus a ``compress`` group, and for structured pruning the smaller widths of the
network, e.g. ``model.generator.widths``), writes the initial state of the compressed run as the
step-0 checkpoint of the new workdir and trains it with ``lwgen.train.loop.train``. Because the
new workdir is self-contained (its trainer applies the ``compress`` group), it resumes with the
training loop, and ``lwgen.train.checkpoint.restore_inference`` and the exporter read it like any
other workdir.

The fine-tune starts from the source network (EMA or raw weights) and the source's other
networks, with fresh optimizer states. For unstructured pruning the EMA is switched off
(``optim.ema_decay = 0``, so the EMA equals the trained weights): an average of a weight that
has been pruned decays towards zero but never reaches it, and the EMA is what gets exported.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from lwgen.compress.setup import compress_group
from lwgen.compress.structured import prune_generator_channels
from lwgen.errors import ConfigError, MissingFileError
from lwgen.families.registry import Trainer, make_trainer
from lwgen.train import checkpoint
from lwgen.train.loop import train
from lwgen.train.state import NetworkState, TrainState

RESUMED_KEYS = ("method", "amount", "source_params", "network", "scope")


def restore_source(workdir: str) -> tuple[ml_collections.ConfigDict, TrainState]:
    """The config and latest full `TrainState` of a trained workdir.

    Raises:
      MissingFileError: if ``workdir`` has no ``config.json`` or no checkpoint.
    """
    config = checkpoint.read_config(workdir)
    manager = checkpoint.checkpoint_manager(workdir, config.train.keep_checkpoints)
    state = checkpoint.restore_state(manager, jax.eval_shape(make_trainer(config).init_state))
    if state is None:
        raise MissingFileError(f"no checkpoints in {os.path.join(workdir, 'checkpoints')}")
    return config, state


def network_variables(state: TrainState, network: str, source_params: str) -> dict[str, Any]:
    """``{"params": EMA or raw params, **collections}`` of ``network`` in ``state``.

    Raises:
      ConfigError: if ``network`` is unknown or ``"ema"`` is asked of a network without EMA.
    """
    if network not in state.networks:
        raise ConfigError(f"compress.network {network!r} is not one of {sorted(state.networks)}")
    if source_params == "ema" and network not in state.ema:
        raise ConfigError(f"network {network!r} has no EMA: use source_params='raw'")
    net = state.networks[network]
    return net.variables(state.ema[network] if source_params == "ema" else None)


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
    config: ml_collections.ConfigDict, variables: dict[str, Any], source: TrainState
) -> TrainState:
    """The step-0 state of the compressed run.

    Args:
      config: the compressed config (``compressed_config``; smaller widths already set when
        structured).
      variables: ``{"params", ...collections}`` of ``config.compress.network`` to start from.
      source: the source state (its other networks are reused).

    Returns:
      A `TrainState` with the given network, the source's other networks, EMA copies equal to
      the params, fresh optimizer states and, for QAT, activation ranges calibrated on the given
      weights (the trainer's init hooks run last).
    """
    trainer: Trainer = make_trainer(config)
    fresh = trainer.init(trainer)
    chosen = config.compress.network
    networks = {}
    for name, net in fresh.networks.items():
        start = variables if name == chosen else source.networks[name].variables()
        params = start["params"]
        collections = {**net.collections, **{k: v for k, v in start.items() if k != "params"}}
        networks[name] = NetworkState(params, collections, trainer.optimizers[name].init(params))
    ema = {name: jax.tree.map(jnp.copy, networks[name].params) for name in fresh.ema}
    return trainer.apply_init_hooks(fresh.replace(networks=networks, ema=ema))


def _check_resumable(out_workdir: str, config: ml_collections.ConfigDict) -> None:
    saved = checkpoint.read_config(out_workdir)
    if "compress" not in saved:
        raise ConfigError(f"{out_workdir!r} is a workdir without a compress group: pick a new one")
    wanted = {k: config.compress[k] for k in RESUMED_KEYS}
    found = {k: saved.compress[k] for k in RESUMED_KEYS}
    if wanted != found or saved.num_train_steps != config.num_train_steps:
        raise ConfigError(
            f"{out_workdir!r} holds a different compression run ({found}, "
            f"{saved.num_train_steps} steps) than requested ({wanted}, "
            f"{config.num_train_steps} steps): pick a new --out_workdir"
        )
    if checkpoint.checkpoint_manager(out_workdir).latest_step() is None:
        raise ConfigError(f"{out_workdir!r} has a config but no checkpoint: remove it and rerun")


def compress_workdir(
    workdir: str,
    out_workdir: str,
    method: str,
    amount: float,
    num_steps: int,
    *,
    source_params: str = "ema",
    network: str = "generator",
    scope: str = "layer",
) -> TrainState:
    """Compresses a network of ``workdir`` and fine-tunes it into ``out_workdir``.

    Args:
      workdir: trained source workdir (``config.json`` + checkpoints); it is only read.
      out_workdir: new workdir; if it already holds the same compression run, that run resumes.
      method: ``"unstructured"``, ``"structured"`` or ``"qat"``.
      amount: target sparsity (unstructured) or fraction of channels removed (structured).
      num_steps: fine-tuning steps.
      source_params: start from the source's ``"ema"`` or ``"raw"`` weights.
      network: the trained network to compress (structured pruning: a DCGAN generator, whose
        widths live in ``config.model.<network>.widths``).
      scope: ``"layer"`` or ``"global"`` magnitude ranking (unstructured).

    Returns:
      The final `TrainState` of the fine-tune.

    Raises:
      MissingFileError: if ``workdir`` is not a trained workdir.
      ConfigError: on bad options, ``out_workdir == workdir``, or an ``out_workdir`` holding a
        different run.
    """
    if os.path.abspath(workdir) == os.path.abspath(out_workdir):
        raise ConfigError(f"--out_workdir must differ from --workdir ({workdir!r})")
    source_config, source = restore_source(workdir)
    group = compress_group(
        method,
        amount,
        num_steps,
        source_workdir=os.path.abspath(workdir),
        source_step=int(source.step),
        source_params=source_params,
        network=network,
        scope=scope,
    )
    config = compressed_config(source_config, group, num_steps)
    if os.path.isfile(os.path.join(out_workdir, checkpoint.CONFIG_FILE)):
        _check_resumable(out_workdir, config)
        return train(checkpoint.read_config(out_workdir), out_workdir)
    variables = network_variables(source, network, source_params)
    if method == "structured":
        module = make_trainer(source_config).modules[network]
        kwargs, variables = prune_generator_channels(module, variables, amount)
        config.model[network].widths = tuple(kwargs["widths"])
    state = initial_state(config, variables, source)
    trainer = make_trainer(config)
    checkpoint.write_config(out_workdir, config)
    manager = checkpoint.checkpoint_manager(out_workdir, config.train.keep_checkpoints)
    checkpoint.save_state(manager, state, trainer.inference_variables(state))
    manager.wait_until_finished()
    return train(config, out_workdir, trainer)
