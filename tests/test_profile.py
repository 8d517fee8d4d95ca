"""Tests for model profiles: MACs per layer, parameters, peak activations, energy, file sizes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lwgen.errors import MissingFileError
from lwgen.eval import profile as prof
from lwgen.models.dcgan import Generator


class _Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.Conv(8, (3, 3), use_bias=False, name="conv")(x)  # [1, 16, 16, 8]
        h = nn.Conv(2, (3, 3), strides=(2, 2), use_bias=False, name="strided")(h)  # [1, 8, 8, 2]
        h = nn.ConvTranspose(6, (4, 4), strides=(2, 2), name="up")(h)  # [1, 16, 16, 6]
        return nn.Dense(5, name="dense")(h.reshape(1, -1))


def _profile(zero_half=False):
    model, x = _Net(), jnp.ones((1, 16, 16, 4))
    variables = jax.tree.map(np.array, model.init(jax.random.PRNGKey(0), x))
    if zero_half:
        variables["params"]["conv"]["kernel"][..., :4] = 0.0
    return prof.profile_model(model, variables, x), variables


def test_macs_per_layer_follow_the_layer_shapes():
    profile, _ = _profile()
    layers = {row["layer"]: row for row in profile["layers"]}
    assert layers["conv"]["macs"] == 16 * 16 * 3 * 3 * 4 * 8
    assert layers["conv"]["output_shape"] == [16, 16, 8]
    assert layers["strided"]["macs"] == 8 * 8 * 3 * 3 * 8 * 2
    assert layers["up"]["op"] == "conv_transpose"
    assert layers["up"]["macs"] == 8 * 8 * 4 * 4 * 2 * 6  # H_in * W_in * K * K * C_in * C_out
    assert layers["dense"]["macs"] == 16 * 16 * 6 * 5
    assert profile["macs"] == sum(row["macs"] for row in profile["layers"])
    assert profile["params"] == 3 * 3 * 4 * 8 + 3 * 3 * 8 * 2 + 4 * 4 * 2 * 6 + 6 + 1536 * 5 + 5


def test_nonzero_macs_skip_zero_weights():
    profile, _ = _profile(zero_half=True)
    conv = next(row for row in profile["layers"] if row["layer"] == "conv")
    assert conv["nonzero_macs"] == conv["macs"] // 2
    assert profile["nonzero_macs"] == profile["macs"] - conv["macs"] // 2
    assert profile["nonzero_params"] == profile["params"] - 3 * 3 * 4 * 4 - 6 - 5  # zero biases


def test_peak_activation_is_the_largest_set_of_live_tensors():
    profile, _ = _profile()
    # The transposed conv's output and its bias-add result, 2 x [16, 16, 6] float32, are live at
    # once; the first conv holds its input [16, 16, 4] and output [16, 16, 8] (3072 elements).
    assert profile["peak_activation_bytes"] == 2 * 16 * 16 * 6 * 4
    assert profile["peak_activation_bytes_int8"] == 2 * 16 * 16 * 6


def test_energy_estimate_uses_horowitz_per_operation_energies():
    energy = prof.energy_estimate_uj(macs=1_000_000, nonzero_macs=500_000)
    assert energy["int8_uj"] == pytest.approx(0.23)
    assert energy["fp32_uj"] == pytest.approx(4.6)
    assert energy["int8_nonzero_uj"] == pytest.approx(0.115)
    assert "estimate" in energy["note"]


def test_generator_profile_counts_every_block(tmp_path):
    generator = Generator(num_classes=3, image_shape=(16, 16, 1), latent_dim=5, base_width=4)
    z, y = jnp.zeros((1, 5)), jnp.zeros((1, 3))
    shapes = jax.eval_shape(generator.init, jax.random.PRNGKey(0), z, y)
    variables = jax.tree.map(lambda s: np.ones(s.shape, s.dtype), shapes)
    profile = prof.profile_generator(generator, variables)
    expected = 8 * 16 * 8 + 8 * 8 * 9 * 8 * 4 + 16 * 16 * 9 * 4 * 1
    layers = [row["layer"] for row in profile["layers"]]
    assert layers == ["project", "up1/Conv_0", "to_image/Conv_0"]
    assert profile["macs"] == expected
    table = prof.format_profile(profile)
    assert f"**{expected:,}**" in table and "estimate" in table
    path = tmp_path / "profile.json"
    prof.write_profile(profile, str(path))
    assert json.loads(path.read_text())["macs"] == expected


def test_profile_rejects_batched_inputs_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="batch size 1"):
        prof.profile_model(_Net(), {}, jnp.ones((2, 16, 16, 4)))
    path = tmp_path / "model.tflite"
    path.write_bytes(b"x" * 123)
    assert prof.profile_files([str(path)]) == {str(path): 123}
    with pytest.raises(MissingFileError, match="missing.tflite"):
        prof.profile_files([str(tmp_path / "missing.tflite")])
