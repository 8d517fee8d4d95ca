"""Perceptual losses against hand-computed values; VGG features, weights file safety, LPIPS,
conditional instance norm and the Johnson network's size."""

import io
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lwgen.errors import ConfigError, DataError, MissingFileError
from lwgen.eval.lpips import lpips
from lwgen.losses import perceptual
from lwgen.models import vgg_weights
from lwgen.models.layers import ConditionalInstanceNorm, instance_norm
from lwgen.models.style import (
    TransformerNet,
    bound_norm_input,
    equalize_norm_inputs,
    kernel_norm,
    output_clip,
)
from lwgen.models.vgg import (
    VGG16_WIDTHS,
    VGG19_BLOCKS,
    VGG16Features,
    made_vgg_weights,
    vgg_variables,
    widths_of,
)

TINY_WIDTHS = (4, 4, 8, 8, 8)


def test_gram_matrix_matches_hand_computed_values():
    # One image, 1x2 pixels, 2 channels: pixel vectors (1, 2) and (3, 4).
    f = jnp.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    # G = sum over pixels of outer products = [[1+9, 2+12], [2+12, 4+16]], over H*W*C = 4.
    np.testing.assert_allclose(perceptual.gram_matrix(f)[0], [[2.5, 3.5], [3.5, 5.0]])


def test_content_style_and_tv_losses_match_hand_computed_values():
    a = jnp.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    b = jnp.array([[[[0.0, 2.0], [3.0, 6.0]]]])
    np.testing.assert_allclose(perceptual.content_loss(a, b), [(1 + 4) / 4])
    g = [jnp.eye(2)[None], jnp.ones((1, 1, 1))]
    targets = [jnp.zeros((1, 2, 2)), jnp.full((1, 1, 1), 3.0)]
    # layer 1: ||I||² = 2 (weight 0.5); layer 2: (1 - 3)² = 4 (weight 2).
    np.testing.assert_allclose(perceptual.style_loss(g, targets, (0.5, 2.0)), [0.5 * 2 + 2 * 4])
    image = jnp.array([[[[0.0], [1.0]], [[2.0], [4.0]]]])  # 2x2, one channel
    # vertical diffs 2, 3 → mean 6.5; horizontal diffs 1, 2 → mean 2.5.
    np.testing.assert_allclose(perceptual.total_variation_loss(image), [6.5 + 2.5])


