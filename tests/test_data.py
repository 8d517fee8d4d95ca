"""Data sources: the fixed digits split, deterministic batches, TFDS (mocked), folders, IDX files,
errors."""

import gzip
import os
import subprocess
import sys
import textwrap

import ml_collections
import numpy as np
import pytest
from PIL import Image

from lwgen.data import LOADERS, check_batch_divisible, load_source
from lwgen.data.digits import digits_images
from lwgen.data.idx import CLASS_NAMES, DEFAULT_DIR, FILES, read_fashion_mnist
from lwgen.data.source import stratified_split
from lwgen.errors import ConfigError, DataError, MissingFileError
from tests.conftest import ROOT
from tests.import_graph import module_graph


def _data_config(source="digits", image_size=8, channels=1, **extra):
    return ml_collections.ConfigDict(
        dict(source=source, image_size=image_size, channels=channels, data_dir=None, **extra)
    )


@pytest.fixture(scope="module")
def digits():
    config = _data_config()
    return load_source(config, "train"), load_source(config, "heldout")


def test_digits_split_is_stratified_fixed_and_disjoint(digits):
    train, heldout = digits
    assert (len(train), len(heldout)) == (1437, 360)
    _, labels = digits_images()
    train_idx = stratified_split(labels, 0.2, "train")
    heldout_idx = stratified_split(labels, 0.2, "heldout")
    assert np.intersect1d(train_idx, heldout_idx).size == 0
    np.testing.assert_array_equal(np.union1d(train_idx, heldout_idx), np.arange(len(labels)))
    per_class = np.bincount(labels, minlength=10)
    np.testing.assert_allclose(np.bincount(heldout.labels, minlength=10), 0.2 * per_class, atol=1)
    again = load_source(_data_config(), "heldout")
    np.testing.assert_array_equal(again.images, heldout.images)
    np.testing.assert_array_equal(again.labels, heldout.labels)


def test_digits_resize_keeps_the_split_and_range():
    small = load_source(_data_config(image_size=8), "heldout")
    large = load_source(_data_config(image_size=32), "heldout")
    assert large.images.shape == (360, 32, 32, 1) and large.images.dtype == np.uint8
    np.testing.assert_array_equal(small.labels, large.labels)
    assert large.images.max() > 200 and large.images.min() == 0


def test_batches_are_a_pure_function_of_step_and_seed(digits):
    train, _ = digits
    batch = train.batch(7, 32, seed=3)
    assert batch["image"].dtype == np.float32 and batch["image"].shape == (32, 8, 8, 1)
    assert batch["label"].dtype == np.int32 and batch["label"].shape == (32,)
    assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
    assert batch["image"].min() == -1.0 and batch["image"].max() == 1.0
    train.batch(0, 32, seed=3)  # drawing other batches first must not change batch 7
    again = train.batch(7, 32, seed=3)
    np.testing.assert_array_equal(batch["image"], again["image"])
    np.testing.assert_array_equal(batch["label"], again["label"])
    assert not np.array_equal(train.indices(7, 32, 3), train.indices(7, 32, 4))
    assert not np.array_equal(train.indices(7, 32, 3), train.indices(8, 32, 3))


def test_one_epoch_of_batches_visits_every_image_once(digits):
    train, _ = digits
    batch_size = 479  # 3 batches make exactly one epoch of the 1,437 training images
    stream = np.concatenate([train.indices(step, batch_size, 0) for step in range(3)])
    np.testing.assert_array_equal(np.sort(stream), np.arange(len(train)))


@pytest.mark.parametrize(
    "name, image_size, channels",
    [("mnist", 16, 1), ("fashion_mnist", 28, 1), ("cifar10", 32, 3), ("cifar10", 16, 1)],
)
def test_tfds_sources_load_through_mock_data(name, image_size, channels, tmp_path):
    import tensorflow_datasets as tfds

    config = _data_config(name, image_size, channels)
    config.data_dir = str(tmp_path)
    with tfds.testing.mock_data(num_examples=6):
        train = load_source(config, "train")
        heldout = load_source(config, "heldout")
    for split in (train, heldout):
        assert split.images.shape == (6, image_size, image_size, channels)
        assert split.images.dtype == np.uint8 and split.labels.dtype == np.int32
        assert split.num_classes == len(split.class_names) == 10
        assert 0 <= split.labels.min() and split.labels.max() < 10
    batch = train.batch(0, 4, seed=0)
    assert batch["image"].shape == (4, image_size, image_size, channels)


