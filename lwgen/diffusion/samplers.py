"""Diffusion samplers in JAX: DDPM ancestral sampling, DDIM with ``eta``, classifier-free
guidance; on any decreasing sub-sequence of the timesteps.

A sampler walks ``timesteps`` ``t_0 > t_1 > ... > t_{N-1}`` and after the last step returns the
clean image (``alpha_bar = 1`` past the end). At each step the (guided) denoiser output gives the
predicted ``x0`` (clipped to ``[-1, 1]``) and ``eps`` (``lwgen.losses.diffusion.predict_x0_eps``).
All randomness is the ``noise`` argument (float32 ``[N, B, H, W, C]``), so that the numpy twin of
these samplers in ``export/pi_infer.py`` gives the same images from the same numbers.

``denoise(x_t f32 [B, H, W, C], t int32 [B], y f32 [B, K]) -> model output f32 [B, H, W, C]``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lwgen.diffusion.schedules import Schedule
from lwgen.errors import ConfigError
from lwgen.losses.diffusion import predict_x0_eps

Denoise = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
SAMPLERS = ("ddim", "ddpm")


def check_sampler(sampler: str) -> None:
    """Raises ``ConfigError`` unless ``sampler`` is ``"ddim"`` or ``"ddpm"``."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"the sampler must be one of {SAMPLERS}, got {sampler!r}")


def guided_output(
    denoise: Denoise, x_t: jax.Array, t: jax.Array, y: jax.Array, guidance: float
) -> jax.Array:
    """Classifier-free guidance (Ho & Salimans 2022 eq. 6): ``(1 + w) · f(x, y) - w · f(x, null)``
    with the zero one-hot as the null class; one batched call of ``denoise`` for both terms.
    ``w = 0`` is the plain conditional model (one call on ``B`` inputs)."""
    if guidance == 0.0:
        return denoise(x_t, t, y)
    both = denoise(
        jnp.concatenate([x_t, x_t]),
        jnp.concatenate([t, t]),
        jnp.concatenate([y, jnp.zeros_like(y)]),
    )
    conditional, unconditional = jnp.split(both, 2)
    return (1.0 + guidance) * conditional - guidance * unconditional


def ddim_step(
    x0: jax.Array,
    eps: jax.Array,
    alpha_bar_t: jax.Array,
    alpha_bar_prev: jax.Array,
    eta: float,
    noise: jax.Array,
) -> jax.Array:
    """One DDIM update ``x_t -> x_prev`` (Song et al. 2021 eq. 12, ``sigma`` of eq. 16):

    ``x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma²) eps + sigma · noise``,
    ``sigma = eta · sqrt((1 - ab_prev) / (1 - ab_t)) · sqrt(1 - ab_t / ab_prev)``.
    ``eta = 0`` is deterministic DDIM; ``eta = 1`` has DDPM's posterior variance.

    Args:
      x0, eps: float32 ``[B, H, W, C]`` predicted clean image and noise.
      alpha_bar_t, alpha_bar_prev: float32 scalars (``alpha_bar_prev = 1`` past the last step).
      eta: float in ``[0, 1]``.
      noise: float32 ``[B, H, W, C]`` standard normal.
    """
    sigma = (
        eta
        * jnp.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t))
        * jnp.sqrt(1.0 - alpha_bar_t / alpha_bar_prev)
    )
    direction = jnp.sqrt(jnp.maximum(1.0 - alpha_bar_prev - sigma**2, 0.0))
    return jnp.sqrt(alpha_bar_prev) * x0 + direction * eps + sigma * noise


def ddpm_step(
    x_t: jax.Array,
    x0: jax.Array,
    alpha_bar_t: jax.Array,
    alpha_bar_prev: jax.Array,
    noise: jax.Array,
) -> jax.Array:
    """One ancestral step ``x_prev ~ q(x_prev | x_t, x0)`` (Ho et al. 2020 Alg. 2 written with the
    posterior mean of eq. 7 and ``sigma_t² = beta~_t``, §3.2; for a strided sub-sequence
    ``beta_t = 1 - ab_t / ab_prev``, Nichol & Dhariwal 2021 §4).

    Args:
      x_t, x0: float32 ``[B, H, W, C]`` current sample and predicted clean image.
      alpha_bar_t, alpha_bar_prev: float32 scalars.
      noise: float32 ``[B, H, W, C]`` standard normal.
    """
    beta = 1.0 - alpha_bar_t / alpha_bar_prev
    mean = (
        jnp.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar_t) * x0
        + jnp.sqrt(1.0 - beta) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * x_t
    )
    variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta
    return mean + jnp.sqrt(variance) * noise