def test_perceptual_loss_weights_its_terms_and_rejects_bad_weights():
    features = {"relu1_2": jnp.ones((2, 4, 4, 3)), "relu2_2": jnp.zeros((2, 2, 2, 5))}
    weights = perceptual.PerceptualWeights(
        "relu2_2", ("relu1_2",), (1.0,), content_weight=2.0, style_weight=3.0, tv_weight=0.0
    )
    grams = [jnp.zeros((2, 3, 3))]
    loss, aux = perceptual.perceptual_loss(
        features, jnp.ones((2, 2, 2, 5)), grams, jnp.zeros((2, 4, 4, 3)), weights
    )
    # content: mean (0 - 1)² = 1; style: Gram of ones is 1/3 everywhere, 9 entries → 9 / 9 = 1.
    np.testing.assert_allclose([aux["content_loss"], aux["style_loss"]], [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(loss, 2.0 * 1.0 + 3.0 * 1.0, rtol=1e-6)
    with pytest.raises(ConfigError, match="style_layer_weights"):
        perceptual.as_weights({"style_layers": ["relu1_2"], "style_layer_weights": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="unknown loss keys"):
        perceptual.as_weights({"gamma": 1.0})


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _nested(flat):
    tree = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def test_restricted_unpickler_admits_arrays_and_refuses_any_other_global():
    arrays = {"a": np.arange(3, dtype=np.float32)}
    loaded = vgg_weights.restricted_load(pickle.dumps(arrays))
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    for payload in (_Exploit(), {"x": _Exploit()}, io.BytesIO):
        with pytest.raises(DataError, match="refusing to unpickle"):
            vgg_weights.restricted_load(pickle.dumps(payload))


def test_checkpoint_conversion_checks_shapes_and_the_cache_digest(tmp_path, monkeypatch):
    shapes = vgg_weights.expected_shapes()
    flat = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    out = tmp_path / "w.npz"
    vgg_weights.convert_checkpoint(pickle.dumps(_nested(flat)), out)
    loaded = vgg_weights.load_vgg16_weights(out)
    assert set(loaded) == set(shapes) and loaded["VGG16_0/Conv_0/kernel"].shape == (3, 3, 3, 64)
    bad = dict(flat, **{"VGG16_0/Conv_3/bias": np.zeros(7, np.float32)})
    with pytest.raises(DataError, match="Conv_3/bias has shape"):
        vgg_weights.convert_checkpoint(pickle.dumps(_nested(bad)), tmp_path / "bad.npz")
    (tmp_path / "w.npz.sha256").write_text("0" * 64)
    with pytest.raises(DataError, match="sha256"):
        vgg_weights.load_vgg16_weights(out)
    with pytest.raises(MissingFileError, match="make vgg-weights"):
        vgg_weights.load_vgg16_weights(tmp_path / "missing.npz")


def test_vgg_features_stop_at_the_deepest_requested_layer():
    weights = made_vgg_weights(TINY_WIDTHS)
    assert widths_of(weights) == TINY_WIDTHS
    net = VGG16Features(("relu1_2", "relu2_2"), TINY_WIDTHS)
    variables = vgg_variables(weights, net.layers)
    assert sorted(variables["params"]) == ["Conv_0", "Conv_1", "Conv_2", "Conv_3"]
    out = net.apply(variables, jnp.zeros((2, 16, 16, 3)))
    assert {k: v.shape for k, v in out.items()} == {
        "relu1_2": (2, 16, 16, 4),
        "relu2_2": (2, 8, 8, 4),
    }
    with pytest.raises(ConfigError, match="relu9_9"):
        VGG16Features(("relu9_9",)).apply(variables, jnp.zeros((1, 16, 16, 3)))


def test_lpips_is_zero_for_equal_images_and_grows_with_the_difference():
    weights = made_vgg_weights(TINY_WIDTHS)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    small = np.clip(x + 0.05 * rng.standard_normal(x.shape), -1, 1).astype(np.float32)
    large = np.clip(x + 0.5 * rng.standard_normal(x.shape), -1, 1).astype(np.float32)
    same, near, far = (lpips(x, y, weights) for y in (x, small, large))
    assert same.shape == (3,) and same.dtype == np.float32
    np.testing.assert_allclose(same, 0.0, atol=1e-6)
    assert np.all(near > 0) and np.all(far > near)


def test_conditional_instance_norm_selects_each_styles_scale_and_bias():
    norm = ConditionalInstanceNorm(num_styles=3)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 2)) * 5.0 + 2.0
    variables = norm.init(jax.random.PRNGKey(1), x, jnp.eye(3))
    assert {k: v.shape for k, v in variables["params"].items()} == {"scale": (3, 2), "bias": (3, 2)}
    gamma = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    beta = jnp.array([[0.0, -1.0], [10.0, 20.0], [-5.0, 7.0]])
    out = norm.apply(
        {"params": {"scale": gamma, "bias": beta}}, x, jnp.eye(3)[jnp.array([2, 0, 1])]
    )
    for row, style in enumerate([2, 0, 1]):
        mean, std = out[row].mean(axis=(0, 1)), out[row].std(axis=(0, 1))
        np.testing.assert_allclose(mean, beta[style], atol=1e-4)
        np.testing.assert_allclose(std, gamma[style], rtol=1e-3)
    # The folded affine form is Dumoulin et al.'s γ_s · IN(x) + β_s itself.
    styles = jnp.array([2, 0, 1])
    expected = instance_norm(x) * gamma[styles][:, None, None] + beta[styles][:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_transformer_net_has_johnsons_size_and_keeps_the_image_shape():
    net = TransformerNet()
    x, style = jnp.zeros((1, 256, 256, 3)), jnp.ones((1, 1))
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), x, style)
    # Johnson et al.: 1.68 M; 1,600 conv biases fewer here (each conv feeds instance norm).
    assert sum(np.prod(p.shape) for p in jax.tree.leaves(shapes)) == 1_677_635
    out = jax.eval_shape(lambda v: net.apply(v, x, style), shapes)
    assert out.shape == (1, 256, 256, 3)


