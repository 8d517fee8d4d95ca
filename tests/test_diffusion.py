"""Schedules, objectives and samplers of diffusion models against hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lwgen.diffusion import samplers
from lwgen.diffusion.schedules import (
    Schedule,
    cosine_schedule,
    linear_schedule,
    make_schedule,
    sampling_timesteps,
)
from lwgen.errors import ConfigError
from lwgen.families.diffusion_objectives import ProgressiveDistillation
from lwgen.losses import diffusion as losses


def test_linear_alpha_bar_is_the_product_of_ho_betas():
    schedule = linear_schedule(1000)
    beta = lambda t: 1e-4 + (0.02 - 1e-4) * t / 999  # noqa: E731  (Ho et al. 2020 §4)
    assert schedule.betas[0] == pytest.approx(1e-4)
    assert schedule.betas[999] == pytest.approx(0.02)
    assert schedule.alpha_bar[1] == pytest.approx((1 - beta(0)) * (1 - beta(1)), rel=1e-12)
    expected = math.prod(1 - beta(t) for t in range(500))
    assert schedule.alpha_bar[499] == pytest.approx(expected, rel=1e-9)
    assert schedule.alpha_bar[999] < 1e-4


def test_cosine_alpha_bar_follows_nichol_dhariwal_eq_17():
    schedule = cosine_schedule(1000)
    s = 0.008

    def f(t):
        return math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2

    for t in (0, 250, 500, 900):  # paper timestep t + 1
        assert schedule.alpha_bar[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert schedule.betas.max() == pytest.approx(0.999)  # clipped at the end (§3.2)
    assert np.all(np.diff(schedule.alpha_bar) < 0)


def test_schedule_errors_name_the_entry():
    with pytest.raises(ConfigError, match="diffusion.schedule"):
        make_schedule("sigmoid", 10)
    with pytest.raises(ConfigError, match="num_timesteps"):
        linear_schedule(0)
    with pytest.raises(ConfigError, match="strictly decreasing"):
        Schedule.from_alpha_bar("x", [0.5, 0.7])


def test_schedule_round_trips_through_stored_alpha_bar():
    schedule = cosine_schedule(100)
    again = Schedule.from_alpha_bar("cosine", schedule.alpha_bar.tolist())
    np.testing.assert_allclose(again.betas, schedule.betas, rtol=1e-9)


def test_sampling_grids_nest_for_progressive_distillation():
    assert sampling_timesteps(4, 1000).tolist() == [999, 749, 499, 249]
    assert sampling_timesteps(1, 1000).tolist() == [999]
    for n in (1, 2, 4, 8, 16, 3):
        assert sampling_timesteps(2 * n, 1000)[::2].tolist() == sampling_timesteps(n, 1000).tolist()
    with pytest.raises(ConfigError, match="sampling steps"):
        sampling_timesteps(11, 10)


def _image(seed, shape=(2, 4, 4, 1)):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("parameterization", ["eps", "v"])
def test_targets_give_back_x0_and_eps(parameterization):
    x0, noise = jnp.tanh(_image(0)), _image(1)
    alpha_bar = jnp.asarray([0.9, 0.2])
    x_t = losses.q_sample(x0, noise, alpha_bar)
    target = losses.prediction_target(x0, noise, alpha_bar, parameterization)
    x0_hat, eps_hat = losses.predict_x0_eps(target, x_t, alpha_bar, parameterization)
    np.testing.assert_allclose(x0_hat, x0, atol=1e-5)
    np.testing.assert_allclose(eps_hat, noise, atol=1e-5)
    back = losses.target_from_x0(x0, x_t, alpha_bar, parameterization)
    np.testing.assert_allclose(back, target, atol=1e-4)


def test_v_target_by_hand():
    x0, noise = jnp.full((1, 1, 1, 1), 0.5), jnp.full((1, 1, 1, 1), -1.0)
    v = losses.prediction_target(x0, noise, jnp.asarray([0.64]), "v")
    assert float(v[0, 0, 0, 0]) == pytest.approx(0.8 * -1.0 - 0.6 * 0.5)  # alpha eps - sigma x0


def test_label_dropout_zeroes_rows_below_the_probability():
    y = jnp.eye(3)
    dropped = losses.drop_labels(y, jnp.asarray([0.05, 0.5, 0.09]), 0.1)
    np.testing.assert_array_equal(dropped, [[0, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_ddim_step_by_hand():
    x0, eps = jnp.full((1, 1, 1, 1), 0.5), jnp.full((1, 1, 1, 1), 2.0)
    out = samplers.ddim_step(x0, eps, 0.36, 0.64, 0.0, jnp.zeros_like(x0))
    assert float(out[0, 0, 0, 0]) == pytest.approx(0.8 * 0.5 + 0.6 * 2.0)
    # eta = 1: sigma = sqrt(0.36 / 0.64) * sqrt(1 - 0.36 / 0.64)
    sigma = math.sqrt(0.36 / 0.64) * math.sqrt(1 - 0.36 / 0.64)
    noisy = samplers.ddim_step(x0, eps, 0.36, 0.64, 1.0, jnp.ones_like(x0))
    expected = 0.8 * 0.5 + math.sqrt(0.36 - sigma**2) * 2.0 + sigma
    assert float(noisy[0, 0, 0, 0]) == pytest.approx(expected, rel=1e-6)


def test_ddpm_step_is_the_posterior_and_ends_at_x0():
    x_t, x0 = jnp.full((1, 1, 1, 1), 0.3), jnp.full((1, 1, 1, 1), -0.2)
    ab_t, ab_prev = 0.5, 0.8
    beta = 1 - ab_t / ab_prev
    mean = (
        math.sqrt(ab_prev) * beta / (1 - ab_t) * -0.2
        + math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab_t) * 0.3
    )
    out = samplers.ddpm_step(x_t, x0, ab_t, ab_prev, jnp.ones_like(x0))
    std = math.sqrt((1 - ab_prev) / (1 - ab_t) * beta)
    assert float(out[0, 0, 0, 0]) == pytest.approx(mean + std, rel=1e-6)
    np.testing.assert_allclose(samplers.ddpm_step(x_t, x0, ab_t, 1.0, x0), x0, atol=1e-7)


def _oracle(x0, schedule, parameterization):
    """A denoiser that knows the clean image: returns the exact target at any (x_t, t)."""

    def denoise(x_t, t, y):
        ab = jnp.asarray(schedule.alpha_bar, jnp.float32)[t]
        images = jnp.tile(x0, (x_t.shape[0] // x0.shape[0], 1, 1, 1))  # guidance doubles B
        return losses.target_from_x0(images, x_t, ab, parameterization)

    return denoise


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.0)])
@pytest.mark.parametrize("parameterization", ["eps", "v"])
def test_samplers_with_an_oracle_denoiser_return_its_image(sampler, eta, parameterization):
    schedule = cosine_schedule(100)
    x0 = jnp.tanh(_image(3))
    timesteps = sampling_timesteps(5, 100)
    x_T, noise = samplers.sampler_noise(0, 5, x0.shape)
    out = samplers.sample(
        _oracle(x0, schedule, parameterization),
        jnp.asarray(x_T),
        jnp.zeros((2, 3)),
        timesteps,
        schedule,
        parameterization=parameterization,
        sampler=sampler,
        eta=eta,
        noise=jnp.asarray(noise),
    )
    np.testing.assert_allclose(out, x0, atol=2e-3)


def test_guidance_extrapolates_from_the_null_class():
    def denoise(x, t, y):
        return x + jnp.sum(y, axis=1).reshape(-1, 1, 1, 1)

    x, t, y = jnp.zeros((2, 1, 1, 1)), jnp.zeros(2, jnp.int32), jnp.eye(2)
    np.testing.assert_allclose(samplers.guided_output(denoise, x, t, y, 0.0), 1.0)
    np.testing.assert_allclose(samplers.guided_output(denoise, x, t, y, 2.0), 3.0)  # 3·1 - 2·0


def test_bad_timesteps_and_sampler_are_refused():
    schedule = cosine_schedule(10)
    denoise = lambda x, t, y: x  # noqa: E731
    with pytest.raises(ConfigError, match="strictly decreasing"):
        samplers.sample(denoise, jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2)), np.array([3, 5]),
                        schedule, parameterization="v")  # fmt: skip
    with pytest.raises(ConfigError, match="sampler"):
        samplers.sample(denoise, jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2)), np.array([5]),
                        schedule, parameterization="v", sampler="euler")  # fmt: skip


@pytest.mark.parametrize("parameterization", ["eps", "v"])
def test_progressive_distillation_target_of_an_exact_teacher_is_its_image(parameterization):
    """Two DDIM steps of a teacher that knows x0 land on the DDIM path of x0, so the one-step
    target (Salimans & Ho 2022 Alg. 2) implies x0 itself."""
    schedule = cosine_schedule(100)
    x0 = jnp.tanh(_image(4, (4, 4, 4, 1)))
    objective = ProgressiveDistillation(schedule, parameterization, 3, 2, 1.5)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    batch = {"image": x0, "label": jnp.zeros(4, jnp.int32)}
    example = objective.example(batch, keys, _oracle(x0, schedule, parameterization))
    assert set(np.asarray(example.t).tolist()) <= {99, 49}
    x0_hat, _ = losses.predict_x0_eps(
        example.target, example.x_t, example.alpha_bar, parameterization
    )
    np.testing.assert_allclose(x0_hat, x0, atol=2e-3)
