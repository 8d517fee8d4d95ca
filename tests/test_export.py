"""Tests for lwgen.export: conversion round trips, bundle writing/verification, the exporter CLI.

One tiny trained workdir and its bundles are shared by this module, ``test_pi_infer`` and
``test_edgetpu`` through ``shared_workdir``/``shared_bundle`` (cached under pytest's session
temporary directory), so the ~30 s of training and each conversion happen once per session.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lwgen.export import bundle as bundle_lib
from lwgen.export.bundle import export_options, export_workdir, load_bundle, write_bundle
from lwgen.export.runtime import TFLiteGenerator

ROOT = Path(__file__).resolve().parents[1]
EXPORT_SCRIPT = ROOT / "export" / "export_bundle.py"


def shared_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny digits GAN trained for 4 steps, trained once per test session."""
    from lwgen.train.loop import train
    from tests.tiny import tiny_gan_config

    root = tmp_path_factory.getbasetemp() / "lwgen_export_shared"
    workdir = root / "workdir"
    if not (root / "trained").exists():
        train(tiny_gan_config(num_train_steps=4), str(workdir))
        (root / "trained").touch()
    return workdir


def shared_bundle(tmp_path_factory: pytest.TempPathFactory, quant: str) -> Path:
    """The shared workdir exported with ``quant``, exported once per session (do not modify)."""
    workdir = shared_workdir(tmp_path_factory)
    out = workdir.parent / f"bundle_{quant}"
    if not out.is_dir():
        export_workdir(workdir, out, quant=quant)
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return shared_workdir(tmp_path_factory)


@pytest.fixture(scope="module")
def restored(workdir):
    from lwgen.train.checkpoint import restore_generator

    return restore_generator(str(workdir))


def _fresh_inputs(generator, n=16, seed=123):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, generator.latent_dim), dtype=np.float32)
    y = np.eye(generator.num_classes, dtype=np.float32)[rng.integers(0, generator.num_classes, n)]
    return z, y


def _jax_images(restored, z, y):
    return np.asarray(restored.generator.apply(restored.variables, z, y, train=False))


def _errors(reference, candidate):
    mse = float(np.mean((reference.astype(np.float64) - candidate) ** 2))
    return float(np.max(np.abs(reference - candidate))), 10 * math.log10(4.0 / max(mse, 1e-300))


def test_bundle_json_has_every_field(tmp_path_factory, workdir):
    directory = shared_bundle(tmp_path_factory, "float32")
    meta = json.loads((directory / "bundle.json").read_text())
    assert meta["format_version"] == bundle_lib.FORMAT_VERSION
    assert meta["family"] == "dcgan" and meta["quant"] == "float32"
    assert meta["image_shape"] == [16, 16, 1] and meta["latent_dim"] == 8
    assert meta["num_classes"] == 10 and meta["class_names"] == [str(i) for i in range(10)]
    assert [t["name"] for t in meta["inputs"]] == ["z", "y"]
    assert [t["name"] for t in meta["outputs"]] == ["image"]
    assert {t["dtype"] for t in meta["inputs"] + meta["outputs"]} == {"float32"}
    assert meta["inputs"][0]["shape"] == [1, 8] and meta["outputs"][0]["shape"] == [1, 16, 16, 1]
    model = (directory / "model.tflite").read_bytes()
    assert meta["sha256"] == bundle_lib.sha256_hex(model) and meta["size_bytes"] == len(model)
    assert set(meta["error"]) >= {"max_abs_error", "psnr_db", "num_samples", "min_psnr_db"}
    assert meta["lwgen_version"] and meta["source"]["step"] == 4
    assert meta["config"] == json.loads((workdir / "config.json").read_text())
    assert (directory.stat().st_mode & 0o777) == bundle_lib.BUNDLE_DIR_MODE


