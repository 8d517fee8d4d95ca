"""Switches a training ``Setup`` to a compression method named by the config's ``compress`` group.

``lwgen.train.loop.make_setup`` calls ``apply_compression`` when the config has a ``compress``
group, so a compressed workdir resumes and trains through the one training loop unchanged:

* ``"unstructured"`` — the generator optimizer becomes ``with_pruning(adam, schedule)``: magnitude
  masks (layer-wise or global L1 ranking) whose sparsity follows the polynomial schedule of Zhu &
  Gupta 2017 (§3, eq. 1), enforced inside the optax update and stored in the optimizer state.
* ``"structured"`` — nothing changes in training: the physically smaller generator is described
  by ``model.generator.widths`` (see ``lwgen.compress.structured``).
* ``"qat"`` — the generator runs under fake quantization (``lwgen.compress.fake_quant``, Jacob et
  al. 2018) through ``Setup.generator_apply``; the activation ranges live in the ``quant_stats``
  collection of ``GANState.g_state``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from lwgen.compress import fake_quant, pruning
from lwgen.train.state import GANState, create_gan_state
from lwgen.train.steps import AXIS

METHODS = ("unstructured", "structured", "qat")
SOURCE_PARAMS = ("ema", "raw")
CALIBRATION_BATCH = 64


def compress_group(
    method: str,
    amount: float,
    num_steps: int,
    *,
    source_workdir: str = "",
    source_step: int = -1,
    source_params: str = "ema",
    scope: str = "layer",
    exclude: tuple[str, ...] = (),
    num_mask_updates: int = 10,
    quant_ema_decay: float = 0.99,
) -> ml_collections.ConfigDict:
    """A validated ``config.compress`` group.

    The pruning schedule starts at step 0 and reaches ``amount`` after two thirds of
    ``num_steps`` in ``num_mask_updates`` equal steps (Zhu & Gupta 2017 §3 prune gradually, then
    let the network recover at the final sparsity).

    Args:
      method: one of ``METHODS``.
      amount: target sparsity (unstructured) or fraction of channels removed (structured), in
        ``[0, 1)``; ignored by ``"qat"``.
      num_steps: fine-tuning steps (> 0).
      source_workdir, source_step: provenance of the fine-tuned weights.
      source_params: ``"ema"`` or ``"raw"`` generator weights of the source.
      scope: ``"layer"`` or ``"global"`` magnitude ranking.
      exclude: module names whose kernels are never pruned.
      num_mask_updates: how many times the masks are recomputed.
      quant_ema_decay: smoothing of the QAT activation ranges.

    Returns:
      The group as a ``ConfigDict``.

    Raises:
      ValueError: on an unknown method/scope/source or out-of-range numbers.
    """
    end_step = max(1, 2 * num_steps // 3)
    frequency = max(1, end_step // max(1, num_mask_updates))
    group = ml_collections.ConfigDict(
        dict(
            method=method,
            amount=float(amount),
            source_workdir=source_workdir,
            source_step=int(source_step),
            source_params=source_params,
            scope=scope,
            exclude=tuple(exclude),
            begin_step=0,
            end_step=frequency * (end_step // frequency),
            frequency=frequency,
            quant_ema_decay=float(quant_ema_decay),
        )
    )
    validate_compress_group(group, num_steps)
    return group


def validate_compress_group(group: ml_collections.ConfigDict, num_steps: int) -> None:
    """Raises ``ValueError`` naming the first bad entry of ``config.compress``."""
    if group.method not in METHODS:
        raise ValueError(f"compress.method {group.method!r} is not one of {METHODS}")
    if not 0.0 <= group.amount < 1.0:
        raise ValueError(f"compress.amount must be in [0, 1), got {group.amount}")
    if group.source_params not in SOURCE_PARAMS:
        raise ValueError(f"compress.source_params must be one of {SOURCE_PARAMS}")
    if group.scope not in pruning.SCOPES:
        raise ValueError(f"compress.scope must be one of {pruning.SCOPES}, got {group.scope!r}")
    if num_steps <= 0:
        raise ValueError(f"fine-tuning needs a positive number of steps, got {num_steps}")
    if not 0.0 <= group.quant_ema_decay < 1.0:
        raise ValueError(f"compress.quant_ema_decay must be in [0, 1), got {group.quant_ema_decay}")


def sparsity_schedule(group: ml_collections.ConfigDict):
    """The Zhu & Gupta 2017 (eq. 1) schedule of ``config.compress`` (``step -> sparsity``)."""
    return pruning.polynomial_sparsity_schedule(
        group.amount, group.begin_step, group.end_step, frequency=group.frequency
    )


def _example_inputs(generator, num: int, seed: int) -> tuple[jax.Array, jax.Array]:
    """Deterministic calibration inputs: ``z ~ N(0, I)`` and classes cycling over all labels."""
    z = jax.random.normal(jax.random.PRNGKey(seed), (num, generator.latent_dim), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(num) % generator.num_classes, generator.num_classes)
    return z, y


def calibrate_quant_stats(
    generator, variables: dict[str, Any], seed: int, config: fake_quant.QuantConfig
) -> dict[str, Any]:
    """Initial QAT activation ranges from one batch of ``CALIBRATION_BATCH`` prior samples.

    Args:
      generator: the generator module (``axis_name=None``).
      variables: its float ``{"params", "batch_stats"}``.
      seed: seed of the calibration latents.
      config: fake-quantization settings (``axis_name`` is ignored here).

    Returns:
      The ``quant_stats`` collection (see ``fake_quant.init_quant_stats``).
    """
    z, y = _example_inputs(generator, CALIBRATION_BATCH, seed)
    local = dataclasses.replace(config, axis_name=None)
    return fake_quant.init_quant_stats(generator, variables, z, y, config=local, train=False)


def _quant_config(group: ml_collections.ConfigDict, axis_name: str | None):
    return fake_quant.QuantConfig(ema_decay=group.quant_ema_decay, axis_name=axis_name)


def _with_quant_stats(init_state, generator, group, seed: int) -> GANState:
    state = init_state()
    variables = {"params": state.g_params, **state.g_state}
    stats = calibrate_quant_stats(generator, variables, seed, _quant_config(group, None))
    return state.replace(g_state={**state.g_state, fake_quant.QUANT_COLLECTION: stats})


def _qat_generator_apply(generator, config: fake_quant.QuantConfig, variables, *args, **kwargs):
    return fake_quant.qat_apply(generator, variables, *args, config=config, **kwargs)


def _prunable(generator, exclude) -> Any:
    z, y = _example_inputs(generator, 1, 0)
    shapes = jax.eval_shape(generator.init, jax.random.PRNGKey(0), z, y)
    return pruning.prunable_leaves(shapes["params"], exclude)


def apply_compression(setup, config: ml_collections.ConfigDict):
    """Returns ``setup`` switched to the compression method of ``config.compress``.

    Args:
      setup: the family's default ``lwgen.train.loop.Setup`` for ``config``.
      config: an experiment config with a ``compress`` group (see ``compress_group``).

    Returns:
      A new ``Setup``: pruning optimizer (unstructured), unchanged (structured), or fake
      quantized ``generator_apply`` with ``quant_stats`` in the initial state (qat).

    Raises:
      ValueError: on a bad ``compress`` group, ``"structured"`` without
        ``model.generator.widths``, or ``"unstructured"`` with a generator EMA (the EMA is
        exported, and the average of a pruned weight is not exactly zero).
    """
    group = config.compress
    validate_compress_group(group, config.num_train_steps)
    if group.method == "structured":
        if config.model.generator.widths is None:
            raise ValueError("compress.method='structured' needs model.generator.widths")
        return setup
    seed = config.seed
    if group.method == "unstructured":
        if config.optim.ema_decay != 0.0:
            raise ValueError(
                "compress.method='unstructured' needs optim.ema_decay=0: the exported EMA of a "
                f"pruned weight never reaches exactly zero (got {config.optim.ema_decay})"
            )
        prunable = _prunable(setup.generator, tuple(group.exclude))
        g_tx = pruning.with_pruning(setup.g_tx, sparsity_schedule(group), prunable, group.scope)
        init = functools.partial(
            create_gan_state, setup.generator, setup.discriminator, g_tx, setup.d_tx, seed
        )
        return dataclasses.replace(setup, g_tx=g_tx, init_state=init)
    apply = functools.partial(
        _qat_generator_apply, setup.generator.clone(axis_name=AXIS), _quant_config(group, AXIS)
    )
    init = functools.partial(_with_quant_stats, setup.init_state, setup.generator, group, seed)
    return dataclasses.replace(setup, generator_apply=apply, init_state=init)
