"""Switches a family's `Trainer` to the compression method of the config's ``compress`` group.

``lwgen.families.registry.make_trainer`` calls ``apply_compression`` when the config has a
``compress`` group, so a compressed workdir resumes and trains through the one training loop
unchanged. The method applies to the network named ``compress.network`` (any trained network of
any family; ``"generator"`` by default):

* ``"unstructured"`` — the network's optimizer becomes ``with_pruning(tx, schedule)``: magnitude
  masks (layer-wise or global L1 ranking) whose sparsity follows the polynomial schedule of Zhu &
  Gupta 2017 (§3, eq. 1), enforced inside the optax update and stored in the optimizer state.
* ``"structured"`` — nothing changes in training: the physically smaller network is described by
  its config (e.g. ``model.generator.widths``, see ``lwgen.compress.structured``).
* ``"qat"`` — the network (or each of ``compress.networks``) runs under fake quantization
  (``lwgen.compress.fake_quant``, Jacob et al. 2018) through ``Trainer.applies``; the activation
  ranges live in its ``quant_stats`` collection, calibrated on the family's ``example_inputs``
  when the state is created.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import ml_collections

from lwgen.compress import fake_quant, pruning
from lwgen.errors import ConfigError
from lwgen.families.registry import Trainer
from lwgen.train.state import TrainState, replace_network
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
    network: str = "generator",
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
      source_params: ``"ema"`` or ``"raw"`` weights of the source network.
      network: the trained network to compress.
      scope: ``"layer"`` or ``"global"`` magnitude ranking.
      exclude: module names whose kernels are never pruned.
      num_mask_updates: how many times the masks are recomputed.
      quant_ema_decay: smoothing of the QAT activation ranges.

    Returns:
      The group as a ``ConfigDict``.

    Raises:
      ConfigError: on an unknown method/scope/source or out-of-range numbers.
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
            network=network,
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
    """Raises ``ConfigError`` naming the first bad entry of ``config.compress``."""
    if group.method not in METHODS:
        raise ConfigError(f"compress.method {group.method!r} is not one of {METHODS}")
    if not 0.0 <= group.amount < 1.0:
        raise ConfigError(f"compress.amount must be in [0, 1), got {group.amount}")
    if group.source_params not in SOURCE_PARAMS:
        raise ConfigError(f"compress.source_params must be one of {SOURCE_PARAMS}")
    if group.scope not in pruning.SCOPES:
        raise ConfigError(f"compress.scope must be one of {pruning.SCOPES}, got {group.scope!r}")
    if num_steps <= 0:
        raise ConfigError(f"fine-tuning needs a positive number of steps, got {num_steps}")
    if not 0.0 <= group.quant_ema_decay < 1.0:
        raise ConfigError(
            f"compress.quant_ema_decay must be in [0, 1), got {group.quant_ema_decay}"
        )


def sparsity_schedule(group: ml_collections.ConfigDict):
    """The Zhu & Gupta 2017 (eq. 1) schedule of ``config.compress`` (``step -> sparsity``)."""
    return pruning.polynomial_sparsity_schedule(
        group.amount, group.begin_step, group.end_step, frequency=group.frequency
    )


def calibrate_quant_stats(
    trainer: Trainer, network: str, variables: dict[str, Any], seed: int, decay: float
) -> dict[str, Any]:
    """Initial QAT activation ranges of ``network`` from ``CALIBRATION_BATCH`` example inputs.

    Args:
      trainer: the family's trainer (its ``modules`` and ``example_inputs``).
      network: the network's name.
      variables: its float variables (``{"params", ...}``).
      seed: seed of the example inputs.
      decay: ``compress.quant_ema_decay``.

    Returns:
      The ``quant_stats`` collection (see ``fake_quant.init_quant_stats``).
    """
    args, kwargs = trainer.example_inputs[network](CALIBRATION_BATCH, seed)
    config = fake_quant.QuantConfig(ema_decay=decay, axis_name=None)
    module = trainer.modules[network]
    return fake_quant.init_quant_stats(module, variables, *args, config=config, **kwargs)


def _with_quant_stats(state: TrainState, trainer: Trainer, network: str, seed: int, decay: float):
    net = state.networks[network]
    stats = calibrate_quant_stats(trainer, network, net.variables(), seed, decay)
    collections = {**net.collections, fake_quant.QUANT_COLLECTION: stats}
    return replace_network(state, network, net.replace(collections=collections))


def _qat_apply(module, config: fake_quant.QuantConfig, variables, *args, **kwargs):
    return fake_quant.qat_apply(module, variables, *args, config=config, **kwargs)


def _prunable(trainer: Trainer, network: str, exclude) -> Any:
    args, kwargs = trainer.example_inputs[network](1, 0)
    module = trainer.modules[network]
    shapes = jax.eval_shape(functools.partial(module.init, **kwargs), jax.random.PRNGKey(0), *args)
    return pruning.prunable_leaves(shapes["params"], exclude)


def _check_network(trainer: Trainer, network: str) -> None:
    if network not in trainer.modules:
        raise ConfigError(
            f"compress.network {network!r} is not a trained network of this family "
            f"({sorted(trainer.modules)})"
        )
    if network not in trainer.example_inputs:
        raise ConfigError(f"the family gives no example inputs for {network!r} to compress it")


def apply_compression(trainer: Trainer, config: ml_collections.ConfigDict) -> Trainer:
    """Returns ``trainer`` switched to the compression method of ``config.compress``.

    Args:
      trainer: the family's trainer for ``config``.
      config: an experiment config with a ``compress`` group (see ``compress_group``).

    Returns:
      A new `Trainer`: pruning optimizer (unstructured), unchanged (structured), or fake
      quantized apply with calibrated ``quant_stats`` in the initial state (qat).

    Raises:
      ConfigError: on a bad ``compress`` group, or ``"unstructured"`` with an EMA of the
        network (the EMA is exported, and the average of a pruned weight is not exactly zero).
    """
    group = config.compress
    validate_compress_group(group, config.num_train_steps)
    network = group.get("network", "generator")
    _check_network(trainer, network)
    if group.method == "structured":
        return trainer
    if group.method == "unstructured":
        if config.optim.get("ema_decay", 0.0) != 0.0:
            raise ConfigError(
                "compress.method='unstructured' needs optim.ema_decay=0: the exported EMA of a "
                f"pruned weight never reaches exactly zero (got {config.optim.ema_decay})"
            )
        prunable = _prunable(trainer, network, tuple(group.exclude))
        tx = pruning.with_pruning(
            trainer.optimizers[network], sparsity_schedule(group), prunable, group.scope
        )
        return dataclasses.replace(trainer, optimizers={**trainer.optimizers, network: tx})
    quant = fake_quant.QuantConfig(ema_decay=group.quant_ema_decay, axis_name=AXIS)
    compressed = trainer
    for name in qat_networks(group):
        _check_network(trainer, name)
        apply = functools.partial(_qat_apply, trainer.modules[name], quant)
        hook = functools.partial(
            _with_quant_stats,
            trainer=trainer,
            network=name,
            seed=config.seed,
            decay=group.quant_ema_decay,
        )
        compressed = dataclasses.replace(
            compressed,
            applies={**compressed.applies, name: apply},
            init_hooks=(*compressed.init_hooks, hook),
        )
    return compressed


def qat_networks(group: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The networks QAT fake-quantizes: ``compress.networks`` where a config sets it (e.g. both
    CycleGAN generators), else ``(compress.network,)``."""
    return tuple(group.get("networks", None) or (group.get("network", "generator"),))
