"""The ``diffusion`` family: a class-conditional U-Net denoiser (``lwgen.models.unet``) trained as a
DDPM (Ho et al. 2020), sampled with DDIM/DDPM and classifier-free guidance
(``lwgen.diffusion.samplers``), with progressive distillation to few steps and distillation into a
narrower student (``lwgen.families.diffusion_objectives``).

Config groups: ``model.denoiser`` (the `UNet` fields), ``diffusion`` (schedule, ``num_timesteps``,
parameterization, ``label_dropout``, sampler, ``sample_steps``, ``eta``, ``guidance``) and, for a
student, ``teacher`` (``workdir``, ``mode``: ``"progressive"`` or ``"predictions"``,
``guidance``). One network, ``denoiser``, with an EMA that is sampled, evaluated and exported.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lwgen.data import load_source
from lwgen.data.source import to_unit_range
from lwgen.diffusion.samplers import check_sampler, sample, sampler_noise
from lwgen.diffusion.schedules import Schedule, make_schedule, sampling_timesteps
from lwgen.errors import ConfigError
from lwgen.families.diffusion_objectives import (
    DenoisingObjective,
    ProgressiveDistillation,
    TeacherPredictions,
)
from lwgen.families.registry import Trainer
from lwgen.losses.diffusion import check_parameterization, denoising_loss
from lwgen.models.unet import UNet, timestep_embedding
from lwgen.train.checkpoint import restore_inference
from lwgen.train.state import TrainState, create_train_state
from lwgen.train.steps import AXIS, pmean_metrics, sample_keys, update_ema, update_network

DENOISER, TEACHER = "denoiser", "teacher"
EXPORTED_COLLECTIONS = ("batch_stats",)
TEACHER_MODES = ("progressive", "predictions")


def denoiser_module(config: ml_collections.ConfigDict) -> UNet:
    """``UNet(**config.model.denoiser)`` (``axis_name=None``)."""
    kwargs = config.model.denoiser.to_dict()
    kwargs["channel_mults"] = tuple(kwargs["channel_mults"])
    return UNet(**kwargs)


def schedule_of(config: ml_collections.ConfigDict) -> Schedule:
    """The noise schedule of ``config.diffusion``."""
    return make_schedule(config.diffusion.schedule, config.diffusion.num_timesteps)


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
    """``(H, W, C)`` of the data."""
    data = config.data
    return (int(data.image_size), int(data.image_size), int(data.channels))


def bind_denoiser(module: UNet, variables) -> Any:
    """``denoise(x_t, t, y)`` of a `UNet` in inference mode, the timestep embedded outside the
    network (``timestep_embedding``, so the exported graph has no SIN/COS)."""

    def denoise(x_t, t, y):
        embedding = timestep_embedding(t, module.embed_dim)
        return module.apply(variables, x_t, embedding, y, train=False)

    return denoise


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks ``model.denoiser``, ``diffusion`` and ``teacher`` against each other and the data.

    Raises:
      ConfigError: naming the first bad entry.
    """
    for group in ("diffusion", "optim"):
        if group not in config:
            raise ConfigError(f"model.family 'diffusion' needs config.{group}")
    if "denoiser" not in config.model:
        raise ConfigError("model.family 'diffusion' needs config.model.denoiser")
    diffusion = config.diffusion
    schedule = schedule_of(config)
    check_parameterization(diffusion.parameterization)
    check_sampler(diffusion.sampler)
    sampling_timesteps(diffusion.sample_steps, schedule.num_timesteps)
    if not 0.0 <= diffusion.label_dropout < 1.0:
        raise ConfigError(
            f"diffusion.label_dropout must lie in [0, 1), got {diffusion.label_dropout}"
        )
    if not 0.0 <= diffusion.eta <= 1.0:
        raise ConfigError(f"diffusion.eta must lie in [0, 1], got {diffusion.eta}")
    if diffusion.guidance < 0.0:
        raise ConfigError(f"diffusion.guidance must be >= 0, got {diffusion.guidance}")
    if "teacher" in config and config.teacher.mode not in TEACHER_MODES:
        raise ConfigError(
            f"teacher.mode must be one of {TEACHER_MODES}, got {config.teacher.mode!r}"
        )


