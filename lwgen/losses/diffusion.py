"""Diffusion training objectives: the forward process, ε- and v-prediction, label dropout for
classifier-free guidance, and the progressive-distillation target.

Images are float32 ``[B, H, W, C]`` in ``[-1, 1]``; ``alpha_bar`` is float32 ``[B]`` (one value
per sample, ``lwgen.diffusion.schedules``), broadcast over ``H, W, C``. Writing
``alpha = sqrt(alpha_bar)`` and ``sigma = sqrt(1 - alpha_bar)``, the noisy image is
``x_t = alpha · x_0 + sigma · eps`` (Ho et al. 2020 eq. 4).

Losses are pure and return ``(scalar, aux_dict)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lwgen.errors import ConfigError

Aux = dict[str, jax.Array]
PARAMETERIZATIONS = ("eps", "v")


def check_parameterization(parameterization: str) -> None:
    """Raises ``ConfigError`` unless ``parameterization`` is ``"eps"`` or ``"v"``."""
    if parameterization not in PARAMETERIZATIONS:
        raise ConfigError(
            f"diffusion.parameterization must be one of {PARAMETERIZATIONS}, "
            f"got {parameterization!r}"
        )


def _alpha_sigma(alpha_bar: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sqrt(alpha_bar), sqrt(1 - alpha_bar))`` shaped ``[B, 1, 1, 1]``."""
    alpha_bar = jnp.asarray(alpha_bar, jnp.float32).reshape(-1, 1, 1, 1)
    return jnp.sqrt(alpha_bar), jnp.sqrt(1.0 - alpha_bar)


def q_sample(x0: jax.Array, noise: jax.Array, alpha_bar: jax.Array) -> jax.Array:
    """A draw of ``q(x_t | x_0)`` (Ho et al. 2020 eq. 4): ``alpha · x0 + sigma · noise``.

    Args:
      x0: float32 ``[B, H, W, C]`` clean images in ``[-1, 1]``.
      noise: float32 ``[B, H, W, C]`` standard normal.
      alpha_bar: float32 ``[B]`` ``alpha_bar_t`` of each sample's timestep.

    Returns:
      float32 ``[B, H, W, C]`` noisy images ``x_t``.
    """
    alpha, sigma = _alpha_sigma(alpha_bar)
    return alpha * x0 + sigma * noise


def prediction_target(
    x0: jax.Array, noise: jax.Array, alpha_bar: jax.Array, parameterization: str
) -> jax.Array:
    """What the denoiser learns to output.

    ``"eps"``: the noise ``eps`` (Ho et al. 2020 eq. 14). ``"v"``: the velocity
    ``v = alpha · eps - sigma · x0`` (Salimans & Ho 2022 §4, App. D).

    Returns:
      float32 ``[B, H, W, C]``.

    Raises:
      ConfigError: on an unknown ``parameterization``.
    """
    check_parameterization(parameterization)
    if parameterization == "eps":
        return noise
    alpha, sigma = _alpha_sigma(alpha_bar)
    return alpha * noise - sigma * x0


def predict_x0_eps(
    model_output: jax.Array, x_t: jax.Array, alpha_bar: jax.Array, parameterization: str
) -> tuple[jax.Array, jax.Array]:
    """The clean image and the noise implied by a denoiser output (no clipping).

    ``"eps"``: ``x0 = (x_t - sigma · eps) / alpha``. ``"v"``: ``x0 = alpha · x_t - sigma · v``,
    ``eps = sigma · x_t + alpha · v`` (Salimans & Ho 2022 App. D).

    Args:
      model_output: float32 ``[B, H, W, C]``.
      x_t: float32 ``[B, H, W, C]``.
      alpha_bar: float32 ``[B]``.
      parameterization: ``"eps"`` or ``"v"``.

    Returns:
      ``(x0, eps)``, float32 ``[B, H, W, C]`` each.
    """
    check_parameterization(parameterization)
    alpha, sigma = _alpha_sigma(alpha_bar)
    if parameterization == "eps":
        return (x_t - sigma * model_output) / alpha, model_output
    return alpha * x_t - sigma * model_output, sigma * x_t + alpha * model_output