def test_keras_vgg19_weights_load_into_a_vgg19_feature_network(tmp_path):
    import h5py

    path = tmp_path / "vgg19.h5"
    with h5py.File(path, "w") as f:  # fill-value datasets: full-size shapes, tiny file
        c_in = 3
        for block, (num_convs, width) in enumerate(zip(VGG19_BLOCKS, VGG16_WIDTHS, strict=True)):
            for conv in range(num_convs):
                group = f.create_group(f"block{block + 1}_conv{conv + 1}").create_group(
                    f"block{block + 1}_conv{conv + 1}"
                )
                group.create_dataset("kernel:0", (3, 3, c_in, width), "f4", fillvalue=0.01)
                group.create_dataset("bias:0", (width,), "f4", fillvalue=0.5)
                c_in = width
    weights = vgg_weights.load_keras_vgg19(path)
    assert len(weights) == 32 and weights["VGG16_0/Conv_15/kernel"].shape == (3, 3, 512, 512)
    net = VGG16Features(("relu1_2", "relu5_4"), blocks=VGG19_BLOCKS, caffe_input=True)
    variables = vgg_variables(weights, net.layers, VGG19_BLOCKS)
    out = net.apply(variables, jnp.zeros((1, 16, 16, 3)))
    assert out["relu5_4"].shape == (1, 1, 1, 512) and float(out["relu1_2"].min()) > 0
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not a Keras VGG19"):
        vgg_weights.load_keras_vgg19(tmp_path / "bad.h5")


def test_equalized_norm_inputs_keep_the_function_and_give_unit_channel_spread():
    net = TransformerNet(num_styles=2, widths=(4, 8, 8), num_res_blocks=1, activation="relu6")
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 16, 16, 3), minval=-1.0, maxval=1.0)
    style = jnp.eye(2)[jnp.array([0, 1, 0, 1])]
    variables = net.init(jax.random.PRNGKey(1), x, style)
    # Spread the channels of every conv over two orders of magnitude (variances >> eps).
    spread = jax.tree_util.tree_map_with_path(
        lambda p, v: v * jnp.logspace(0.0, 2.0, v.shape[-1]) if p[-1].key == "kernel" else v,
        variables,
    )
    equalized = equalize_norm_inputs(net, spread, x, style)
    np.testing.assert_allclose(
        net.apply(equalized, x, style), net.apply(spread, x, style), atol=2e-3
    )
    _, state = net.apply(
        equalized, x, style, capture_intermediates=lambda m, _: isinstance(m, nn.Conv)
    )
    first = state["intermediates"]["Conv_0"]["__call__"][0]
    rms_std = jnp.sqrt(jnp.mean(jnp.var(first, axis=(1, 2)), axis=0))
    np.testing.assert_allclose(rms_std, 1.0, rtol=1e-3)
    # The output conv has a bias and feeds tanh, not a norm: left as it was.
    np.testing.assert_array_equal(
        equalized["params"]["Conv_3"]["kernel"], spread["params"]["Conv_3"]["kernel"]
    )
    with pytest.raises(ValueError, match="activation"):
        TransformerNet(activation="gelu").init(jax.random.PRNGKey(0), x, style[:, :1])


def _norm_inputs(net, variables, x, style) -> list[jax.Array]:
    """The input of every `ConditionalInstanceNorm` call of ``net``."""
    seen = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, ConditionalInstanceNorm):
            seen.append(args[0])
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        net.apply(variables, x, style)
    return seen


