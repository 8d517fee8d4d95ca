"""Noise schedules of discrete-time diffusion models: ``beta_t`` and ``alpha_bar``.

The forward process of Ho et al. 2020 (eq. 4) is ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0,
(1 - alpha_bar_t) I)`` with ``alpha_bar_t = prod_{s <= t} (1 - beta_s)``. Timesteps are the
integers ``t = 0 .. T-1`` (``t = 0`` is the first, least noisy step; the paper's ``t = 1``).

A `Schedule` holds float64 numpy arrays so that the same numbers are used by the JAX training
step, the JAX samplers, and (stored in ``bundle.json``) the numpy sampler of ``export/pi_infer.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lwgen.errors import ConfigError

COSINE_OFFSET = 0.008  # s of Nichol & Dhariwal 2021 eq. 17
MAX_BETA = 0.999  # their clipping of beta_t (§3.2)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A noise schedule over ``T`` discrete timesteps.

    Attributes:
      name: ``"linear"`` or ``"cosine"``.
      betas: float64 ``[T]`` ``beta_t`` in ``(0, 1)``.
      alpha_bar: float64 ``[T]`` ``prod_{s <= t} (1 - beta_s)``, strictly decreasing in
        ``(0, 1)``.
    """

    name: str
    betas: np.ndarray
    alpha_bar: np.ndarray

    @property
    def num_timesteps(self) -> int:
        """``T``."""
        return int(self.betas.shape[0])

    @classmethod
    def from_alpha_bar(cls, name: str, alpha_bar) -> Schedule:
        """The schedule of stored ``alpha_bar`` values (e.g. a bundle's), ``beta_t`` recovered as
        ``1 - alpha_bar_t / alpha_bar_{t-1}``.

        Raises:
          ConfigError: unless ``alpha_bar`` is a non-empty, strictly decreasing sequence in
            ``(0, 1)``.
        """
        alpha_bar = np.asarray(alpha_bar, np.float64)
        if (
            alpha_bar.ndim != 1
            or alpha_bar.size == 0
            or not (alpha_bar.min() > 0.0 and alpha_bar.max() < 1.0)
            or np.any(np.diff(alpha_bar) >= 0)
        ):
            raise ConfigError("alpha_bar must be a strictly decreasing sequence in (0, 1)")
        previous = np.concatenate([[1.0], alpha_bar[:-1]])
        return cls(name, 1.0 - alpha_bar / previous, alpha_bar)


def linear_schedule(
    num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Schedule:
    """Linear ``beta_t`` from ``beta_start`` to ``beta_end`` (Ho et al. 2020 §4).

    The paper's constants (1e-4 to 0.02 over ``T = 1000``) are rescaled by ``1000 / T`` for
    other ``T`` so that the total noise ``alpha_bar_{T-1}`` stays near zero (as in Nichol &
    Dhariwal 2021's code for shorter schedules).

    Raises:
      ConfigError: if ``num_timesteps < 1`` or the betas leave ``(0, 1)``.
    """
    _check_num_timesteps(num_timesteps)
    scale = 1000.0 / num_timesteps
    betas = np.linspace(scale * beta_start, scale * beta_end, num_timesteps, dtype=np.float64)
    if not (betas.min() > 0.0 and betas.max() < 1.0):
        raise ConfigError(
            f"the linear schedule's betas must lie in (0, 1), got [{betas.min()}, {betas.max()}]"
        )
    return Schedule("linear", betas, np.cumprod(1.0 - betas))


def cosine_alpha_bar(t: np.ndarray, num_timesteps: int, s: float = COSINE_OFFSET) -> np.ndarray:
    """``alpha_bar`` of Nichol & Dhariwal 2021 eq. 17 at timesteps ``t``, before beta clipping.

    ``alpha_bar(t) = f(t) / f(0)``, ``f(t) = cos²(((t/T + s) / (1 + s)) · π/2)``, where the
    paper's ``t = 1 .. T`` is our ``t + 1``.

    Args:
      t: float or int array of timesteps ``0 .. T-1``.
      num_timesteps: ``T``.
      s: the offset ``s`` (0.008 in the paper).

    Returns:
      float64 array of the shape of ``t``.
    """

    def f(u):
        return np.cos((u / num_timesteps + s) / (1.0 + s) * np.pi / 2.0) ** 2

    return f(np.asarray(t, np.float64) + 1.0) / f(0.0)


def cosine_schedule(num_timesteps: int = 1000, s: float = COSINE_OFFSET) -> Schedule:
    """The cosine schedule (Nichol & Dhariwal 2021 eq. 17), ``beta_t`` clipped at 0.999 (§3.2).

    Raises:
      ConfigError: if ``num_timesteps < 1``.
    """
    _check_num_timesteps(num_timesteps)
    alpha_bar = cosine_alpha_bar(np.arange(num_timesteps), num_timesteps, s)
    previous = np.concatenate([[1.0], alpha_bar[:-1]])
    betas = np.clip(1.0 - alpha_bar / previous, 0.0, MAX_BETA)
    return Schedule("cosine", betas, np.cumprod(1.0 - betas))


SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}


def make_schedule(name: str, num_timesteps: int) -> Schedule:
    """The schedule called ``name`` (``"linear"`` or ``"cosine"``) over ``num_timesteps`` steps.

    Raises:
      ConfigError: on an unknown name or ``num_timesteps < 1``.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"diffusion.schedule must be one of {sorted(SCHEDULES)}, got {name!r}")
    return SCHEDULES[name](num_timesteps)


def sampling_timesteps(num_steps: int, num_timesteps: int) -> np.ndarray:
    """The ``num_steps`` timesteps a few-step sampler visits, from noisiest to cleanest.

    Step ``k`` of ``N`` sits at ``round((k + 1) · T / N) - 1``, so the grid of ``N`` steps is
    every other entry of the grid of ``2N`` steps (what progressive distillation, Salimans & Ho
    2022 Alg. 2, halves round by round); the last entry is always ``T - 1``.

    Returns:
      int32 ``[num_steps]``, strictly decreasing, in ``[0, T)``.

    Raises:
      ConfigError: unless ``1 <= num_steps <= num_timesteps``.
    """
    if not 1 <= num_steps <= num_timesteps:
        raise ConfigError(
            f"the number of sampling steps must lie in [1, {num_timesteps}], got {num_steps}"
        )
    grid = np.round(np.arange(1, num_steps + 1) * num_timesteps / num_steps).astype(np.int64) - 1
    return grid[::-1].astype(np.int32)


def _check_num_timesteps(num_timesteps: int) -> None:
    if num_timesteps < 1:
        raise ConfigError(f"diffusion.num_timesteps must be >= 1, got {num_timesteps}")
