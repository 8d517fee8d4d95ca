"""End-to-end tests of the standalone device script export/pi_infer.py, run in subprocesses.

Most run the toy conditional generator of ``tests/export_toys.py`` exported as a ``dcgan`` bundle
(no training); one runs the shared trained DCGAN bundle of ``tests/test_export.py``.
"""

import ctypes.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lwgen.export.runtime import TFLiteGenerator
from lwgen.images import to_uint8
from tests.export_toys import toy_bundle
from tests.test_export import shared_bundle

PI_INFER = Path(__file__).resolve().parents[1] / "export" / "pi_infer.py"
GUTTER = 2  # pi_infer's gutter in pixels


def run_pi(*args, cwd=None):
    # No PYTHONPATH: the script must work with the repository off the import path.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(PI_INFER), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def _bundle(tmp_path_factory, source, quant):
    if source == "dcgan":
        return shared_bundle(tmp_path_factory, quant)
    return toy_bundle(tmp_path_factory, quant)


def _edited_copy(tmp_path_factory, tmp_path, edit, two_models=False):
    """A copy of the toy int8_io bundle whose ``bundle.json`` dict ``edit`` changes in place."""
    copy = tmp_path / "bundle"
    shutil.copytree(toy_bundle(tmp_path_factory, "int8_io", two_models), copy)
    metadata = json.loads((copy / "bundle.json").read_text())
    edit(metadata)
    (copy / "bundle.json").write_text(json.dumps(metadata))
    return copy