def test_bounded_norm_inputs_clip_every_norm_input_and_leave_the_parameters():
    # Two output channels with kernel norms 2 (3² · 4 entries of 1/3) and 0.5: bounds 8 and 2.
    kernel = jnp.stack([jnp.full((3, 3, 4), 1 / 3), jnp.full((3, 3, 4), 1 / 12)], axis=-1)
    h = jnp.array([[-9.0, -9.0], [4.0, 1.0], [8.5, 2.5]])
    np.testing.assert_allclose(
        bound_norm_input(h, kernel, 4.0), [[-1.0, -1.0], [0.5, 0.5], [1.0, 1.0]], rtol=1e-6
    )
    np.testing.assert_array_equal(bound_norm_input(h, kernel, 0.0), h)
    # Scaling the kernel scales the bound: the network cannot grow past the clip.
    np.testing.assert_allclose(
        bound_norm_input(10.0 * h, 10.0 * kernel, 4.0), bound_norm_input(h, kernel, 4.0), rtol=1e-6
    )
    kwargs = dict(num_styles=2, widths=(4, 8, 8), num_res_blocks=1)
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 16, 16, 3), minval=-1.0, maxval=1.0)
    style = jnp.eye(2)
    plain, clipped = TransformerNet(**kwargs), TransformerNet(**kwargs, norm_input_clip=2.0)
    variables = plain.init(jax.random.PRNGKey(1), x, style)
    # The same parameters: a clipped network takes an unclipped one's checkpoint.
    assert jax.tree.structure(clipped.init(jax.random.PRNGKey(1), x, style)) == jax.tree.structure(
        variables
    )
    # At 0.3 kernel norms every norm input saturates somewhere, and only somewhere.
    tight = TransformerNet(**kwargs, norm_input_clip=0.3)
    unbounded, bounded = (
        _norm_inputs(plain, variables, x, style),
        _norm_inputs(tight, variables, x, style),
    )
    assert len(bounded) == 7  # 3 downsampling convs, 2 in the residual block, 2 upsamplings
    first = 0.3 * kernel_norm(variables["params"]["Conv_0"]["kernel"])
    np.testing.assert_allclose(bounded[0], jnp.clip(unbounded[0] / first, -1.0, 1.0), rtol=1e-5)
    assert all(float(jnp.abs(clip).max()) == 1.0 for clip in bounded)
    assert all(0.05 < float(jnp.mean(jnp.abs(clip) < 1.0)) < 1.0 for clip in bounded)
    # The bound follows the kernel: scaling the norm-input kernels changes nothing.
    louder = jax.tree_util.tree_map_with_path(
        lambda p, v: 10.0 * v if p[-1].key == "kernel" and "Conv_3" not in str(p) else v,
        variables,
    )
    np.testing.assert_allclose(
        tight.apply(louder, x, style), tight.apply(variables, x, style), atol=1e-4
    )
    with pytest.raises(ValueError, match="resize_conv"):
        TransformerNet(**kwargs, norm_input_clip=2.0, upsample="subpixel").init(
            jax.random.PRNGKey(0), x, style
        )
    with pytest.raises(ValueError, match="norm_input_clip"):
        equalize_norm_inputs(clipped, variables, x, style)


def test_clip_output_stays_in_range_and_passes_gradient_where_tanh_saturates():
    x = jnp.array([-7.0, -0.5, 0.25, 1.5, 7.0])
    np.testing.assert_array_equal(output_clip(x, train=False), jnp.clip(x, -1.0, 1.0))
    np.testing.assert_array_equal(output_clip(x, train=True), output_clip(x, train=False))
    # Straight through: gradient 1 everywhere in training (a saturated tanh passes ~3e-6 at 7).
    np.testing.assert_array_equal(jax.grad(lambda v: output_clip(v, True).sum())(x), 1.0)
    assert float(jax.grad(lambda v: jnp.tanh(v).sum())(x)[-1]) < 1e-5
    kwargs = dict(num_styles=2, widths=(4, 8, 8), num_res_blocks=1)
    image = jax.random.uniform(jax.random.PRNGKey(0), (2, 16, 16, 3), minval=-1.0, maxval=1.0)
    net = TransformerNet(**kwargs, output="clip")
    variables = net.init(jax.random.PRNGKey(1), image, jnp.eye(2))
    loud = jax.tree_util.tree_map_with_path(
        lambda p, v: 30.0 * v if p[-2].key == "Conv_3" else v, variables
    )
    out = net.apply(loud, image, jnp.eye(2))
    assert float(jnp.abs(out).max()) == 1.0 and float(jnp.mean(jnp.abs(out) == 1.0)) > 0.1
    np.testing.assert_allclose(net.apply(loud, image, jnp.eye(2), train=True), out, atol=1e-4)
    with pytest.raises(ValueError, match="output"):
        TransformerNet(**kwargs, output="sigmoid").init(jax.random.PRNGKey(0), image, jnp.eye(2))
