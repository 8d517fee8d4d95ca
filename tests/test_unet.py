"""Tests for the diffusion U-Net denoiser and the timestep embedding of lwgen/models/unet.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from lwgen.export.convert import convert, op_counts, verify
from lwgen.export.edgetpu import edgetpu_report
from lwgen.export.spec import ExportSpec, TensorSpec
from lwgen.models.unet import UNet, timestep_embedding

NUM_CLASSES = 3
EMBED_DIM = 8
IMAGE_SHAPE = (16, 16, 1)
NUM_STEPS = 1000


def _tiny(**fields) -> UNet:
    config = dict(
        num_classes=NUM_CLASSES,
        base_width=4,
        channel_mults=(1, 2),
        num_res_blocks=1,
        embed_dim=EMBED_DIM,
        norm="none",
    )
    return UNet(**{**config, **fields})


def _inputs(num: int, seed: int = 0, stream: int = 0) -> dict[str, np.ndarray]:
    """Noisy images ~ N(0, 1), embeddings of random step indices, one-hot classes with every
    fourth row the null (all-zero) class."""
    rng = np.random.default_rng([seed, stream])
    y = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, num)]
    y[::4] = 0.0
    t = rng.integers(0, NUM_STEPS, num).astype(np.float32)
    return {
        "x_t": rng.standard_normal((num, *IMAGE_SHAPE), dtype=np.float32),
        "t_embedding": np.asarray(timestep_embedding(t, EMBED_DIM)),
        "y": y,
    }


def _live_variables(model: UNet, seed: int = 0, noise: float = 0.1):
    """Initial variables with every parameter perturbed by N(0, noise²), so that the
    zero-initialised last convs of the residual branches (through which the time and class
    embeddings act) are not zero."""
    variables = model.init(jax.random.PRNGKey(seed), **_inputs(1))
    flat, unravel = ravel_pytree(variables)
    return unravel(flat + noise * jax.random.normal(jax.random.PRNGKey(seed + 1), flat.shape))


def test_timestep_embedding_matches_hand_computed_values():
    # dim 4: frequencies 10000 ** (-i / 2) for i = 0, 1, i.e. 1 and 0.01; sines then cosines.
    emb = timestep_embedding(np.array([0.0, 1.0, 7.0]), 4)
    expected = [
        [0.0, 0.0, 1.0, 1.0],
        [0.8414709848, 0.0099998333, 0.5403023059, 0.9999500004],
        [0.6569865987, 0.0699428473, 0.7539022543, 0.9975510003],
    ]
    assert emb.dtype == jnp.float32 and emb.shape == (3, 4)
    np.testing.assert_allclose(emb, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        timestep_embedding(np.array([5]), 2, max_period=10.0), [[np.sin(5.0), np.cos(5.0)]]
    )


def test_timestep_embedding_rejects_bad_arguments():
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(np.zeros(2), 7)
    with pytest.raises(ValueError, match=r"one-dimensional \[B\]"):
        timestep_embedding(np.zeros((2, 1)), 8)


@pytest.mark.parametrize("norm", ["none", "group", "batch"])
def test_output_shape_dtype_and_out_channels(norm):
    model = _tiny(norm=norm, attention=True)
    inputs = _inputs(2)
    variables = model.init(jax.random.PRNGKey(0), **inputs)
    out = jax.jit(model.apply)(variables, **inputs)
    assert out.shape == (2, *IMAGE_SHAPE) and out.dtype == jnp.float32
    wide = _tiny(norm=norm, out_channels=2)
    assert wide.apply(wide.init(jax.random.PRNGKey(0), **inputs), **inputs).shape == (2, 16, 16, 2)


def test_class_and_timestep_change_the_output():
    model = _tiny(attention=True)
    variables = _live_variables(model)
    apply = jax.jit(model.apply)
    inputs = _inputs(1)
    inputs["y"] = np.eye(NUM_CLASSES, dtype=np.float32)[[1]]
    out = apply(variables, **inputs)
    null = apply(variables, **{**inputs, "y": np.zeros_like(inputs["y"])})
    other = apply(variables, **{**inputs, "y": np.eye(NUM_CLASSES, dtype=np.float32)[[2]]})
    later = apply(variables, **{**inputs, "t_embedding": timestep_embedding(np.ones(1), EMBED_DIM)})
    for changed in (null, other, later):
        assert float(jnp.max(jnp.abs(out - changed))) > 1e-3
    np.testing.assert_array_equal(out, apply(variables, **inputs))


def test_zero_initialised_blocks_start_as_identity():
    # At initialisation no residual branch contributes, so class and time do not act yet.
    model = _tiny(attention=True)
    inputs = _inputs(2)
    variables = model.init(jax.random.PRNGKey(0), **inputs)
    null = {**inputs, "y": np.zeros_like(inputs["y"]), "t_embedding": np.zeros((2, EMBED_DIM))}
    apply = jax.jit(model.apply)
    np.testing.assert_array_equal(apply(variables, **inputs), apply(variables, **null))


def test_parameter_count_is_exact():
    # Time MLP 8→16→16 (416) + class Dense 3×16 (48),
    # conv_in 40, down block 364, down conv 148, 4→8 block 1,056, middle 2 × 1,304, up blocks
    # 2,016 + 1,696, upsample conv 584, up blocks 704 + 544, conv_out 37.
    inputs = _inputs(1)
    count = {}
    for norm in ("none", "group"):
        model = _tiny(norm=norm)
        params = model.init(jax.random.PRNGKey(0), **inputs)["params"]
        count[norm] = sum(p.size for p in jax.tree.leaves(params))
    # GroupNorm adds a scale and a bias per channel of its 17 norms (128 channels in all).
    assert count == {"none": 10_261, "group": 10_261 + 256}
    model = _tiny(attention=True)
    params = model.init(jax.random.PRNGKey(0), **inputs)["params"]
    # Four attention blocks at 8 channels (after the lowest resolution's down block and two up
    # blocks, and in the middle): qkv 8·24 + 24 and out 8·8 + 8 each.
    assert sum(p.size for p in jax.tree.leaves(params)) == 10_261 + 4 * (216 + 72)


def test_bad_shapes_raise_before_any_work():
    model = _tiny(channel_mults=(1, 2, 2))
    inputs = _inputs(2)
    with pytest.raises(ValueError, match=r"divisible by 4 .* got shape \(2, 14, 16, 1\)"):
        model.init(jax.random.PRNGKey(0), **{**inputs, "x_t": np.zeros((2, 14, 16, 1))})
    with pytest.raises(ValueError, match=r"y must be a float one-hot \[2, num_classes=3\]"):
        model.init(jax.random.PRNGKey(0), **{**inputs, "y": np.zeros((2, 10))})
    with pytest.raises(ValueError, match=r"t_embedding must be \[2, embed_dim=8\]"):
        model.init(jax.random.PRNGKey(0), **{**inputs, "t_embedding": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="norm 'layer' is not one of"):
        _tiny(norm="layer").init(jax.random.PRNGKey(0), **inputs)


def test_training_mode_matches_inference_without_dropout():
    # train=True switches the upsampling to its sub-pixel form: same parameters, same values.
    model = _tiny()
    variables = _live_variables(model)
    inputs = _inputs(2)
    apply = jax.jit(model.apply, static_argnames="train")
    np.testing.assert_allclose(
        apply(variables, **inputs, train=True),
        apply(variables, **inputs),
        rtol=1e-4,
        atol=1e-4,
    )


def _spec(model: UNet, variables) -> ExportSpec:
    return ExportSpec(
        name="denoiser",
        fn=lambda variables, x_t, t_embedding, y: {
            "eps": model.apply(variables, x_t, t_embedding, y)
        },
        variables=variables,
        inputs=(
            TensorSpec("x_t", IMAGE_SHAPE),
            TensorSpec("t_embedding", (EMBED_DIM,)),
            TensorSpec("y", (NUM_CLASSES,)),
        ),
        outputs=("eps",),
        sample_inputs=lambda num, seed, stream: _inputs(num, seed, stream),
    )


def test_tiny_unet_exports_to_int8_without_unmappable_ops(tmp_path):
    model = _tiny()
    spec = _spec(model, _live_variables(model))
    tflite = convert(spec, "int8_io", num_calibration=200)
    ops = op_counts(tflite)
    assert not {"SIN", "COS", "GATHER", "GATHER_ND", "TRANSPOSE_CONV"} & set(ops)
    assert {"CONV_2D", "RESIZE_NEAREST_NEIGHBOR", "CONCATENATION", "FULLY_CONNECTED"} <= set(ops)
    (tmp_path / "denoiser.tflite").write_bytes(tflite)
    report = edgetpu_report(tmp_path / "denoiser.tflite")
    assert report["unsupported"] == [] and report["coverage"] == 1.0
    stats = verify(convert(spec, "int8", num_calibration=200), spec, min_psnr=25.0)
    assert stats["eps"]["psnr_db"] > 25.0


def test_default_and_student_sizes_at_32px():
    # The sizes the module docstring reports: defaults, and base_width 16 (the narrow student).
    x, e, y = jnp.zeros((1, 32, 32, 1)), jnp.zeros((1, 32)), jnp.zeros((1, 10))
    sizes = {}
    for width in (32, 16):
        shapes = jax.eval_shape(
            UNet(num_classes=10, base_width=width).init, jax.random.key(0), x, e, y
        )
        sizes[width] = sum(p.size for p in jax.tree.leaves(shapes["params"]))
    assert sizes == {32: 1_454_369, 16: 365_969}