@pytest.mark.parametrize("source, quant", [("toy", "int8"), ("toy", "int8_io"), ("dcgan", "int8")])
def test_grid_and_npz_match_tflite_generator(tmp_path_factory, tmp_path, source, quant):
    bundle = _bundle(tmp_path_factory, source, quant)
    labels, num, seed, scale = [0, 3, 7], 4, 5, 2
    grid_path, npz_path = tmp_path / "grid.png", tmp_path / "out.npz"
    done = run_pi(
        "--bundle", bundle, "--labels", "0,3,7", "--num", num, "--seed", seed,
        "--out", grid_path, "--npy", npz_path, "--scale", scale, "--benchmark", 3,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "median" in done.stdout and "p90" in done.stdout

    saved = np.load(npz_path)
    images, saved_labels = saved["images"], saved["labels"]
    assert images.dtype == np.uint8 and images.shape == (len(labels) * num, 16, 16, 1)
    np.testing.assert_array_equal(saved_labels, np.repeat(labels, num))

    generator = TFLiteGenerator(bundle)
    z = np.random.default_rng(seed).standard_normal((len(saved_labels), 8), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[saved_labels]
    np.testing.assert_array_equal(images, to_uint8(generator(z, y)))

    grid = np.asarray(Image.open(grid_path))
    tile = 16 * scale
    assert grid.shape == (
        len(labels) * tile + (len(labels) + 1) * GUTTER,
        num * tile + (num + 1) * GUTTER,
    )
    for row in range(len(labels)):  # one row per label, samples of that label in order
        for col in range(num):
            top, left = GUTTER + row * (tile + GUTTER), GUTTER + col * (tile + GUTTER)
            expected = images[row * num + col, :, :, 0].repeat(scale, 0).repeat(scale, 1)
            np.testing.assert_array_equal(grid[top : top + tile, left : left + tile], expected)


def test_tinygan_two_model_bundle_runs_its_generator(tmp_path_factory, tmp_path):
    bundle = _edited_copy(
        tmp_path_factory, tmp_path, lambda m: m.update(family="tinygan"), two_models=True
    )
    npz = tmp_path / "out.npz"
    done = run_pi("--bundle", bundle, "--num", 2, "--out", tmp_path / "g.png", "--npy", npz)
    assert done.returncode == 0, done.stderr
    assert np.load(npz)["images"].shape == (20, 16, 16, 1)  # all 10 classes by default


def test_imports_no_jax_flax_tensorflow_or_lwgen(tmp_path_factory, tmp_path):
    bundle = toy_bundle(tmp_path_factory, "int8_io")
    argv = ["pi_infer", "--bundle", str(bundle), "--out", str(tmp_path / "g.png")]
    probe = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        f"    runpy.run_path({str(PI_INFER)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "banned = {'jax', 'flax', 'tensorflow', 'lwgen'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "g.png").is_file()


def _corrupted_copy(tmp_path_factory, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(toy_bundle(tmp_path_factory, "int8_io"), copy)
    data = bytearray((copy / "generator.tflite").read_bytes())
    data[-10] ^= 0x55
    (copy / "generator.tflite").write_bytes(bytes(data))
    return copy


def _without_generator(metadata):
    del metadata["models"]["generator"]


BAD_BUNDLES = {
    "unknown_family": lambda m: m.update(family="stylegan"),
    "format_1": lambda m: m.update(format_version=1),
    "bad_metadata": lambda m: m["models"]["generator"].update(batch=0),
    "no_generator": _without_generator,
}


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_bundle", "bundle directory"),
        ("checksum", "generator.tflite: sha256"),
        ("label_out_of_range", "label 10 is out of range"),
        ("label_not_int", "is not an integer class id"),
        ("bad_flag", "unrecognized arguments: --bogus"),
        ("bad_threads", "--threads"),
        ("missing_out_folder", "does not exist"),
        (
            "unknown_family",
            "bundle family 'stylegan' is not one of "
            "['cyclegan', 'dcgan', 'diffusion', 'style', 'textgan', 'tinygan', 'upscaler']",
        ),
        ("format_1", "format 1: this bundle is from an older lwgen; re-export it with export/"),
        ("bad_metadata", "models.generator: bad file, sha256, quant, size_bytes, batch"),
        ("no_generator", "model 'generator' must map inputs z, y to one output"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path_factory, tmp_path, case, message):
    bundle = toy_bundle(tmp_path_factory, "int8_io")
    out = tmp_path / "grid.png"
    if case in BAD_BUNDLES:
        args = ["--bundle", _edited_copy(tmp_path_factory, tmp_path, BAD_BUNDLES[case], True)]
    else:
        args = {
            "missing_bundle": ["--bundle", tmp_path / "nowhere"],
            "checksum": ["--bundle", _corrupted_copy(tmp_path_factory, tmp_path)],
            "label_out_of_range": ["--bundle", bundle, "--labels", "1,10"],
            "label_not_int": ["--bundle", bundle, "--labels", "1,x"],
            "bad_flag": ["--bundle", bundle, "--bogus"],
            "bad_threads": ["--bundle", bundle, "--threads", "0"],
            "missing_out_folder": ["--bundle", bundle],
        }[case]
    if case == "missing_out_folder":
        out = tmp_path / "no" / "g.png"
    done = run_pi(*args, "--out", out)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pi_infer: error:") and message in lines[0]
    assert not out.exists()


@pytest.mark.skipif(
    ctypes.util.find_library("edgetpu") is not None, reason="an Edge TPU runtime is installed"
)
def test_edgetpu_without_runtime_is_a_clear_error(tmp_path_factory, tmp_path):
    bundle = toy_bundle(tmp_path_factory, "int8_io")
    done = run_pi("--bundle", bundle, "--out", tmp_path / "g.png", "--edgetpu")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no generator_edgetpu.tflite; ops run on the CPU" in done.stderr
    assert "libedgetpu.so.1" in done.stderr.strip().splitlines()[-1]


def test_edgetpu_uses_the_compiled_model_and_checks_its_sha256(tmp_path_factory, tmp_path):
    def add_compiled(metadata):
        metadata["models"]["generator"]["extra_files"]["generator_edgetpu.tflite"] = "0" * 64

    copy = _edited_copy(tmp_path_factory, tmp_path, add_compiled)
    (copy / "generator_edgetpu.tflite").write_bytes(b"compiled by edgetpu_compiler")
    done = run_pi("--bundle", copy, "--out", tmp_path / "g.png", "--edgetpu")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "generator_edgetpu.tflite: sha256 does not match" in done.stderr