def _teacher(config: ml_collections.ConfigDict):
    """``(teacher module, teacher variables)`` from ``config.teacher.workdir``, checked against
    the student's schedule, parameterization, classes and (progressive) architecture.

    Raises:
      ConfigError: if the teacher is no diffusion model or does not match the student.
      MissingFileError: if the workdir has no checkpoint.
    """
    restored = restore_inference(config.teacher.workdir)
    teacher = restored.config
    where = f"teacher.workdir {config.teacher.workdir!r}"
    if teacher.model.family != "diffusion":
        raise ConfigError(f"{where} holds a {teacher.model.family!r} model, not a diffusion model")
    for key in ("schedule", "num_timesteps", "parameterization"):
        if teacher.diffusion[key] != config.diffusion[key]:
            raise ConfigError(
                f"{where} was trained with diffusion.{key}={teacher.diffusion[key]!r}, "
                f"the student has {config.diffusion[key]!r}"
            )
    if teacher.model.denoiser.num_classes != config.model.denoiser.num_classes:
        raise ConfigError(f"{where} has a different num_classes from the student")
    if config.teacher.mode == "progressive":
        if denoiser_module(teacher) != denoiser_module(config):
            raise ConfigError(f"{where}: progressive distillation needs the teacher's architecture")
        if 2 * config.diffusion.sample_steps > teacher.diffusion.num_timesteps:
            raise ConfigError(f"{where}: the teacher's grid of 2 × sample_steps does not fit")
    return denoiser_module(teacher), restored.variables[DENOISER]


def make_objective(config: ml_collections.ConfigDict):
    """The step's objective: data denoising, or a distillation mode of ``config.teacher``."""
    diffusion, schedule = config.diffusion, schedule_of(config)
    common = dict(
        schedule=schedule,
        parameterization=diffusion.parameterization,
        num_classes=config.model.denoiser.num_classes,
    )
    if "teacher" not in config:
        return DenoisingObjective(**common, label_dropout=diffusion.label_dropout)
    if config.teacher.mode == "predictions":
        return TeacherPredictions(
            **common, label_dropout=diffusion.label_dropout, sample_steps=diffusion.sample_steps
        )
    return ProgressiveDistillation(
        **common, student_steps=diffusion.sample_steps, teacher_guidance=config.teacher.guidance
    )