def test_float32_round_trip_matches_jax(tmp_path_factory, restored):
    generator = TFLiteGenerator(shared_bundle(tmp_path_factory, "float32"))
    z, y = _fresh_inputs(restored.generator)
    max_abs, psnr = _errors(_jax_images(restored, z, y), generator(z, y))
    assert max_abs < 1e-4 and psnr > 80
    assert generator.metadata["error"]["max_abs_error"] < 1e-4


@pytest.mark.parametrize("quant", ["int8", "int8_io"])
def test_int8_round_trip_error_bounds(tmp_path_factory, restored, quant):
    from lwgen.export import convert

    directory = shared_bundle(tmp_path_factory, quant)
    generator = TFLiteGenerator(directory)
    z, y = _fresh_inputs(restored.generator)
    max_abs, psnr = _errors(_jax_images(restored, z, y), generator(z, y))
    assert 0 < max_abs < 0.3 and psnr > 25
    # The recorded stats are a measurement: verifying the bundle's model again reproduces them.
    model_content = load_bundle(directory).model_content
    again = convert.verify(model_content, restored.generator, restored.variables)
    assert again == generator.metadata["error"]


def test_int8_io_records_scale_and_zero_point(tmp_path_factory, restored):
    meta = load_bundle(shared_bundle(tmp_path_factory, "int8_io")).metadata
    for spec in meta["inputs"] + meta["outputs"]:
        assert spec["dtype"] == "int8" and spec["scale"] > 0 and -128 <= spec["zero_point"] <= 127
    out = meta["outputs"][0]
    assert out["scale"] == pytest.approx(1 / 128, rel=0.05)  # tanh output range [-1, 1]
    images = TFLiteGenerator(shared_bundle(tmp_path_factory, "int8_io"))(
        *_fresh_inputs(restored.generator, n=4)
    )
    levels = images / out["scale"] + out["zero_point"]
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)


def test_psnr_below_minimum_refuses_to_write(tmp_path, workdir):
    out = tmp_path / "bundle"
    # An int8 output quantized with scale 1/128 cannot exceed ~59 dB PSNR, so 80 dB must fail.
    with pytest.raises(ValueError, match=r"PSNR .* below min_psnr 80\.00"):
        export_workdir(workdir, out, quant="int8", min_psnr=80.0)
    assert list(tmp_path.iterdir()) == []


def test_bad_options_fail_before_converting(tmp_path, workdir):
    with pytest.raises(ValueError, match="quant 'int4'"):
        export_workdir(workdir, tmp_path / "b", quant="int4")
    with pytest.raises(ValueError, match="num_calibration=10"):
        export_workdir(workdir, tmp_path / "b", quant="int8", num_calibration=10)
    with pytest.raises(FileNotFoundError, match="config.json"):
        export_workdir(tmp_path / "missing", tmp_path / "b", quant="float32")


def test_export_options_come_from_config_unless_given():
    config = {"export": {"quant": "int8_io", "batch": 2, "num_calibration": 300, "min_psnr": 25.0}}
    assert export_options(config) == config["export"]
    assert export_options(config, quant="float16", batch=None)["quant"] == "float16"
    assert export_options({}) == bundle_lib.EXPORT_DEFAULTS
    with pytest.raises(ValueError, match="unknown export options"):
        export_options(config, bits=4)


