"""Tests for structured (channel) pruning into a physically smaller generator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from lwgen.compress import structured
from lwgen.models.dcgan import Generator


def _generator(upsample):
    generator = Generator(
        num_classes=3, image_shape=(16, 16, 1), latent_dim=5, base_width=4, upsample=upsample
    )
    z = jnp.ones((1, 5))
    y = jax.nn.one_hot(jnp.zeros(1, jnp.int32), 3)
    variables = jax.jit(generator.init)(jax.random.PRNGKey(0), z, y)
    return generator, jax.tree.map(np.array, variables)


def _silence_channels(generator, variables, dead):
    """Zeroes the filters, BatchNorm bias and running mean of ``dead[i]`` channels of block i,
    so those channels output exactly 0 after BatchNorm + ReLU."""
    flat = traverse_util.flatten_dict(variables)
    for block, channels in zip(structured.dcgan_generator_blocks(generator), dead, strict=True):
        kernel = flat[("params", *block.producer, "kernel")]
        num_channels = kernel.shape[-1] // block.positions
        for m in range(block.positions):
            kernel[..., [m * num_channels + c for c in channels]] = 0.0
        flat[("params", *block.norm, "bias")][channels] = 0.0
        flat[("batch_stats", *block.norm, "mean")][channels] = 0.0
    return traverse_util.unflatten_dict(flat)


@pytest.mark.parametrize("upsample", ["resize_conv", "transpose", "subpixel"])
def test_pruned_generator_matches_original_when_pruned_channels_were_zero(upsample):
    generator, variables = _generator(upsample)
    assert generator.block_widths() == (8, 4)
    variables = _silence_channels(generator, variables, dead=[[1, 4, 6, 7], [0, 2]])
    kwargs, pruned = structured.prune_generator_channels(generator, variables, amount=0.5)
    assert kwargs["widths"] == (4, 2)
    small = Generator(**kwargs)
    assert pruned["params"]["project"]["kernel"].shape == (8, 16 * 4)
    z = jax.random.normal(jax.random.PRNGKey(1), (6, 5))
    y = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    expected = jax.jit(generator.apply)(variables, z, y)
    np.testing.assert_allclose(jax.jit(small.apply)(pruned, z, y), expected, atol=1e-6)
    sizes = [x.size for x in jax.tree.leaves(pruned["params"])]
    assert sum(sizes) < sum(x.size for x in jax.tree.leaves(variables["params"]))


def test_channel_l1_norms_sum_every_position_of_a_channel():
    kernel = np.zeros((2, 6))
    kernel[:, 1] = [1.0, -2.0]  # position 0, channel 1
    kernel[:, 4] = [0.5, 0.5]  # position 1, channel 1
    kernel[0, 3] = -4.0  # position 1, channel 0
    np.testing.assert_allclose(structured.channel_l1_norms(kernel, positions=2), [4.0, 4.0, 0.0])
    with pytest.raises(ValueError, match="multiple"):
        structured.channel_l1_norms(kernel, positions=4)


def test_prune_keeps_at_least_one_channel_and_rejects_bad_amounts():
    generator, variables = _generator("resize_conv")
    kwargs, _ = structured.prune_generator_channels(generator, variables, amount=0.99)
    assert kwargs["widths"] == (1, 1)
    with pytest.raises(ValueError, match="amount"):
        structured.prune_generator_channels(generator, variables, amount=1.0)


def test_ranking_folds_the_batchnorm_gain_into_the_filter_norm():
    flat = {
        ("params", "a", "kernel"): np.array([[1.0, 2.0, 0.5]]),
        ("params", "a_bn", "scale"): np.array([1.0, 0.01, 8.0]),
        ("batch_stats", "a_bn", "mean"): np.zeros(3),
        ("batch_stats", "a_bn", "var"): np.array([1.0, 1.0, 4.0]),
        ("params", "b", "kernel"): np.ones((3, 2)),
    }
    gains = structured.batchnorm_gains(flat, ("a_bn",))
    np.testing.assert_allclose(gains, [1.0, 0.01, 4.0], rtol=1e-4)
    block = structured.ChannelBlock(("a",), ("a_bn",), ("b",))
    variables = traverse_util.unflatten_dict(flat)
    pruned, widths = structured.prune_channel_blocks(variables, [block], amount=0.34)
    assert widths == [2]
    # channel 1 has the largest filter but a tiny gain: it is the one removed
    np.testing.assert_array_equal(pruned["params"]["a"]["kernel"], [[1.0, 0.5]])
    np.testing.assert_array_equal(pruned["params"]["a_bn"]["scale"], [1.0, 8.0])
    assert pruned["params"]["b"]["kernel"].shape == (2, 2)
