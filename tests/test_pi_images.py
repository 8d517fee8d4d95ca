"""``export/pi_images.py`` (input photos of image→image bundles) and ``pi_infer.write_images``."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import load_script

EXPORT = Path(__file__).resolve().parents[1] / "export"


@pytest.fixture(scope="module")
def pi_images():
    return load_script(EXPORT / "pi_images.py", "pi_images_under_test")


@pytest.fixture(scope="module")
def pi_infer():
    return load_script(EXPORT / "pi_infer.py", "pi_infer_images_under_test")


def test_fit_scales_the_shorter_side_and_crops_the_centre(pi_images, tmp_path):
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 10:50] = 255  # white but for the two ends
    Image.fromarray(wide).save(tmp_path / "wide.png")
    images, names = pi_images.read_images(str(tmp_path / "wide.png"), 10, 10, 3)
    assert names == ["wide.png"] and images.shape == (1, 10, 10, 3)
    assert images.dtype == np.uint8 and images.min() >= 250  # only the centre survives the crop
    gray, _ = pi_images.read_images(str(tmp_path / "wide.png"), 4, 6, 1)
    assert gray.shape == (1, 4, 6, 1)


def test_a_folder_reads_its_images_sorted(pi_images, tmp_path):
    for name, value in (("b.jpg", 200), ("a.png", 10)):
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(tmp_path / name)
    (tmp_path / "readme.txt").write_text("skip me")
    images, names = pi_images.read_images(str(tmp_path), 8, 8, 3)
    assert names == ["a.png", "b.jpg"]
    assert images[0].max() < 20 and images[1].min() > 180


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda d: d / "missing.png", "does not exist"),
        (lambda d: (d / "x.txt").write_text("x") and d / "x.txt", "is not a"),
        (lambda d: (d / "bad.jpg").write_bytes(b"no jpeg") and d / "bad.jpg", "bad.jpg"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "holds no"),
    ],
)
def test_bad_inputs_name_the_file(pi_images, tmp_path, make, match):
    with pytest.raises(ValueError, match=match):
        pi_images.read_images(str(make(tmp_path)), 8, 8, 3)


def test_write_images_to_a_file_or_a_folder(pi_infer, tmp_path):
    images = np.stack([np.full((4, 5, 1), v, np.uint8) for v in (0, 255)])
    pi_infer.write_images(str(tmp_path / "out"), images, ["x.jpg", "y.png"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png", "y.png"]
    assert np.asarray(Image.open(tmp_path / "out" / "y.png")).min() == 255
    pi_infer.write_images(str(tmp_path / "one.png"), images[:1], ["x.jpg"])
    assert Image.open(tmp_path / "one.png").size == (5, 4)
    with pytest.raises(ValueError, match="one PNG file"):
        pi_infer.write_images(str(tmp_path / "two.png"), images, ["x.jpg", "y.png"])
    with pytest.raises(ValueError, match="share a file stem"):
        pi_infer.write_images(str(tmp_path / "o2"), images, ["x.jpg", "x.png"])
