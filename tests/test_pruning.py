"""Tests for unstructured magnitude pruning: masks, Zhu & Gupta schedule, the optax transform."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lwgen.compress import pruning


def _params():
    rng = np.random.default_rng(0)
    return {
        "a": {"kernel": jnp.asarray(rng.normal(size=(4, 5)), jnp.float32), "bias": jnp.ones(5)},
        "b": {"kernel": jnp.asarray(0.01 * rng.normal(size=(3, 3, 2, 2)), jnp.float32)},
    }


def test_schedule_values_at_chosen_steps():
    schedule = pruning.polynomial_sparsity_schedule(0.8, begin_step=10, end_step=50, frequency=10)
    expected = {
        0: 0.0,
        10: 0.0,
        20: 0.8 * (1 - 0.75**3),
        29: 0.8 * (1 - 0.75**3),
        40: 0.8 * (1 - 0.25**3),
        50: 0.8,
        500: 0.8,
    }
    for step, value in expected.items():
        assert float(schedule(step)) == pytest.approx(value, abs=1e-6), step
    assert float(jax.jit(schedule)(jnp.int32(30))) == pytest.approx(0.8 * (1 - 0.5**3), abs=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(final_sparsity=1.0, begin_step=0, end_step=10),
        dict(final_sparsity=0.5, begin_step=10, end_step=10),
        dict(final_sparsity=0.5, begin_step=0, end_step=10, frequency=3),
    ],
)
def test_schedule_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        pruning.polynomial_sparsity_schedule(**kwargs)


def test_prunable_leaves_are_kernels_outside_excluded_modules():
    flags = pruning.prunable_leaves(_params(), exclude=("b",))
    assert flags == {"a": {"kernel": True, "bias": False}, "b": {"kernel": False}}


def test_layer_masks_prune_exactly_the_smallest_weights_of_each_layer():
    params = _params()
    masks = pruning.magnitude_masks(params, 0.5, pruning.prunable_leaves(params), "layer")
    assert masks["a"]["bias"] is None
    for name in ("a", "b"):
        kernel, mask = np.abs(np.asarray(params[name]["kernel"])), np.asarray(masks[name]["kernel"])
        assert mask.sum() == kernel.size - round(0.5 * kernel.size)
        assert kernel[mask == 0].max() <= kernel[mask == 1].min()


def test_global_masks_use_one_threshold_over_all_layers():
    params = _params()
    masks = pruning.magnitude_masks(params, 0.4, pruning.prunable_leaves(params), "global")
    # 0.4 * 56 = 22 weights pruned; layer "b" (36 weights ~0.01) is much smaller than "a" (~1).
    assert float(masks["b"]["kernel"].sum()) == 36 - 22
    assert float(masks["a"]["kernel"].sum()) == 20


def test_transform_keeps_pruned_weights_exactly_zero_under_adam():
    params = _params()
    prunable = pruning.prunable_leaves(params)
    schedule = pruning.polynomial_sparsity_schedule(0.75, 1, 5, frequency=2)
    tx = pruning.with_pruning(optax.adam(0.1), schedule, prunable, "layer")
    opt_state = tx.init(params)
    update = jax.jit(tx.update)
    target = jax.tree.map(lambda p: p + 1.0, params)
    previous_zeros = None
    for step in range(8):
        grads = jax.tree.map(lambda p, t: p - t, params, target)
        updates, opt_state = update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        masks = optax.tree_utils.tree_get(opt_state, "masks")
        kernel = np.asarray(params["a"]["kernel"])
        zeros = np.asarray(masks["a"]["kernel"]) == 0
        assert np.all(kernel[zeros] == 0.0), step
        assert np.all(kernel[~zeros] != 0.0), step
        if previous_zeros is not None:
            assert np.all(zeros[previous_zeros]), "a pruned weight came back"
        previous_zeros = zeros
        assert zeros.mean() == pytest.approx(float(schedule(step)), abs=0.03)
    assert float(pruning.measure_sparsity(params, prunable)["total"]) == pytest.approx(0.75)
    assert np.all(np.asarray(params["a"]["bias"]) != 0.0)


def test_transform_needs_params():
    params = _params()
    tx = pruning.prune_magnitude(0.5, pruning.prunable_leaves(params))
    with pytest.raises(ValueError, match="params"):
        tx.update(params, tx.init(params))


def test_apply_masks_zeroes_masked_entries_only():
    params = _params()
    masks = pruning.magnitude_masks(params, 0.5, pruning.prunable_leaves(params))
    masked = pruning.apply_masks(params, masks)
    np.testing.assert_array_equal(masked["a"]["bias"], params["a"]["bias"])
    assert float(pruning.measure_sparsity(masked)["total"]) == pytest.approx(0.5, abs=0.02)