def step_alpha_bars(schedule: Schedule, timesteps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha_bar[t_k], alpha_bar[t_{k+1}])`` per step, float32 ``[N]`` each, the second
    ending in 1 (the clean image).

    Raises:
      ConfigError: unless ``timesteps`` is a strictly decreasing sequence in ``[0, T)``.
    """
    timesteps = np.asarray(timesteps)
    if (
        timesteps.ndim != 1
        or timesteps.size == 0
        or timesteps.min() < 0
        or timesteps.max() >= schedule.num_timesteps
        or np.any(np.diff(timesteps) >= 0)
    ):
        raise ConfigError(
            f"sampling timesteps must be strictly decreasing in [0, {schedule.num_timesteps}), "
            f"got {timesteps.tolist()}"
        )
    current = schedule.alpha_bar[timesteps]
    previous = np.concatenate([current[1:], [1.0]])
    return current.astype(np.float32), previous.astype(np.float32)


def sample(
    denoise: Denoise,
    x_T: jax.Array,
    y: jax.Array,
    timesteps: np.ndarray,
    schedule: Schedule,
    *,
    parameterization: str,
    sampler: str = "ddim",
    eta: float = 0.0,
    guidance: float = 0.0,
    noise: jax.Array | None = None,
    return_trajectory: bool = False,
) -> jax.Array:
    """Runs a sampler from ``x_T`` down the given timesteps (traceable; ``lax.scan`` over steps).

    Args:
      denoise: the denoiser (see the module docstring).
      x_T: float32 ``[B, H, W, C]`` standard normal start.
      y: float32 ``[B, K]`` one-hot classes (zero rows sample the unconditional model).
      timesteps: int ``[N]`` strictly decreasing (`lwgen.diffusion.schedules.sampling_timesteps`).
      schedule: the noise schedule the denoiser was trained with.
      parameterization: ``"eps"`` or ``"v"``.
      sampler: ``"ddim"`` or ``"ddpm"``.
      eta: DDIM's ``eta`` (ignored by ``"ddpm"``).
      guidance: classifier-free guidance weight ``w`` (0: none).
      noise: float32 ``[N, B, H, W, C]`` per-step noise; ``None`` means zeros (fine for
        deterministic DDIM, ``eta = 0``).
      return_trajectory: return the states instead of the images.

    Returns:
      float32 ``[B, H, W, C]`` images in ``[-1, 1]``; with ``return_trajectory``, the states
      ``x_t`` the denoiser was called on, float32 ``[N, B, H, W, C]`` (step ``k`` at
      ``timesteps[k]``).

    Raises:
      ConfigError: on an unknown sampler or bad timesteps.
    """
    check_sampler(sampler)
    alpha_bar_t, alpha_bar_prev = step_alpha_bars(schedule, timesteps)
    if noise is None:
        noise = jnp.zeros((len(timesteps), *x_T.shape), jnp.float32)
    batch = x_T.shape[0]

    def body(x, per_step):
        t, ab_t, ab_prev, step_noise = per_step
        output = guided_output(denoise, x, jnp.full((batch,), t, jnp.int32), y, guidance)
        x0, eps = predict_x0_eps(output, x, jnp.full((batch,), ab_t), parameterization)
        x0 = jnp.clip(x0, -1.0, 1.0)
        if sampler == "ddim":
            x_prev = ddim_step(x0, eps, ab_t, ab_prev, eta, step_noise)
        else:
            x_prev = ddpm_step(x, x0, ab_t, ab_prev, step_noise)
        return x_prev, x

    steps = (jnp.asarray(timesteps, jnp.int32), alpha_bar_t, alpha_bar_prev, noise)
    x, trajectory = jax.lax.scan(body, x_T, steps)
    return trajectory if return_trajectory else jnp.clip(x, -1.0, 1.0)


def sampler_noise(seed: int, num_steps: int, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """``(x_T f32 [B, H, W, C], noise f32 [num_steps, B, H, W, C])``, standard normal from
    ``numpy.random.default_rng(seed)`` (``x_T`` first): the draw ``export/pi_infer.py`` makes too.
    """
    rng = np.random.default_rng(seed)
    x_T = rng.standard_normal(shape, dtype=np.float32)
    return x_T, rng.standard_normal((num_steps, *shape), dtype=np.float32)
