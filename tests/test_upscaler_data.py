"""The super-resolution pair pipeline (``lwgen.data.sr_pairs``): deterministic crops and
downsampling, antialiasing, channel conversion, held-out tiles and config errors."""

import ml_collections
import numpy as np
import pytest

from lwgen.data import load_source
from lwgen.data.sr_pairs import (
    bicubic_upsample,
    downsample,
    eval_tiles,
    to_channels,
)
from lwgen.errors import ConfigError, DataError
from tests.tiny import tiny_upscaler_config


def _pool():
    rng = np.random.default_rng(0)
    return [("a", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)),
            ("b", rng.integers(0, 256, (33, 33, 3), dtype=np.uint8))]  # fmt: skip


def test_batches_are_a_pure_function_of_step_and_seed():
    source = load_source(tiny_upscaler_config(scale=4).data, "train")
    a, b = source.batch(3, 4, 0), source.batch(3, 4, 0)
    assert a["lowres"].shape == (4, 8, 8, 3) and a["image"].shape == (4, 32, 32, 3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], source.batch(4, 4, 0)["image"])
    assert not np.array_equal(a["image"], source.batch(3, 4, 1)["image"])
    assert a["image"].min() >= -1 and a["image"].max() <= 1


def test_lowres_is_the_bicubic_reduction_of_the_image_on_uint8_levels():
    source = load_source(tiny_upscaler_config(channels=1).data, "train")
    batch = source.batch(0, 2, 0)
    np.testing.assert_array_equal(batch["lowres"], downsample(batch["image"], 2))
    levels = (batch["lowres"] + 1) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
    assert batch["image"].shape[-1] == 1


def test_downsampling_is_antialiased_and_keeps_flat_images():
    flat = np.full((1, 16, 16, 1), 0.2, np.float32)
    np.testing.assert_allclose(downsample(flat, 4), np.round(1.2 * 127.5) / 127.5 - 1, atol=1e-6)
    stripes = np.where(np.arange(16) % 2, 1.0, -1.0).astype(np.float32)
    stripes = np.broadcast_to(stripes[None, None, :, None], (1, 16, 16, 1))
    small = downsample(np.ascontiguousarray(stripes), 2)  # aliasing would keep ±1
    assert np.abs(small[:, 2:-2, 2:-2]).max() < 0.1
    big = bicubic_upsample(small, 2)
    assert big.shape == (1, 16, 16, 1) and np.abs(big).max() <= 1


def test_gray_is_full_range_bt601_luma():
    rgb = np.array([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]], np.float32)
    np.testing.assert_allclose(to_channels(rgb, 1)[:, 0], [-0.402, 0.174, 1.0], atol=1e-6)
    assert to_channels(rgb, 3) is rgb
    with pytest.raises(ConfigError, match="channels"):
        to_channels(rgb, 2)


def test_eval_tiles_cut_a_centred_grid():
    tiles = eval_tiles(_pool(), 16)
    assert tiles.shape == (2 * 3 + 2 * 2, 16, 16, 3)
    np.testing.assert_array_equal(tiles[0], _pool()[0][1][4:20, 1:17])
    with pytest.raises(DataError, match="held-out"):
        eval_tiles(_pool(), 64)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"crop_size": 15}, "multiple"),
        ({"crop_size": 4096}, "exceeds"),
        ({"hr_source": "digits"}, "hr_data"),
    ],
)
def test_bad_configs_name_the_entry(change, message):
    data = ml_collections.ConfigDict(tiny_upscaler_config().data.to_dict())
    data.update(change)
    with pytest.raises(ConfigError, match=message):
        load_source(data, "train")


def test_a_data_set_pool_serves_its_own_images():
    data = tiny_upscaler_config(channels=1).data
    data.hr_source = "digits"
    data.hr_data = dict(source="digits", image_size=16, channels=1)
    batch = load_source(data, "heldout").batch(0, 3, 0)
    assert batch["image"].shape == (3, 16, 16, 1) and batch["lowres"].shape == (3, 8, 8, 1)
