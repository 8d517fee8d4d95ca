"""The diffusion samplers of ``lwgen.diffusion.samplers`` in plain numpy, for the device.

Used by ``export/pi_infer.py`` (keep the two files side by side); needs only numpy. The math is
that of lwgen (``tests/test_pi_infer_diffusion.py`` checks the two agree to float tolerance):

- timestep embedding: Vaswani et al. 2017 §3.5 as in Ho et al. 2020 App. B (sines, then cosines);
- DDIM step: Song et al. 2021 eq. 12 with ``sigma`` of eq. 16;
- DDPM step: Ho et al. 2020 Alg. 2 with the posterior mean (eq. 7) and ``sigma² = beta~``;
- classifier-free guidance: Ho & Salimans 2022 eq. 6, the zero one-hot as the null class;
- ε / v parameterization: Ho et al. 2020 eq. 14; Salimans & Ho 2022 App. D.

``denoise(x_t f32 [B, H, W, C], t_embedding f32 [B, D], y f32 [B, K]) -> f32 [B, H, W, C]`` is the
bundle's TFLite model; the schedule (``alpha_bar``) comes from ``bundle.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Denoise = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def timestep_embedding(t: np.ndarray, dim: int, max_period: float = 10_000) -> np.ndarray:
    """float32 ``[B, dim]`` sinusoidal embedding of integer timesteps ``t`` ``[B]``."""
    half = dim // 2
    freqs = np.exp(-math.log(max_period) * np.arange(half, dtype=np.float32) / half)
    angles = np.asarray(t, np.float32)[:, None] * freqs[None, :].astype(np.float32)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


def sampling_timesteps(num_steps: int, num_timesteps: int) -> np.ndarray:
    """int ``[num_steps]``: step ``k`` of ``N`` at ``round((k + 1) T / N) - 1``, noisiest first."""
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"--steps must lie in [1, {num_timesteps}], got {num_steps}")
    grid = np.round(np.arange(1, num_steps + 1) * num_timesteps / num_steps).astype(np.int64) - 1
    return grid[::-1]


def predict_x0_eps(output, x_t, alpha_bar: float, parameterization: str):
    """``(x0, eps)`` implied by the denoiser output at ``x_t``."""
    alpha, sigma = np.float32(math.sqrt(alpha_bar)), np.float32(math.sqrt(1.0 - alpha_bar))
    if parameterization == "eps":
        return (x_t - sigma * output) / alpha, output
    return alpha * x_t - sigma * output, sigma * x_t + alpha * output


def ddim_step(x0, eps, alpha_bar_t: float, alpha_bar_prev: float, eta: float, noise):
    """``x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma²) eps + sigma · noise``."""
    ab_t, ab_prev = np.float32(alpha_bar_t), np.float32(alpha_bar_prev)
    sigma = np.float32(eta) * np.sqrt((1 - ab_prev) / (1 - ab_t)) * np.sqrt(1 - ab_t / ab_prev)
    direction = np.sqrt(np.maximum(1 - ab_prev - sigma**2, np.float32(0)))
    return np.sqrt(ab_prev) * x0 + direction * eps + sigma * noise


def ddpm_step(x_t, x0, alpha_bar_t: float, alpha_bar_prev: float, noise):
    """``x_prev ~ q(x_prev | x_t, x0)``, strided ``beta = 1 - ab_t / ab_prev``."""
    ab_t, ab_prev = np.float32(alpha_bar_t), np.float32(alpha_bar_prev)
    beta = 1 - ab_t / ab_prev
    mean = (
        np.sqrt(ab_prev) * beta / (1 - ab_t) * x0
        + np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab_t) * x_t
    )
    return mean + np.sqrt((1 - ab_prev) / (1 - ab_t) * beta) * noise


def guided_output(denoise: Denoise, x_t, t_embedding, y, guidance: float) -> np.ndarray:
    """``(1 + w) · f(x, y) - w · f(x, null)``; one call when ``w = 0``."""
    if guidance == 0.0:
        return denoise(x_t, t_embedding, y)
    both = denoise(
        np.concatenate([x_t, x_t]),
        np.concatenate([t_embedding, t_embedding]),
        np.concatenate([y, np.zeros_like(y)]),
    )
    conditional, unconditional = np.split(both, 2)
    return (1 + np.float32(guidance)) * conditional - np.float32(guidance) * unconditional


def sample(
    denoise: Denoise,
    x_T: np.ndarray,
    y: np.ndarray,
    timesteps: np.ndarray,
    alpha_bar: np.ndarray,
    *,
    embed_dim: int,
    parameterization: str,
    sampler: str = "ddim",
    eta: float = 0.0,
    guidance: float = 0.0,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Runs the sampler from ``x_T`` (float32 ``[B, H, W, C]``) down ``timesteps`` (strictly
    decreasing ints); ``noise`` float32 ``[N, B, H, W, C]`` (zeros when None).

    Returns:
      float32 ``[B, H, W, C]`` images in ``[-1, 1]``.

    Raises:
      ValueError: on an unknown sampler or parameterization.
    """
    if sampler not in ("ddim", "ddpm") or parameterization not in ("eps", "v"):
        raise ValueError(f"unknown sampler {sampler!r} or parameterization {parameterization!r}")
    alpha_bar = np.asarray(alpha_bar, np.float64)
    current = alpha_bar[np.asarray(timesteps)].astype(np.float32)
    previous = np.concatenate([current[1:], [np.float32(1.0)]])
    noise = np.zeros((len(timesteps), *x_T.shape), np.float32) if noise is None else noise
    x = x_T.astype(np.float32)
    for k, t in enumerate(timesteps):
        embedding = timestep_embedding(np.full(len(x), t), embed_dim)
        output = guided_output(denoise, x, embedding, y, guidance)
        x0, eps = predict_x0_eps(output, x, float(current[k]), parameterization)
        x0 = np.clip(x0, -1.0, 1.0)
        if sampler == "ddim":
            x = ddim_step(x0, eps, current[k], previous[k], eta, noise[k])
        else:
            x = ddpm_step(x, x0, current[k], previous[k], noise[k])
    return np.clip(x, -1.0, 1.0).astype(np.float32)
