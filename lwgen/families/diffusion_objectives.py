"""What the diffusion family's step trains its denoiser towards, per sample of a batch.

- `DenoisingObjective`: the data (Ho et al. 2020 Alg. 1), with label dropout for
  classifier-free guidance (Ho & Salimans 2022 Alg. 1).
- `ProgressiveDistillation`: two DDIM steps of a frozen teacher become one step of the student
  (Salimans & Ho 2022 Alg. 2), on the student's ``N``-step grid inside the teacher's ``2N``.
- `TeacherPredictions`: a (narrower) student learns the teacher's output on the same noisy inputs
  (knowledge distillation, Hinton et al. 2015, as in the MobileGen seed).

Each objective maps ``(batch, per-sample keys, teacher denoiser)`` to an `Example`: the inputs of
the denoiser and its regression target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lwgen.diffusion.samplers import ddim_step, guided_output
from lwgen.diffusion.schedules import Schedule, sampling_timesteps
from lwgen.losses.diffusion import (
    distillation_target,
    drop_labels,
    predict_x0_eps,
    prediction_target,
    q_sample,
    target_from_x0,
)

Denoise = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


class Example(NamedTuple):
    """One training example per sample: the denoiser's inputs and its target.

    Attributes:
      x_t: float32 ``[b, H, W, C]`` noisy images.
      t: int32 ``[b]`` timesteps.
      y: float32 ``[b, K]`` one-hot classes (zero rows: the null class).
      target: float32 ``[b, H, W, C]``.
      alpha_bar: float32 ``[b]`` ``alpha_bar_t``.
    """

    x_t: jax.Array
    t: jax.Array
    y: jax.Array
    target: jax.Array
    alpha_bar: jax.Array


def _draws(keys: jax.Array, image_shape: tuple[int, ...]):
    """Per sample: a uniform in [0, 1) (timestep), a standard-normal image, a uniform (labels)."""

    def draw(key):
        k_t, k_noise, k_drop = jax.random.split(key, 3)
        return (
            jax.random.uniform(k_t),
            jax.random.normal(k_noise, image_shape, jnp.float32),
            jax.random.uniform(k_drop),
        )

    return jax.vmap(draw)(keys)


def _noisy_data(batch, keys, schedule: Schedule, num_classes: int, label_dropout: float, grid):
    """``(x0, noise, x_t, t, y, alpha_bar)`` with ``t`` uniform over ``grid`` (int32 ``[G]``)."""
    x0 = batch["image"]
    u_t, noise, u_drop = _draws(keys, x0.shape[1:])
    grid = jnp.asarray(grid, jnp.int32)
    index = jnp.minimum((u_t * grid.shape[0]).astype(jnp.int32), grid.shape[0] - 1)
    t = grid[index]
    alpha_bar = jnp.asarray(schedule.alpha_bar, jnp.float32)[t]
    y = jax.nn.one_hot(batch["label"], num_classes, dtype=jnp.float32)
    y = drop_labels(y, u_drop, label_dropout)
    return x0, noise, q_sample(x0, noise, alpha_bar), t, y, alpha_bar


@dataclasses.dataclass(frozen=True)
class DenoisingObjective:
    """Ho et al. 2020 Alg. 1: ``t ~ U{0..T-1}``, ``eps ~ N(0, I)``, target ε or v.

    Attributes:
      schedule: the noise schedule.
      parameterization: ``"eps"`` or ``"v"``.
      num_classes: K.
      label_dropout: probability of the null class (0.1 in Ho & Salimans 2022).
    """

    schedule: Schedule
    parameterization: str
    num_classes: int
    label_dropout: float

    def example(self, batch, keys: jax.Array, teacher: Denoise | None) -> Example:
        del teacher
        grid = np.arange(self.schedule.num_timesteps)
        x0, noise, x_t, t, y, alpha_bar = _noisy_data(
            batch, keys, self.schedule, self.num_classes, self.label_dropout, grid
        )
        target = prediction_target(x0, noise, alpha_bar, self.parameterization)
        return Example(x_t, t, y, target, alpha_bar)


@dataclasses.dataclass(frozen=True)
class TeacherPredictions:
    """Knowledge distillation: the student regresses the teacher's output (same ε/v
    parameterization) on noisy training images at the timesteps it will sample (uniform over
    ``sample_steps`` grid points), labels dropped as in `DenoisingObjective` so that a student of
    a guided teacher also learns the null class.

    Attributes:
      schedule, parameterization, num_classes, label_dropout: as for `DenoisingObjective`.
      sample_steps: the student's sampling steps (``sampling_timesteps(sample_steps, T)``).
    """

    schedule: Schedule
    parameterization: str
    num_classes: int
    label_dropout: float
    sample_steps: int

    def example(self, batch, keys: jax.Array, teacher: Denoise) -> Example:
        grid = sampling_timesteps(self.sample_steps, self.schedule.num_timesteps)
        _, _, x_t, t, y, alpha_bar = _noisy_data(
            batch, keys, self.schedule, self.num_classes, self.label_dropout, grid
        )
        target = jax.lax.stop_gradient(teacher(x_t, t, y))
        return Example(x_t, t, y, target, alpha_bar)


@dataclasses.dataclass(frozen=True)
class ProgressiveDistillation:
    """Salimans & Ho 2022 Alg. 2 in discrete time.

    The student samples with ``student_steps = N`` DDIM steps on
    ``sampling_timesteps(N, T)``; the teacher's grid of ``2N`` steps holds those plus the
    midpoints. For ``t`` on the student's grid, the teacher takes two deterministic DDIM steps
    ``t -> t' -> t''`` (guided with ``teacher_guidance``, as Meng et al. 2023 distil guided
    models), and the student's target is the clean image that takes it from ``t`` to ``t''`` in
    one step (`lwgen.losses.diffusion.distillation_target`), expressed in its parameterization.
    Labels are not dropped: the guided teacher is distilled into a conditional student.

    Attributes:
      schedule, parameterization, num_classes: as for `DenoisingObjective`.
      student_steps: ``N`` ≥ 1.
      teacher_guidance: the guidance weight ``w`` of the teacher's steps.
    """

    schedule: Schedule
    parameterization: str
    num_classes: int
    student_steps: int
    teacher_guidance: float

    def example(self, batch, keys: jax.Array, teacher: Denoise) -> Example:
        teacher_grid = sampling_timesteps(2 * self.student_steps, self.schedule.num_timesteps)
        _, _, x_t, t, y, alpha_bar = _noisy_data(
            batch, keys, self.schedule, self.num_classes, 0.0, teacher_grid[::2]
        )
        all_alpha_bar = jnp.asarray(self.schedule.alpha_bar, jnp.float32)
        # Positions of t, t' and t'' on the teacher's grid; alpha_bar = 1 past its end.
        extended = jnp.concatenate([all_alpha_bar[jnp.asarray(teacher_grid)], jnp.ones(1)])
        position = jnp.searchsorted(-jnp.asarray(teacher_grid), -t)
        t_mid = jnp.asarray(teacher_grid, jnp.int32)[position + 1]
        alpha_bar_mid, alpha_bar_end = extended[position + 1], extended[position + 2]

        def teacher_step(x, step_t, ab, ab_next):
            output = guided_output(teacher, x, step_t, y, self.teacher_guidance)
            x0_hat, eps = predict_x0_eps(output, x, ab, self.parameterization)
            return ddim_step(jnp.clip(x0_hat, -1.0, 1.0), eps, *_per_sample(ab, ab_next), 0.0, 0.0)

        x_mid = teacher_step(x_t, t, alpha_bar, alpha_bar_mid)
        x_end = teacher_step(x_mid, t_mid, alpha_bar_mid, alpha_bar_end)
        x0_target = distillation_target(x_t, x_end, alpha_bar, alpha_bar_end)
        target = target_from_x0(x0_target, x_t, alpha_bar, self.parameterization)
        return Example(x_t, t, y, jax.lax.stop_gradient(target), alpha_bar)


def _per_sample(*alpha_bars: jax.Array) -> tuple[jax.Array, ...]:
    """``[b]`` values reshaped to ``[b, 1, 1, 1]`` to broadcast over images."""
    return tuple(a.reshape(-1, 1, 1, 1) for a in alpha_bars)
