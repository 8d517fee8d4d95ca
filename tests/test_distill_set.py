"""Tests for lwgen.data.distill_set (writer, resume, checksums, loader) and its launcher."""

import json
import os
import shutil
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from lwgen.data import ArraySource, load_source
from lwgen.data.distill_set import (
    DistillSource,
    load_distill_source,
    real_data_config,
    write_distill_set,
)
from lwgen.errors import ConfigError, DataError, MissingFileError
from lwgen.io import file_sha256
from lwgen.models.dcgan import Generator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM, CLASSES, LATENT, BATCH, SHARD = 50, 10, 8, 8, 16  # shards of 16, 16, 16, 2 samples
TEACHER_INFO = {"name": "toy", "widths": (4, 2)}


def toy_teacher(z, y_onehot):
    """Deterministic numpy teacher: [B, 8, 8, 1] images in (-1, 1) depending on z and y."""
    pixels = z[:, np.arange(64) % z.shape[1]].reshape(-1, 8, 8, 1)
    return np.tanh(pixels + 0.1 * np.argmax(y_onehot, axis=1)[:, None, None, None])


class CountingTeacher:
    """Wraps `toy_teacher`, counting calls and raising on call number ``fail_at`` (1-based)."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, z, y_onehot):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("simulated crash")
        return toy_teacher(z, y_onehot)


def write(out_dir, teacher=toy_teacher, **overrides):
    kwargs = dict(
        num=NUM, num_classes=CLASSES, latent_dim=LATENT, batch_size=BATCH, shard_size=SHARD,
        seed=0, teacher_info=TEACHER_INFO,
    )  # fmt: skip
    return write_distill_set(teacher, str(out_dir), **{**kwargs, **overrides})


def load(set_dir, split="train", **config):
    data_config = ml_collections.ConfigDict({"path": str(set_dir), **config})
    return load_distill_source(data_config, split, load_real=load_source)


def tree_bytes(set_dir):
    return {name: (set_dir / name).read_bytes() for name in sorted(os.listdir(set_dir))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: the bytes every other run must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    write(out)
    return out


def copy_of(reference, tmp_path):
    out = tmp_path / "set"
    shutil.copytree(reference, out)
    return out


def test_manifest_records_counts_checksums_and_teacher(reference):
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] and manifest["count"] == NUM
    assert [s["count"] for s in manifest["shards"]] == [16, 16, 16, 2]
    assert [s["file"] for s in manifest["shards"]][-1] == "shard-00003-of-00004.tfrecord"
    for shard in manifest["shards"]:
        assert file_sha256(str(reference / shard["file"])) == shard["sha256"]
    assert manifest["teacher"] == {"name": "toy", "widths": [4, 2]}
    assert manifest["image_shape"] == [8, 8, 1]
    assert (manifest["latent_dim"], manifest["num_classes"]) == (LATENT, CLASSES)
    assert sorted(os.listdir(reference)) == ["manifest.json"] + [
        s["file"] for s in manifest["shards"]
    ]


def test_classes_are_balanced(reference):
    source = load(reference)
    np.testing.assert_array_equal(np.bincount(source.labels, minlength=CLASSES), [5] * CLASSES)


def test_writer_is_deterministic_per_seed(reference, tmp_path):
    write(tmp_path / "again")
    assert tree_bytes(tmp_path / "again") == tree_bytes(reference)
    write(tmp_path / "seed1", seed=1)
    shard = "shard-00000-of-00004.tfrecord"
    assert (tmp_path / "seed1" / shard).read_bytes() != (reference / shard).read_bytes()


def test_resume_after_crash_matches_uninterrupted_run(reference, tmp_path):
    out = tmp_path / "set"
    # Two batches per shard: call 6 is the second batch of shard 2, so shards 0 and 1 complete.
    with pytest.raises(RuntimeError, match="simulated crash"):
        write(out, CountingTeacher(fail_at=6))
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["index"] for s in manifest["shards"]] == [0, 1]
    assert not manifest["complete"] and manifest["count"] == 32
    with pytest.raises(DataError, match="incomplete"):
        load(out)
    # Debris of a killed writer: a torn temp file and an unlisted final shard are overwritten.
    (out / "shard-00002-of-00004.tfrecord.tmp").write_bytes(b"torn")
    (out / "shard-00002-of-00004.tfrecord").write_bytes(b"unlisted")
    teacher = CountingTeacher()
    write(out, teacher)
    assert teacher.calls == 3  # shard 2 (two batches) and shard 3 (one batch) only
    assert tree_bytes(out) == tree_bytes(reference)


def test_resume_rewrites_a_listed_shard_whose_checksum_fails(reference, tmp_path):
    out = copy_of(reference, tmp_path)
    shard = out / "shard-00001-of-00004.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\x00")
    teacher = CountingTeacher()
    write(out, teacher)
    assert teacher.calls == 2
    assert tree_bytes(out) == tree_bytes(reference)


@pytest.mark.parametrize(
    "override, key",
    [({"seed": 1}, "seed"), ({"teacher_info": {"name": "other"}}, "teacher"), ({"num": 60}, "num")],
)
def test_resume_with_other_parameters_fails(reference, tmp_path, override, key):
    out = copy_of(reference, tmp_path)
    with pytest.raises(ConfigError, match=key):
        write(out, **override)


def test_load_rejects_a_corrupted_shard(reference, tmp_path):
    out = copy_of(reference, tmp_path)
    shard = out / "shard-00002-of-00004.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match="shard-00002-of-00004.tfrecord"):
        load(out)


def test_load_rejects_a_missing_shard(reference, tmp_path):
    out = copy_of(reference, tmp_path)
    os.remove(out / "shard-00003-of-00004.tfrecord")
    with pytest.raises(MissingFileError, match="shard-00003"):
        load(out)


def test_batches_hold_the_teacher_samples(reference):
    source = load(reference, image_size=8, channels=1)
    assert (source.num_classes, source.latent_dim, len(source)) == (CLASSES, LATENT, NUM)
    assert source.images.dtype == np.uint8 and source.class_names == [str(i) for i in range(10)]
    batch = source.batch(step=3, batch_size=20, seed=7)
    assert batch["z"].dtype == np.float32 and batch["z"].shape == (20, LATENT)
    assert batch["label"].dtype == np.int32 and batch["label"].shape == (20,)
    assert batch["image"].dtype == np.float32 and batch["image"].shape == (20, 8, 8, 1)
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    expected = toy_teacher(batch["z"], np.eye(CLASSES)[batch["label"]])
    np.testing.assert_allclose(batch["image"], expected, atol=0.5 / 127.5 + 1e-6)
    again = source.batch(step=3, batch_size=20, seed=7)
    assert all(np.array_equal(batch[k], again[k]) for k in batch)


def test_an_epoch_visits_every_sample_once(reference):
    source = load(reference)
    z = np.concatenate([source.batch(step, 10, seed=1)["z"] for step in range(5)])
    assert len(np.unique(z, axis=0)) == NUM
    other = np.concatenate([source.batch(step, 10, seed=2)["z"] for step in range(5)])
    assert not np.array_equal(z, other)


def test_load_errors(reference, tmp_path):
    with pytest.raises(ConfigError, match="no 'heldout' split"):
        load(reference, split="heldout")
    with pytest.raises(ValueError, match="split must be one of"):
        load(reference, split="test")
    with pytest.raises(ConfigError, match="image_size is 16"):
        load(reference, image_size=16)
    with pytest.raises(MissingFileError, match="manifest.json"):
        load(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format_version": 1,')
    with pytest.raises(DataError, match="manifest.json is not valid JSON"):
        load(tmp_path)
    with pytest.raises(ConfigError, match="data.path"):
        load_distill_source(ml_collections.ConfigDict({"path": None}), "train", load_source)


def test_real_source_adds_real_batches_and_the_heldout_split(reference):
    config = ml_collections.ConfigDict(
        {"source": "distill", "path": str(reference), "image_size": 8, "channels": 1,
         "real_source": "digits"}
    )  # fmt: skip
    source = load_source(config, "train")
    assert isinstance(source, DistillSource) and len(source.real) == 1437
    batch = source.batch(step=2, batch_size=6, seed=3)
    real = source.real.batch(step=2, batch_size=6, seed=3)
    np.testing.assert_array_equal(batch["real_image"], real["image"])
    np.testing.assert_array_equal(batch["real_label"], real["label"])
    assert batch["real_image"].shape == (6, 8, 8, 1) and batch["z"].shape == (6, LATENT)
    heldout = load_source(config, "heldout")
    assert type(heldout) is ArraySource and len(heldout) == 360
    assert heldout.images.shape[1:] == (8, 8, 1)


def test_real_data_config():
    config = ml_collections.ConfigDict(
        {"source": "distill", "path": "set", "image_size": 8, "channels": 1,
         "real_source": "folder", "real_path": "images"}
    )  # fmt: skip
    real = real_data_config(config)
    assert (real.source, real.path, real.image_size, config.source) == (
        "folder",
        "images",
        8,
        "distill",
    )
    assert real_data_config({"source": "distill", "path": "set"}) is None
    with pytest.raises(ConfigError, match="real_source must name a real data set"):
        real_data_config({"source": "distill", "real_source": "distill"})


def test_real_data_must_match_the_set(reference):
    source = load(reference)
    other = ArraySource(np.zeros((2, 8, 8, 1), np.uint8), np.zeros(2, np.int32), 3, "abc")
    with pytest.raises(DataError, match="3 classes"):
        DistillSource(
            source.images, source.labels, CLASSES, source.class_names, source.z, {}, real=other
        )


@pytest.mark.parametrize(
    "teacher, match",
    [
        (lambda z, y: (toy_teacher(z, y) + 1) * 127.5, r"must lie in \[-1, 1\]"),
        (lambda z, y: toy_teacher(z, y)[:, :, :, 0], r"\[8, H, W, C\]"),
        (lambda z, y: toy_teacher(z, y) * np.nan, "non-finite"),
    ],
)
def test_bad_teacher_output_raises(tmp_path, teacher, match):
    with pytest.raises(DataError, match=match):
        write(tmp_path / "set", teacher)


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ConfigError, match="shard_size"):
        write(tmp_path / "set", shard_size=0)
    with pytest.raises(ConfigError, match="class_names"):
        write(tmp_path / "set", class_names=["a"])


def test_jax_generator_teacher(tmp_path):
    generator = Generator(num_classes=3, image_shape=(8, 8, 1), latent_dim=4, base_width=4)
    z0, y0 = np.zeros((1, 4), np.float32), np.zeros((1, 3), np.float32)
    shapes = jax.eval_shape(generator.init, jax.random.key(0), z0, y0)
    rng = np.random.default_rng(0)
    variables = {  # random weights without compiling an RNG init; BatchNorm mean = var = 1
        "params": jax.tree.map(
            lambda s: rng.normal(0, 0.3, s.shape).astype(s.dtype), shapes["params"]
        ),
        "batch_stats": jax.tree.map(lambda s: np.ones(s.shape, s.dtype), shapes["batch_stats"]),
    }
    apply = jax.jit(lambda z, y: generator.apply(variables, z, y, train=False))
    for name in ("a", "b"):
        write(tmp_path / name, apply, num=20, num_classes=3, latent_dim=4, shard_size=8)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    source = load(tmp_path / "a")
    batch = source.batch(0, 20, seed=0)
    expected = apply(batch["z"], np.eye(3, dtype=np.float32)[batch["label"]])
    np.testing.assert_allclose(batch["image"], expected, atol=0.5 / 127.5 + 1e-6)


def test_launcher_missing_workdir_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable, os.path.join(REPO, "launch", "make_distill_set.py"),
            f"--teacher_workdir={tmp_path / 'missing'}", "--num=4", f"--out={tmp_path / 'set'}",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing" in lines[0] and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "set")