def test_write_bundle_replaces_atomically_and_guards_other_dirs(tmp_path_factory, tmp_path):
    source = load_bundle(shared_bundle(tmp_path_factory, "float32"))
    base = {k: v for k, v in source.metadata.items() if k not in ("sha256", "size_bytes")}
    out = tmp_path / "b"
    write_bundle(out, source.model_content, {**base, "family": "first"})
    write_bundle(out, source.model_content, {**base, "family": "second"})
    assert load_bundle(out).metadata["family"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a bundle"):
        write_bundle(precious, source.model_content, base)
    with pytest.raises(ValueError, match="missing key 'latent_dim'"):
        write_bundle(tmp_path / "c", source.model_content, _without(base, "latent_dim"))
    assert (precious / "notes.txt").read_text() == "keep"


def _without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


def _copy_bundle(tmp_path_factory, tmp_path, quant="float32"):
    copy = tmp_path / "copy"
    shutil.copytree(shared_bundle(tmp_path_factory, quant), copy)
    return copy


def test_load_bundle_rejects_checksum_mismatch(tmp_path_factory, tmp_path):
    copy = _copy_bundle(tmp_path_factory, tmp_path)
    data = bytearray((copy / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 .* does not match"):
        load_bundle(copy)
    with pytest.raises(ValueError, match="sha256"):
        TFLiteGenerator(copy)


def test_load_bundle_missing_files(tmp_path_factory, tmp_path):
    with pytest.raises(FileNotFoundError, match="bundle directory"):
        load_bundle(tmp_path / "nowhere")
    copy = _copy_bundle(tmp_path_factory, tmp_path)
    (copy / "model.tflite").unlink()
    with pytest.raises(FileNotFoundError, match="model.tflite"):
        load_bundle(copy)
    (copy / "bundle.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_bundle(copy)
    (copy / "bundle.json").unlink()
    with pytest.raises(FileNotFoundError, match="bundle.json"):
        load_bundle(copy)


def _run_export(*args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, str(EXPORT_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_cli_writes_bundle_with_edgetpu_report(tmp_path, workdir):
    out = tmp_path / "bundle"
    done = _run_export(
        f"--workdir={workdir}", f"--out={out}", "--quant=int8_io", "--edgetpu_report"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "quant=int8_io" in done.stdout
    loaded = load_bundle(out)  # also verifies the report's sha256
    assert "edgetpu_report.json" in loaded.metadata["extra_files"]
    report = json.loads((out / "edgetpu_report.json").read_text())
    assert report["coverage"] == 1.0 and report["unsupported"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--quant=int4"], "--quant"),
        (["--batch=1"], "--workdir"),
        (["--workdir=/nonexistent/wd"], "config.json"),
    ],
)
def test_cli_errors_exit_2_with_one_line(tmp_path, args, message):
    done = _run_export(f"--out={tmp_path / 'b'}", *args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("export_bundle: error")]
    assert len(errors) == 1 and message in errors[0]


def test_sparse_int8_export_runs_without_xnnpack(tmp_path, restored):
    """XNNPACK refuses sparse INT8 graphs; the runtime must fall back to the builtin kernels."""
    import jax

    from lwgen.export.bundle import export_generator

    def prune(kernel):
        kernel = np.asarray(kernel)
        if kernel.ndim < 2:
            return kernel
        return np.where(np.abs(kernel) >= np.quantile(np.abs(kernel), 0.8), kernel, 0.0)

    variables = {**restored.variables, "params": jax.tree.map(prune, restored.variables["params"])}
    out = tmp_path / "sparse"
    export_generator(restored.generator, variables, out, quant="int8", sparsity=True)
    generator = TFLiteGenerator(out)
    assert generator.metadata["sparsity"] is True
    z, y = _fresh_inputs(restored.generator)
    reference = np.asarray(restored.generator.apply(variables, z, y, train=False))
    assert _errors(reference, generator(z, y))[1] > 25


def test_int8_dense_weights_are_per_tensor_and_conv_weights_per_channel(tmp_path_factory):
    from ai_edge_litert.interpreter import Interpreter

    directory = shared_bundle(tmp_path_factory, "int8")
    assert load_bundle(directory).metadata["calibration"]["dense_weights"] == "per_tensor"
    interpreter = Interpreter(model_path=str(directory / "model.tflite"))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    weight_scales = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("FULLY_CONNECTED", "CONV_2D"):
            weights = tensors[op["inputs"][1]]
            scales = weights["quantization_parameters"]["scales"]
            per_channel = len(scales) == weights["shape"][0]  # OHWI / [out, in] weights
            weight_scales.setdefault(op["op_name"], []).append((len(scales), per_channel))
    assert weight_scales["FULLY_CONNECTED"] == [(1, False)]
    assert all(per_channel for _, per_channel in weight_scales["CONV_2D"])
    assert max(n for n, _ in weight_scales["CONV_2D"]) > 1