def denoising_loss(
    model_output: jax.Array, target: jax.Array, alpha_bar: jax.Array
) -> tuple[jax.Array, Aux]:
    """Mean squared error between the denoiser output and its target (Ho et al. 2020 eq. 14,
    the "simple" unweighted loss; with a v target it is the SNR+1 weighting of Salimans & Ho 2022
    §4).

    Args:
      model_output, target: float32 ``[B, H, W, C]``.
      alpha_bar: float32 ``[B]`` (only for the aux split by noise level).

    Returns:
      Scalar loss and ``{"mse_low_noise": MSE of samples with alpha_bar > 0.5,
      "mse_high_noise": ... <= 0.5}`` (0 when a half is empty).
    """
    per_sample = jnp.mean(jnp.square(model_output - target), axis=(1, 2, 3))
    low = (alpha_bar > 0.5).astype(jnp.float32)

    def masked_mean(weights):
        return jnp.sum(per_sample * weights) / jnp.maximum(jnp.sum(weights), 1.0)

    return jnp.mean(per_sample), {
        "mse_low_noise": masked_mean(low),
        "mse_high_noise": masked_mean(1.0 - low),
    }


def drop_labels(y: jax.Array, keep_uniform: jax.Array, drop_prob: float) -> jax.Array:
    """Replaces a class one-hot by the zero "null" class with probability ``drop_prob``, so that
    one network learns the conditional and the unconditional model (classifier-free guidance,
    Ho & Salimans 2022 §3.2 and Alg. 1, ``p_uncond`` = 0.1 there).

    Args:
      y: float32 ``[B, K]`` one-hot classes.
      keep_uniform: float32 ``[B]`` uniform draws in ``[0, 1)``.
      drop_prob: the probability of the null class.

    Returns:
      float32 ``[B, K]``.
    """
    keep = (keep_uniform >= drop_prob).astype(y.dtype)
    return y * keep[:, None]


def distillation_target(
    x_t: jax.Array, x_s: jax.Array, alpha_bar_t: jax.Array, alpha_bar_s: jax.Array
) -> jax.Array:
    """The clean image a one-step student must predict at ``t`` to land where the teacher's two
    DDIM steps landed at ``s`` (Salimans & Ho 2022 Alg. 2,
    ``x~ = (z_s - (sigma_s / sigma_t) z_t) / (alpha_s - (sigma_s / sigma_t) alpha_t)``).

    Args:
      x_t: float32 ``[B, H, W, C]`` the student's input at ``t``.
      x_s: float32 ``[B, H, W, C]`` the teacher's result after two steps, at ``s < t``
        (``alpha_bar_s = 1`` for the end of sampling, where the target is ``x_s`` itself).
      alpha_bar_t, alpha_bar_s: float32 ``[B]``.

    Returns:
      float32 ``[B, H, W, C]`` target ``x0``.
    """
    alpha_t, sigma_t = _alpha_sigma(alpha_bar_t)
    alpha_s, sigma_s = _alpha_sigma(alpha_bar_s)
    ratio = sigma_s / sigma_t
    return (x_s - ratio * x_t) / (alpha_s - ratio * alpha_t)


def target_from_x0(
    x0: jax.Array, x_t: jax.Array, alpha_bar: jax.Array, parameterization: str
) -> jax.Array:
    """The denoiser output that implies clean image ``x0`` at ``x_t`` (the inverse of
    `predict_x0_eps`; ``eps = (x_t - alpha · x0) / sigma``).

    Returns:
      float32 ``[B, H, W, C]``.
    """
    alpha, sigma = _alpha_sigma(alpha_bar)
    noise = (x_t - alpha * x0) / sigma
    return prediction_target(x0, noise, alpha_bar, parameterization)
