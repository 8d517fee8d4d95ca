"""The family interface and its registry, keyed by ``config.model.family``.

A family is the only place that knows which networks exist, what a batch holds, which losses
apply and how to sample. It hands the generic core (``lwgen.train``, ``lwgen.eval.evaluate``,
``lwgen.export``) a `Family`: small pure functions, bound to a config by ``make_trainer``. The
core looks families up here by name and imports none of them; `get_family` imports the module of
a built-in family on first use, and any other module registers its own with `register`
(a toy family in a test does exactly that).

The split follows scenic's model bundle plus keyword-bound step dependencies
(``model_lib/base_models/base_model.py``, ``train_lib/classification_trainer.py``) and
score_sde's step/sampler registries (``losses.get_step_fn``, ``sampling.get_sampling_fn``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import ml_collections
import numpy as np

from lwgen.errors import ConfigError

PyTree = Any
Batch = dict[str, Any]
Metrics = dict[str, Any]

BUILTIN = {
    "cyclegan": "lwgen.families.cyclegan",
    "dcgan": "lwgen.families.dcgan",
    "diffusion": "lwgen.families.diffusion",
    "style": "lwgen.families.style",
    "textgan": "lwgen.families.textgan",
    "tinygan": "lwgen.families.tinygan",
    "upscaler": "lwgen.families.upscaler",
}
# Config groups that change a family's trainer: group name -> "module:function(trainer, config)".
TRAINER_TRANSFORMS = {"compress": "lwgen.compress.setup:apply_compression"}
_REGISTRY: dict[str, Family] = {}


class Restored(NamedTuple):
    """A trained workdir's inference networks, ready to sample, evaluate or export.

    Attributes:
      config: the training config.
      step: the checkpoint's step.
      variables: ``{network name: {"params": ..., other exported collections}}`` (EMA weights
        where the family keeps an EMA), on this host's first device.
    """

    config: ml_collections.ConfigDict
    step: int
    variables: dict[str, PyTree]


@dataclasses.dataclass(frozen=True)
class Trainer:
    """A family bound to one config: what the training loop runs.

    Compression (``lwgen.compress``) returns a changed copy: another optimizer or another apply
    function for a named network, or a hook that adds to the initial state.

    Attributes:
      modules: the trained networks by name (built with ``axis_name="batch"`` where they
        average statistics across devices).
      optimizers: an optax transformation per trained network.
      applies: the function the step calls for each network (``module.apply`` unless compression
        wraps it, e.g. fake quantization).
      init: ``init(trainer) -> TrainState`` at step 0, deterministic from ``config.seed``.
      step: the per-device step, ``step(state, batch, *, trainer) -> (state, metrics)``, written
        pmap-style (``lax.pmean`` over ``"batch"``); the loop binds ``trainer`` and runs it with
        ``jax.shard_map`` inside ``jax.jit``.
      inference_variables: ``state -> {network name: variables}``: what is sampled, evaluated and
        exported (checkpointed as its own item so it restores without the optimizer setup).
      example_inputs: per network, ``(num, seed) -> (args, kwargs)`` of an inference-mode call
        on ``num`` inputs drawn as in use (compression calibrates and traces with them).
      frozen: variables of frozen pretrained networks by name (a feature extractor, a text
        encoder), loaded by the family from their verified files. They are never trained, never
        in the `TrainState` and never checkpointed; the loop passes them to the jitted step as
        replicated arrays (not as constants baked into the program), and the step reads them
        from ``trainer.frozen``.
      init_hooks: applied in order to the state ``init`` returns (e.g. QAT range calibration).
    """

    modules: Mapping[str, Any]
    optimizers: Mapping[str, Any]
    applies: Mapping[str, Callable[..., Any]]
    init: Callable[[Trainer], Any]
    step: Callable[..., tuple[Any, Metrics]]
    inference_variables: Callable[[Any], dict[str, PyTree]]
    example_inputs: Mapping[str, Callable[[int, int], tuple[tuple, dict]]] = dataclasses.field(
        default_factory=dict
    )
    frozen: Mapping[str, PyTree] = dataclasses.field(default_factory=dict)
    init_hooks: tuple[Callable[[Any], Any], ...] = ()

    def init_state(self) -> Any:
        """The step-0 train state (also the structure checkpoints restore into)."""
        return self.apply_init_hooks(self.init(self))

    def apply_init_hooks(self, state: Any) -> Any:
        """``state`` passed through ``init_hooks`` in order (for a step-0 state built otherwise,
        e.g. from a trained workdir's weights)."""
        for hook in self.init_hooks:
            state = hook(state)
        return state


@dataclasses.dataclass(frozen=True)
class Family:
    """What a model family supplies to the core.

    Attributes:
      name: the ``config.model.family`` value.
      validate_config: raises ``ConfigError`` naming the first bad family-specific entry.
      make_trainer: ``config -> Trainer``.
      inference_shapes: ``config -> {network name: abstract variables}``
        (``jax.ShapeDtypeStruct`` leaves), the template a checkpoint's inference item restores
        into on any device topology.
      sample_grid: ``(config, variables) -> (images f32 [N, H, W, C] in [-1, 1], rows)``: the
        sample grid written during training.
      evaluate: ``(restored, per_class, cache_dir) -> metrics``: flat dict of scalars.
      export_specs: ``(restored, batch) -> [ExportSpec, ...]``: the models of its bundle.
      bundle_fields: ``restored -> dict``: family fields of ``bundle.json`` (class names,
        latent size, schedules, style names, ...), read by ``export/pi_infer.py``.
      evaluate_bundle: ``(bundle_dir, data_config, per_class, cache_dir) -> metrics`` for an
        exported bundle, on the same inputs as ``evaluate``.
      sample: ``(config, variables, labels int [N], seed) -> images f32 [N, H, W, C]`` in
        ``[-1, 1]``, one image of each label's class drawn as the sample grid draws them (the
        embedding projector, ``lwgen.eval.projector``); ``None`` for a family without
        class-conditional images of the data's shape.
    """

    name: str
    validate_config: Callable[[ml_collections.ConfigDict], None]
    make_trainer: Callable[[ml_collections.ConfigDict], Trainer]
    inference_shapes: Callable[[ml_collections.ConfigDict], dict[str, PyTree]]
    sample_grid: Callable[[ml_collections.ConfigDict, dict[str, PyTree]], tuple[np.ndarray, int]]
    evaluate: Callable[..., dict[str, float | int]]
    export_specs: Callable[..., list[Any]]
    bundle_fields: Callable[[Restored], dict[str, Any]]
    evaluate_bundle: Callable[..., dict[str, float | int]]
    sample: Callable[..., np.ndarray] | None = None


def register(family: Family) -> Family:
    """Adds ``family`` under ``family.name`` (replacing one of the same name) and returns it."""
    _REGISTRY[family.name] = family
    return family


def names() -> list[str]:
    """The names of the built-in and registered families."""
    return sorted(set(BUILTIN) | set(_REGISTRY))


def get_family(name: str) -> Family:
    """The family called ``name``, importing a built-in family's module on first use.

    Raises:
      ConfigError: if no family of that name exists.
    """
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in _REGISTRY:
        raise ConfigError(f"model.family {name!r} is not one of {names()}")
    return _REGISTRY[name]


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
    """The trainer of ``config``: its family's, changed by each ``TRAINER_TRANSFORMS`` group the
    config has (e.g. ``compress``: pruning or quantization-aware training of a named network).

    Raises:
      ConfigError: on an unknown family or a bad family or transform group.
    """
    trainer = get_family(config.model.family).make_trainer(config)
    for group, target in TRAINER_TRANSFORMS.items():
        if group in config:
            module, function = target.split(":")
            trainer = getattr(importlib.import_module(module), function)(trainer, config)
    return trainer