def denoiser_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    trainer: Trainer,
    objective,
    teacher_module: UNet | None,
    ema_decay: float,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One denoiser update on this device's shard (pmap-style; see ``lwgen.train.steps``).

    Args:
      state: replicated `TrainState` with network ``denoiser``.
      batch: ``image`` float32 ``[b, H, W, C]`` in ``[-1, 1]``, ``label`` int32 ``[b]``.
      trainer: the bound `Trainer` (``frozen["teacher"]`` for a student).
      objective: from `make_objective`.
      teacher_module: the teacher's `UNet`, or None.
      ema_decay: decay of the denoiser EMA.

    Returns:
      The new state and device-averaged metrics (``loss``, ``mse_low_noise``,
      ``mse_high_noise``, ``grad_norm``).
    """
    net = state.networks[DENOISER]
    keys = sample_keys(state.rng, state.step, batch["label"].shape[0])
    teacher = None
    if teacher_module is not None:
        teacher = bind_denoiser(teacher_module, trainer.frozen[TEACHER])
    example = objective.example(batch, keys, teacher)
    module = trainer.modules[DENOISER]
    embedding = timestep_embedding(example.t, module.embed_dim)

    def loss_fn(params):
        output, collections = trainer.applies[DENOISER](
            net.variables(params),
            example.x_t,
            embedding,
            example.y,
            train=True,
            mutable=list(net.collections),
        )
        loss, aux = denoising_loss(output, example.target, example.alpha_bar)
        return loss, ({"loss": loss, **aux}, collections)

    (_, (metrics, collections)), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
    metrics["grad_norm"] = optax.tree.norm(jax.lax.pmean(grads, AXIS))
    net = update_network(net, grads, trainer.optimizers[DENOISER], collections)
    new_state = state.replace(
        step=state.step + 1,
        networks={DENOISER: net},
        ema={DENOISER: update_ema(state.ema[DENOISER], net.params, ema_decay, state.step)},
    )
    return new_state, pmean_metrics(metrics)


def _init(trainer: Trainer, shape, seed: int, start_from_teacher: bool) -> TrainState:
    """Step-0 state: the denoiser from ``seed`` (or the teacher's weights for progressive
    distillation, Salimans & Ho 2022 Alg. 2 "initialize student from teacher"), EMA equal to it."""
    module = trainer.modules[DENOISER]
    key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    if start_from_teacher:  # own buffers: the step donates the state
        variables = jax.tree.map(jnp.copy, trainer.frozen[TEACHER])
    else:
        variables = module.init(key, *_dummy_inputs(module, shape))
    return create_train_state(
        run_key, {DENOISER: variables}, trainer.optimizers, ema_of=(DENOISER,)
    )


def _dummy_inputs(module: UNet, shape) -> tuple[jax.Array, jax.Array, jax.Array]:
    return (
        jnp.zeros((1, *shape), jnp.float32),
        jnp.zeros((1, module.embed_dim), jnp.float32),
        jnp.zeros((1, module.num_classes), jnp.float32),
    )


def optimizer(
    optim: ml_collections.ConfigDict, num_train_steps: int
) -> optax.GradientTransformation:
    """Adam (Kingma & Ba 2015) with gradient clipping at ``optim.grad_clip`` and a linear warm-up
    over ``optim.warmup_steps`` into a cosine decay to 0 at ``num_train_steps`` (Loshchilov &
    Hutter 2017)."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, optim.lr, max(1, min(optim.warmup_steps, num_train_steps - 1)), max(2, num_train_steps)
    )
    return optax.chain(optax.clip_by_global_norm(optim.grad_clip), optax.adam(schedule))


def inference_variables(state: TrainState) -> dict[str, Any]:
    """``{"denoiser": {"params": EMA params, ...exported collections}}``."""
    net = state.networks[DENOISER]
    kept = {k: v for k, v in net.collections.items() if k in EXPORTED_COLLECTIONS}
    return {DENOISER: {"params": state.ema[DENOISER], **kept}}


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
    """The diffusion `Trainer` of ``config``."""
    module = denoiser_module(config).clone(axis_name=AXIS)
    frozen, teacher_module = {}, None
    if "teacher" in config:
        teacher_module, frozen[TEACHER] = _teacher(config)
    step = functools.partial(
        denoiser_step,
        objective=make_objective(config),
        teacher_module=teacher_module,
        ema_decay=config.optim.ema_decay,
    )
    progressive = "teacher" in config and config.teacher.mode == "progressive"
    return Trainer(
        modules={DENOISER: module},
        optimizers={DENOISER: optimizer(config.optim, config.num_train_steps)},
        applies={DENOISER: module.apply},
        init=functools.partial(
            _init, shape=image_shape(config), seed=config.seed, start_from_teacher=progressive
        ),
        step=step,
        inference_variables=inference_variables,
        example_inputs={DENOISER: functools.partial(example_inputs, config)},
        frozen=frozen,
    )