def _write_folder(root, counts, size=(12, 10)):
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        os.makedirs(root / name)
        for i in range(count):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")


def test_folder_source_reads_class_folders(tmp_path):
    _write_folder(tmp_path, {"zebra": 5, "apple": 5})
    config = _data_config("folder", image_size=8, channels=3, path=str(tmp_path))
    train, heldout = load_source(config, "train"), load_source(config, "heldout")
    assert train.class_names == ["apple", "zebra"]
    assert (len(train), len(heldout)) == (8, 2)
    assert train.images.shape == (8, 8, 8, 3) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(heldout.labels), [1, 1])
    gray = load_source(_data_config("folder", 8, 1, path=str(tmp_path)), "train")
    assert gray.images.shape == (8, 8, 8, 1)


def test_folder_source_names_a_corrupt_image(tmp_path):
    _write_folder(tmp_path, {"a": 5, "b": 5})
    broken = tmp_path / "b" / "03.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    config = _data_config("folder", image_size=8, channels=1, path=str(tmp_path))
    with pytest.raises(DataError, match="cannot read image .*03.png"):
        for split in ("train", "heldout"):  # the file is in one of the two splits
            load_source(config, split)


def test_folder_source_missing_path_is_clear(tmp_path):
    config = _data_config("folder", path=str(tmp_path / "nope"))
    with pytest.raises(MissingFileError, match="nope"):
        load_source(config, "train")


def _write_idx(path, values, magic=None, cut=None):
    """Writes uint8 ``values`` as a gzipped IDX file; ``magic`` overrides the 4 magic bytes and
    ``cut`` keeps only that many bytes of the uncompressed file."""
    values = np.asarray(values, np.uint8)
    header = magic if magic is not None else bytes([0, 0, 0x08, values.ndim])
    raw = header + np.asarray(values.shape, ">u4").tobytes() + values.tobytes()
    with gzip.open(path, "wb") as f:
        f.write(raw[:cut])


def _write_fashion_dir(root, num_train=12, num_test=5):
    """Four made IDX files in ``root``; returns ``{split: (images [N, 28, 28], labels [N])}``."""
    rng = np.random.default_rng(0)
    made = {}
    for split, num in (("train", num_train), ("heldout", num_test)):
        images = rng.integers(0, 256, (num, 28, 28), dtype=np.uint8)
        labels = np.arange(num) % 10
        images_name, labels_name = FILES[split]
        _write_idx(root / images_name, images)
        _write_idx(root / labels_name, labels)
        made[split] = images, labels
    return made


def _idx_config(root, image_size=28, channels=1):
    config = _data_config("fashion_mnist_idx", image_size, channels)
    config.data_dir = str(root)
    return config


def test_idx_source_reads_made_files(tmp_path):
    made = _write_fashion_dir(tmp_path)
    for split, (images, labels) in made.items():
        source = load_source(_idx_config(tmp_path), split)
        np.testing.assert_array_equal(source.images, images[..., None])
        np.testing.assert_array_equal(source.labels, labels)
        assert source.labels.dtype == np.int32
        assert source.num_classes == 10 and list(source.class_names) == list(CLASS_NAMES)
    resized = load_source(_idx_config(tmp_path, image_size=32, channels=3), "train")
    assert resized.images.shape == (12, 32, 32, 3) and resized.images.dtype == np.uint8
    np.testing.assert_array_equal(resized.labels, made["train"][1])


@pytest.mark.parametrize(
    "magic",
    [bytes([0, 0, 0x0D, 3]), bytes([0, 0, 0x08, 2]), bytes([1, 0, 0x08, 3])],
    ids=["float_type", "two_dims", "nonzero_prefix"],
)
def test_idx_bad_magic_names_the_file(tmp_path, magic):
    _write_fashion_dir(tmp_path)
    name = FILES["train"][0]
    _write_idx(tmp_path / name, np.zeros((12, 28, 28)), magic=magic)
    with pytest.raises(DataError, match=f"{name} has magic number 0x{magic.hex()}"):
        load_source(_idx_config(tmp_path), "train")


