"""The offline photo catalogue: the fixed held-out split, user folders, deterministic crops."""

import numpy as np
import pytest
from PIL import Image

from lwgen.data import photos
from lwgen.errors import ConfigError, DataError, MissingFileError


def _write(folder, name, size):
    rgb = np.random.default_rng(len(name)).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / name)


def test_splits_are_disjoint_and_held_out_photos_are_fixed(tmp_path):
    no_opencv = str(tmp_path / "absent")
    train = photos.load_photos("train", opencv_doc_dir=no_opencv)
    heldout = photos.load_photos("heldout", opencv_doc_dir=no_opencv)
    train_names, heldout_names = {n for n, _ in train}, {n for n, _ in heldout}
    assert heldout_names == {"skimage:astronaut", "skimage:coffee", "sklearn:china.jpg"}
    assert not train_names & heldout_names
    assert len(train_names) == len(photos.SKIMAGE_PHOTOS) + len(photos.SKLEARN_PHOTOS) - 3
    for _, image in train + heldout:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_user_folder_holds_out_every_fifth_file(tmp_path):
    for i in range(6):
        _write(tmp_path, f"p{i}.png", (20, 30))
    (tmp_path / "notes.txt").write_text("not an image")
    absent = str(tmp_path / "absent")
    train = [n for n, _ in photos.load_photos("train", absent, str(tmp_path))]
    heldout = [n for n, _ in photos.load_photos("heldout", absent, str(tmp_path))]
    assert [n for n in heldout if n.startswith("folder:")] == ["folder:p0.png", "folder:p5.png"]
    assert [n for n in train if n.startswith("folder:")] == [
        f"folder:p{i}.png" for i in (1, 2, 3, 4)
    ]


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ConfigError, match="split"):
        photos.load_photos("test", str(tmp_path))
    with pytest.raises(MissingFileError, match="absent"):
        photos.load_photos("train", str(tmp_path / "x"), str(tmp_path / "absent"))
    with pytest.raises(MissingFileError, match="HappyFish.jpg"):  # an incomplete opencv-doc folder
        photos.load_photos("train", str(tmp_path))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        photos.load_photos("train", str(tmp_path / "x"), str(tmp_path))
    with pytest.raises(DataError, match="at least one photo"):
        photos.random_crops([], 8, 2, 0, 0)


def test_random_crops_are_deterministic_per_step_and_cover_small_photos():
    rng = np.random.default_rng(0)
    catalogue = [("big", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))]
    catalogue.append(("small", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)))
    a = photos.random_crops(catalogue, 16, 8, seed=3, step=7)
    assert a.shape == (8, 16, 16, 3) and a.dtype == np.float32
    assert a.min() >= -1.0 and a.max() <= 1.0
    np.testing.assert_array_equal(a, photos.random_crops(catalogue, 16, 8, seed=3, step=7))
    assert not np.array_equal(a, photos.random_crops(catalogue, 16, 8, seed=3, step=8))


def test_a_crop_is_a_window_of_its_photo_or_its_mirror():
    photo = np.arange(12 * 12 * 3, dtype=np.uint8).reshape(12, 12, 3)
    crops = photos.random_crops([("p", photo)], 5, 16, seed=0, step=0)
    pixels = np.round((crops + 1.0) * 127.5).astype(np.uint8)
    windows = {
        view[t : t + 5, s : s + 5].tobytes()
        for view in (photo, photo[:, ::-1])
        for t in range(8)
        for s in range(8)
    }
    assert all(crop.tobytes() in windows for crop in pixels)
    assert len({crop.tobytes() for crop in pixels}) > 1