def inference_shapes(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Abstract ``{"denoiser": {"params", ...}}`` of ``config``'s denoiser."""
    module = denoiser_module(config)
    shapes = jax.eval_shape(
        module.init, jax.random.PRNGKey(0), *_dummy_inputs(module, image_shape(config))
    )
    return {
        DENOISER: {k: v for k, v in shapes.items() if k == "params" or k in EXPORTED_COLLECTIONS}
    }


def sampler_settings(config: ml_collections.ConfigDict, **overrides) -> dict[str, Any]:
    """The sampler of ``config.diffusion`` as keyword arguments of
    ``lwgen.diffusion.samplers.sample`` plus ``timesteps``; ``overrides`` may set
    ``sample_steps``, ``sampler``, ``eta`` and ``guidance``."""
    diffusion = {**config.diffusion.to_dict(), **overrides}
    return {
        "timesteps": sampling_timesteps(diffusion["sample_steps"], diffusion["num_timesteps"]),
        "parameterization": diffusion["parameterization"],
        "sampler": diffusion["sampler"],
        "eta": float(diffusion["eta"]),
        "guidance": float(diffusion["guidance"]),
    }


@functools.lru_cache(maxsize=8)
def _compiled_sampler(module: UNet, schedule_key: tuple, settings_key: tuple, trajectory: bool):
    """A jitted ``(variables, x_T, y, noise) -> images`` (or the visited states) per setting."""
    schedule = make_schedule(*schedule_key)
    settings = dict(settings_key)
    timesteps = np.asarray(settings.pop("timesteps"))

    def run(variables, x_T, y, noise):
        return sample(
            bind_denoiser(module, variables),
            x_T,
            y,
            timesteps,
            schedule,
            noise=noise,
            return_trajectory=trajectory,
            **settings,
        )

    return jax.jit(run)


def sampler_fn(config: ml_collections.ConfigDict, trajectory: bool = False, **overrides):
    """``(variables, x_T, y, noise) -> float32 [B, H, W, C]`` images of ``config``'s sampler
    (jitted once per setting); with ``trajectory`` it returns the states ``x_t`` the sampler
    visits, float32 ``[N, B, H, W, C]`` (see ``lwgen.diffusion.samplers.sample``)."""
    settings = sampler_settings(config, **overrides)
    settings["timesteps"] = tuple(int(t) for t in settings["timesteps"])
    schedule_key = (config.diffusion.schedule, int(config.diffusion.num_timesteps))
    return _compiled_sampler(
        denoiser_module(config), schedule_key, tuple(sorted(settings.items())), trajectory
    )


def draw_samples(
    config: ml_collections.ConfigDict, variables, labels: np.ndarray, seed: int, **overrides
) -> np.ndarray:
    """One image per label from the EMA denoiser: float32 ``[len(labels), H, W, C]`` in
    ``[-1, 1]``, with ``x_T`` and the step noise of ``sampler_noise(seed, ...)``."""
    run = sampler_fn(config, **overrides)
    num_steps = len(sampler_settings(config, **overrides)["timesteps"])
    x_T, noise = sampler_noise(seed, num_steps, (len(labels), *image_shape(config)))
    y = np.eye(config.model.denoiser.num_classes, dtype=np.float32)[np.asarray(labels)]
    return np.asarray(run(variables[DENOISER], x_T, y, noise))


def example_inputs(config: ml_collections.ConfigDict, num: int, seed: int) -> tuple[tuple, dict]:
    """``((x_t, t_embedding, y), {"train": False})`` for compression calibration: ``num`` training
    images (a seeded draw) noised at uniform timesteps (``q(x_t | x_0)``), with their classes."""
    module, schedule = denoiser_module(config), schedule_of(config)
    source = load_source(config.data, "train")
    rng = np.random.default_rng([seed, 2])
    index = rng.choice(len(source), size=num, replace=num > len(source))
    x0 = to_unit_range(source.images[index])
    t = rng.integers(0, schedule.num_timesteps, num)
    ab = schedule.alpha_bar[t].reshape(-1, 1, 1, 1).astype(np.float32)
    x_t = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * rng.standard_normal(x0.shape, dtype=np.float32)
    y = np.eye(module.num_classes, dtype=np.float32)[source.labels[index]]
    return (x_t, np.asarray(timestep_embedding(t, module.embed_dim)), y), {"train": False}