def test_idx_truncated_files_are_data_errors(tmp_path):
    _write_fashion_dir(tmp_path)
    images_name, labels_name = FILES["heldout"]
    _write_idx(tmp_path / images_name, np.zeros((5, 28, 28)), cut=16 + 4 * 28 * 28)
    with pytest.raises(DataError, match=f"{images_name} holds 3136 values, its header"):
        load_source(_idx_config(tmp_path), "heldout")
    _write_idx(tmp_path / images_name, np.zeros((5, 28, 28)), cut=10)
    with pytest.raises(DataError, match=f"{images_name} is truncated"):
        load_source(_idx_config(tmp_path), "heldout")
    _write_fashion_dir(tmp_path)
    compressed = (tmp_path / labels_name).read_bytes()
    (tmp_path / labels_name).write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match=f"cannot decompress IDX file .*{labels_name}"):
        load_source(_idx_config(tmp_path), "heldout")


def test_idx_image_and_label_counts_must_agree(tmp_path):
    _write_fashion_dir(tmp_path)
    _write_idx(tmp_path / FILES["train"][1], np.zeros(11))
    with pytest.raises(DataError, match="holds 12 images but .* 11 labels"):
        load_source(_idx_config(tmp_path), "train")


def test_idx_missing_folder_or_file_says_how_to_install(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(MissingFileError, match=f"{missing} does not exist.*apt-get install "):
        load_source(_idx_config(missing), "train")
    _write_fashion_dir(tmp_path)
    os.remove(tmp_path / FILES["heldout"][1])
    with pytest.raises(MissingFileError, match=f"{FILES['heldout'][1]} does not exist"):
        load_source(_idx_config(tmp_path), "heldout")


def test_ensure_script_passes_a_full_folder_and_says_how_to_install(tmp_path):
    _write_fashion_dir(tmp_path)
    script = os.path.join(ROOT, "launch", "ensure_fashion_mnist.sh")
    ok = subprocess.run(["sh", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout == ok.stderr == ""
    os.remove(tmp_path / FILES["train"][0])  # a non-default folder is never apt-installed into
    bad = subprocess.run(["sh", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1
    assert f"not all in {tmp_path}" in bad.stderr
    assert "apt-get install dataset-fashion-mnist" in bad.stderr


@pytest.mark.skipif(
    not all(os.path.isfile(os.path.join(DEFAULT_DIR, n)) for pair in FILES.values() for n in pair),
    reason=f"Fashion-MNIST IDX files not in {DEFAULT_DIR} (apt-get install dataset-fashion-mnist)",
)
def test_debian_fashion_mnist_files():
    for split, count in (("train", 60_000), ("heldout", 10_000)):
        images, labels = read_fashion_mnist(DEFAULT_DIR, split)
        assert images.shape == (count, 28, 28, 1) and images.dtype == np.uint8
        np.testing.assert_array_equal(np.bincount(labels, minlength=10), [count // 10] * 10)
        assert images.min() == 0 and images.max() == 255
    heldout = load_source(_data_config("fashion_mnist_idx", 32, 1), "heldout")
    assert heldout.images.shape == (10_000, 32, 32, 1)


def test_unknown_source_and_split_are_errors():
    with pytest.raises(ConfigError, match="data.source must be one of"):
        load_source(_data_config("imagenet"), "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_source(_data_config(), "test")
    assert {"digits", "folder", "mnist", "fashion_mnist", "fashion_mnist_idx", "cifar10"} <= set(
        LOADERS
    )


def test_batch_not_divisible_by_device_count_is_an_error():
    check_batch_divisible(64, 4)
    with pytest.raises(ConfigError, match="batch size 10 is not divisible by the device count 4"):
        check_batch_divisible(10, 4)


def test_shard_batch_on_four_devices():
    script = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
        import jax, numpy as np
        from lwgen.data import shard_batch
        mesh = jax.make_mesh((4,), ("batch",))
        out = shard_batch({"image": np.zeros((8, 2, 2, 1)), "label": np.arange(8)}, mesh)
        assert [s.data.shape[0] for s in out["label"].addressable_shards] == [2, 2, 2, 2]
        try:
            shard_batch({"image": np.zeros((6, 2, 2, 1)), "label": np.arange(6)}, mesh)
        except ValueError as e:
            print("ERROR:", e)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR: global batch size 6 is not divisible by the device count 4" in result.stdout


def test_lwgen_data_imports_not_its_own_package_facade():
    graph = module_graph()
    inside = [m for m in graph if m.startswith("lwgen.data.")]
    assert inside and not any("lwgen.data" in graph[m] for m in inside)
