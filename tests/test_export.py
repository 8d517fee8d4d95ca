"""Tests for lwgen.export: conversion of any export spec, bundle format 2 writing, reading and
verification, the runtime, the exporter CLI, and the direction of the package's imports.

Most tests use the toy specs of ``tests/export_toys.py`` (no training). The DCGAN tests share one
tiny trained workdir and its bundles with ``test_pi_infer`` and ``test_edgetpu`` through
``shared_workdir``/``shared_bundle`` (cached under pytest's session temporary directory), so the
training and each conversion happen once per session.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from lwgen.errors import BundleError, ExportError, MissingFileError
from lwgen.export import bundle as bundle_lib
from lwgen.export import convert
from lwgen.export.bundle import (
    export_bundle,
    export_options,
    export_workdir,
    load_bundle,
    validate_metadata,
    write_bundle,
)
from lwgen.export.runtime import TFLiteGenerator, TFLiteRunner
from lwgen.io import file_sha256
from tests.export_toys import (
    CONDITIONAL_FIELDS,
    TOY_CONFIG,
    conditional_inputs,
    conditional_spec,
    refiner_spec,
    toy_bundle,
)
from tests.import_graph import lwgen_imports

ROOT = Path(__file__).resolve().parents[1]
EXPORT_SCRIPT = ROOT / "export" / "export_bundle.py"
FRESH = 7  # a sample_inputs stream neither calibration (0) nor verification (1) uses


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


def _psnr(reference, candidate, peak_to_peak=2.0):
    return convert.error_stats(reference, candidate, peak_to_peak)["psnr_db"]


def _strip_files(metadata):
    """``bundle.json`` as ``write_bundle`` takes it: models without their file entries."""
    generated = ("file", "sha256", "size_bytes", "extra_files")
    models = {
        name: {k: v for k, v in model.items() if k not in generated}
        for name, model in metadata["models"].items()
    }
    return {**metadata, "models": models}


def _copy(source: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(source, copy)
    return copy


# ----------------------------------------------------------------- toy bundles: format 2


def test_two_model_bundle_json_has_every_key(tmp_path_factory):
    directory = toy_bundle(tmp_path_factory, "int8", two_models=True)
    meta = json.loads((directory / "bundle.json").read_text())
    assert meta["format_version"] == bundle_lib.FORMAT_VERSION == 2
    assert meta["family"] == "dcgan" and meta["lwgen_version"]
    assert meta["fields"] == CONDITIONAL_FIELDS and meta["config"] == TOY_CONFIG
    assert meta["source"] == {"toy": True}
    assert sorted(p.name for p in directory.iterdir()) == [
        "bundle.json",
        "generator.tflite",
        "refiner.tflite",
    ]
    assert (directory.stat().st_mode & 0o777) == bundle_lib.BUNDLE_DIR_MODE
    tensors = {"generator": (["z", "y"], ["image"]), "refiner": (["x"], ["image", "residual"])}
    thresholds = {"generator": 20.0, "refiner": 15.0}
    for name, model in meta["models"].items():
        path = directory / model["file"]
        assert model["file"] == f"{name}.tflite" and model["extra_files"] == {}
        assert model["sha256"] == file_sha256(path) and model["size_bytes"] == path.stat().st_size
        assert (model["quant"], model["batch"], model["sparsity"]) == ("int8", 1, False)
        assert model["calibration"] == {
            "num_samples": 256,
            "seed": 0,
            "dense_weights": "per_tensor",
        }
        inputs, outputs = tensors[name]
        assert [t["name"] for t in model["inputs"]] == inputs
        assert [t["name"] for t in model["outputs"]] == outputs
        assert all(t["shape"][0] == 1 and t["dtype"] == "float32" for t in model["inputs"])
        assert set(model["error"]) == set(outputs)
        for stats in model["error"].values():
            assert stats["min_psnr_db"] == thresholds[name] and stats["num_samples"] == 32
            assert stats["psnr_db"] > thresholds[name] and stats["peak_to_peak"] == 2.0
        assert model["ops"]["CONV_2D"] >= 1
    assert meta["models"]["generator"]["inputs"][0]["shape"] == [1, 8]
    assert meta["models"]["generator"]["fields"] == {"role": "toy generator"}
    assert meta["models"]["refiner"]["fields"] == {}


def test_two_model_bundle_round_trips_every_model(tmp_path_factory):
    bundle = load_bundle(toy_bundle(tmp_path_factory, "int8", two_models=True))
    assert sorted(bundle.models) == ["generator", "refiner"]
    for spec in (conditional_spec(), refiner_spec()):
        inputs = convert.sample_inputs(spec, 5, 0, FRESH)
        reference = convert.jax_outputs(spec, inputs)
        outputs = TFLiteRunner.from_bundle(bundle, spec.name)(**inputs)
        assert list(outputs) == sorted(spec.outputs)
        for name in spec.outputs:
            assert outputs[name].shape == reference[name].shape
            assert _psnr(np.asarray(reference[name]), outputs[name]) > 25


def test_float32_round_trip_matches_jax(tmp_path_factory):
    generator = TFLiteGenerator(toy_bundle(tmp_path_factory, "float32"))
    assert (generator.latent_dim, generator.num_classes) == (8, 10)
    assert generator.image_shape == (16, 16, 1)
    spec = conditional_spec()
    inputs = conditional_inputs(9, 0, FRESH)
    images = generator(inputs["z"], inputs["y"])
    reference = np.asarray(convert.jax_outputs(spec, inputs)["image"])
    assert np.max(np.abs(images - reference)) < 1e-4
    assert generator.metadata["models"]["generator"]["error"]["image"]["max_abs_error"] < 1e-4


def test_recorded_errors_are_a_measurement(tmp_path_factory):
    bundle = load_bundle(toy_bundle(tmp_path_factory, "int8"))
    recorded = bundle.metadata["models"]["generator"]["error"]
    assert convert.verify(bundle.models["generator"], conditional_spec()) == recorded
    assert 25 < recorded["image"]["psnr_db"] < 60 and recorded["image"]["max_abs_error"] > 0


def test_int8_io_records_scale_and_zero_point(tmp_path_factory):
    directory = toy_bundle(tmp_path_factory, "int8_io")
    model = load_bundle(directory).metadata["models"]["generator"]
    for spec in model["inputs"] + model["outputs"]:
        assert spec["dtype"] == "int8" and spec["scale"] > 0 and -128 <= spec["zero_point"] <= 127
    out = model["outputs"][0]
    assert out["scale"] == pytest.approx(1 / 128, rel=0.1)  # tanh output range [-1, 1]
    inputs = conditional_inputs(4, 0, FRESH)
    images = TFLiteGenerator(directory)(inputs["z"], inputs["y"])
    levels = images / out["scale"] + out["zero_point"]
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)


def test_psnr_below_minimum_refuses_to_write(tmp_path):
    out = tmp_path / "bundle"
    # An int8 output quantized with scale ~1/128 cannot exceed ~59 dB PSNR, so 80 dB must fail.
    message = r"output 'image' of model 'generator' .* below min_psnr 80\.00"
    with pytest.raises(ExportError, match=message):
        export_bundle([conditional_spec()], out, family="dcgan", quant="int8", min_psnr=80.0)
    # Without an override each spec's own threshold applies.
    strict = dataclasses.replace(refiner_spec(), min_psnr=300.0)
    with pytest.raises(ExportError, match=r"model 'refiner' .* below min_psnr 300\.00"):
        export_bundle([strict], out, family="toy", quant="float32")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, specs, message",
    [
        ({"quant": "int4"}, None, "quant 'int4'"),
        ({"num_calibration": 10}, None, "num_calibration=10"),
        ({"batch": 0}, None, "batch must be >= 1"),
        ({}, [], "one or more models"),
        ({}, ["generator", "generator"], "unique names"),
        ({}, ["Gen-1"], "model name 'Gen-1'"),
    ],
)
def test_bad_options_fail_before_converting(tmp_path, monkeypatch, kwargs, specs, message):
    def never(*args, **kwargs):
        raise AssertionError("converted before checking the options")

    monkeypatch.setattr(convert, "convert", never)
    names = ["generator"] if specs is None else specs
    specs = [conditional_spec(name) for name in names]
    with pytest.raises(ExportError, match=message):
        export_bundle(specs, tmp_path / "b", family="dcgan", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_spec_mismatches_are_export_errors(tmp_path):
    spec = refiner_spec()
    wrong_shape = dataclasses.replace(
        spec, sample_inputs=lambda num, seed, stream: {"x": np.zeros((num, 4, 4, 1), np.float32)}
    )
    with pytest.raises(ExportError, match=r"refiner: sample input 'x' has shape \(200, 4, 4, 1\)"):
        convert.convert(wrong_shape, "int8", num_calibration=200)
    wrong_outputs = dataclasses.replace(spec, outputs=("image",))
    with pytest.raises(ExportError, match=r"refiner: fn returned \['image', 'residual'\]"):
        export_bundle([wrong_outputs], tmp_path / "b", family="toy", quant="float32")


def test_export_options_come_from_config_unless_given():
    config = {"export": {"quant": "int8_io", "batch": 2, "num_calibration": 300, "min_psnr": 25.0}}
    assert export_options(config) == config["export"]
    assert export_options(config, quant="float16", batch=None)["quant"] == "float16"
    assert export_options({}) == bundle_lib.EXPORT_DEFAULTS
    assert export_options({})["min_psnr"] is None  # each spec's own threshold
    with pytest.raises(ExportError, match="unknown export options"):
        export_options(config, bits=4)


def test_write_bundle_replaces_atomically_and_guards_other_dirs(tmp_path_factory, tmp_path):
    source = load_bundle(toy_bundle(tmp_path_factory, "int8", two_models=True))
    base = _strip_files(source.metadata)
    out = tmp_path / "b"
    write_bundle(out, source.models, {**base, "family": "first"})
    write_bundle(out, source.models, {**base, "family": "second"})
    assert load_bundle(out).metadata["family"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    with pytest.raises(ExportError, match="not a bundle"):
        write_bundle(precious, source.models, base)
    assert (precious / "notes.txt").read_text() == "keep"
    with pytest.raises(BundleError, match="missing key 'fields'"):
        write_bundle(
            tmp_path / "c", source.models, {k: v for k, v in base.items() if k != "fields"}
        )
    one = {"generator": source.models["generator"]}
    with pytest.raises(BundleError, match="differ from bundle.json's models"):
        write_bundle(tmp_path / "c", one, base)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "precious"]


def test_extra_files_are_recorded_and_verified(tmp_path):
    def notes(name, model_path):
        return {f"{name}_notes.txt": f"{name}: {model_path.stat().st_size} bytes".encode()}

    out = tmp_path / "b"
    meta = export_bundle([refiner_spec()], out, family="toy", quant="float32", edgetpu=notes)
    extra = out / "refiner_notes.txt"
    assert meta["models"]["refiner"]["extra_files"] == {extra.name: file_sha256(extra)}
    load_bundle(out)
    extra.write_text("edited")
    with pytest.raises(BundleError, match="refiner_notes.txt: sha256"):
        load_bundle(out)
    extra.unlink()
    with pytest.raises(MissingFileError, match="refiner_notes.txt"):
        load_bundle(out)
    for bad in ("bundle.json", "../escape.txt", "refiner.tflite"):
        with pytest.raises(ExportError, match="new plain file name"):
            export_bundle(
                [refiner_spec()], tmp_path / "c", family="toy", quant="float32",
                edgetpu=lambda name, path, bad=bad: {bad: b"x"},
            )  # fmt: skip
    assert not (tmp_path / "c").exists() and not (tmp_path / "escape.txt").exists()


def test_old_format_bundles_are_refused_with_a_re_export_hint(tmp_path):
    old = {"format_version": 1, "family": "dcgan", "sha256": "0" * 64, "latent_dim": 8}
    for metadata in (old, {**old, "format_version": 2}):
        with pytest.raises(BundleError, match=r"older lwgen.*export/export_bundle\.py"):
            validate_metadata(metadata)
    (tmp_path / "bundle.json").write_text(json.dumps(old))
    with pytest.raises(BundleError, match="format 1: this bundle was written by an older lwgen"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="newer lwgen"):
        validate_metadata({"format_version": 3, "models": {}})


def test_load_bundle_rejects_checksum_mismatch(tmp_path_factory, tmp_path):
    copy = _copy(toy_bundle(tmp_path_factory, "int8", two_models=True), tmp_path)
    data = bytearray((copy / "refiner.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "refiner.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"refiner.tflite: sha256 .* does not match"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="sha256"):
        TFLiteGenerator(copy)  # every model is verified, not only the one that runs


def test_load_bundle_missing_files(tmp_path_factory, tmp_path):
    with pytest.raises(MissingFileError, match="bundle directory"):
        load_bundle(tmp_path / "nowhere")
    copy = _copy(toy_bundle(tmp_path_factory, "float32"), tmp_path)
    (copy / "generator.tflite").unlink()
    with pytest.raises(MissingFileError, match="generator.tflite"):
        load_bundle(copy)
    (copy / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(copy)
    (copy / "bundle.json").unlink()
    with pytest.raises(MissingFileError, match="bundle.json"):
        load_bundle(copy)


def test_runner_chunks_over_the_static_batch_and_checks_inputs(tmp_path):
    spec = refiner_spec()
    export_bundle([spec], tmp_path / "b", family="toy", quant="float32", batch=2)
    runner = TFLiteRunner.from_bundle(load_bundle(tmp_path / "b"), "refiner")
    assert runner.batch == 2
    x = convert.sample_inputs(spec, 3, 0, FRESH)["x"]  # 3 = one full chunk + one padded
    outputs = runner(x=x)
    reference = convert.jax_outputs(spec, {"x": x})
    for name in spec.outputs:
        np.testing.assert_allclose(outputs[name], reference[name], atol=1e-5)
    with pytest.raises(ValueError, match=r"inputs must be \['x'\]"):
        runner(y=x)
    with pytest.raises(ValueError, match="input 'x' must be"):
        runner(x=x[:, :4])
    with pytest.raises(BundleError, match="no model 'generator'"):
        TFLiteGenerator(tmp_path / "b")


def test_sparse_int8_export_runs_without_xnnpack(tmp_path):
    """XNNPACK refuses sparse INT8 graphs; the runtime must fall back to the builtin kernels."""

    def prune(kernel):
        kernel = np.asarray(kernel)
        if kernel.ndim < 2:
            return kernel
        return np.where(np.abs(kernel) >= np.quantile(np.abs(kernel), 0.8), kernel, 0.0)

    spec = conditional_spec()
    spec = dataclasses.replace(spec, variables=jax.tree.map(prune, spec.variables))
    out = tmp_path / "sparse"
    export_bundle([spec], out, family="dcgan", quant="int8", sparsity=True)
    generator = TFLiteGenerator(out)
    assert generator.metadata["models"]["generator"]["sparsity"] is True
    inputs = conditional_inputs(8, 0, FRESH)
    reference = np.asarray(convert.jax_outputs(spec, inputs)["image"])
    assert _psnr(reference, generator(inputs["z"], inputs["y"])) > 25


def test_export_imports_go_one_way():
    modules = {p.stem: lwgen_imports(p) for p in (ROOT / "lwgen" / "export").glob("*.py")}
    uses = {
        stem: {other for other in modules if f"lwgen.export.{other}" in imports}
        for stem, imports in modules.items()
    }
    assert uses["metadata"] == set() and uses["spec"] == set()
    assert uses["runtime"] == {"metadata"}
    assert uses["convert"] == {"metadata", "runtime", "spec"}
    assert "bundle" not in set().union(*(uses[m] for m in modules if m != "bundle"))


def test_reading_and_running_a_bundle_needs_no_tensorflow(tmp_path_factory):
    directory = toy_bundle(tmp_path_factory, "int8", two_models=True)
    probe = (
        "import sys, numpy as np\n"
        "from lwgen.export.bundle import load_bundle\n"
        "from lwgen.export.runtime import TFLiteGenerator, TFLiteRunner\n"
        f"g = TFLiteGenerator({str(directory)!r})\n"
        "g(np.zeros((2, 8), np.float32), np.eye(10, dtype=np.float32)[:2])\n"
        f"TFLiteRunner.from_bundle(load_bundle({str(directory)!r}), 'refiner')(\n"
        "    x=np.zeros((1, 8, 8, 1), np.float32))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'jax')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


# ----------------------------------------------------------------- a trained DCGAN workdir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return shared_workdir(tmp_path_factory)


@pytest.fixture(scope="module")
def dcgan_spec(workdir):
    from lwgen.families.registry import get_family
    from lwgen.train.checkpoint import restore_inference

    restored = restore_inference(str(workdir))
    (spec,) = get_family("dcgan").export_specs(restored, 1)
    return spec


def test_dcgan_bundle_fields_config_and_source(tmp_path_factory, workdir):
    meta = load_bundle(shared_bundle(tmp_path_factory, "float32")).metadata
    assert meta["family"] == "dcgan" and list(meta["models"]) == ["generator"]
    assert meta["fields"] == {
        "class_names": [str(i) for i in range(10)],
        "num_classes": 10,
        "latent_dim": 8,
        "image_shape": [16, 16, 1],
        "upsample": "resize_conv",
    }
    model = meta["models"]["generator"]
    assert [t["shape"] for t in model["inputs"]] == [[1, 8], [1, 10]]
    assert [t["shape"] for t in model["outputs"]] == [[1, 16, 16, 1]]
    assert model["error"]["image"]["max_abs_error"] < 1e-4
    assert meta["source"]["step"] == 4
    assert meta["config"] == json.loads((workdir / "config.json").read_text())


@pytest.mark.parametrize("quant", ["int8", "int8_io"])
def test_dcgan_int8_round_trip_error_bounds(tmp_path_factory, dcgan_spec, quant):
    directory = shared_bundle(tmp_path_factory, quant)
    generator = TFLiteGenerator(directory)
    inputs = convert.sample_inputs(dcgan_spec, 16, 0, FRESH)
    reference = np.asarray(convert.jax_outputs(dcgan_spec, inputs)["image"])
    images = generator(inputs["z"], inputs["y"])
    assert 0 < np.max(np.abs(reference - images)) < 0.3 and _psnr(reference, images) > 25
    bundle = load_bundle(directory)
    recorded = bundle.metadata["models"]["generator"]["error"]
    assert convert.verify(bundle.models["generator"], dcgan_spec) == recorded


def test_int8_dense_weights_are_per_tensor_and_conv_weights_per_channel(tmp_path_factory):
    from ai_edge_litert.interpreter import Interpreter

    directory = shared_bundle(tmp_path_factory, "int8")
    model = load_bundle(directory).metadata["models"]["generator"]
    assert model["calibration"]["dense_weights"] == "per_tensor"
    interpreter = Interpreter(model_path=str(directory / "generator.tflite"))
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


def test_export_workdir_checks_options_and_paths(tmp_path, workdir):
    with pytest.raises(ExportError, match="quant 'int4'"):
        export_workdir(workdir, tmp_path / "b", quant="int4")
    with pytest.raises(ExportError, match="num_calibration=10"):
        export_workdir(workdir, tmp_path / "b", quant="int8", num_calibration=10)
    with pytest.raises(MissingFileError, match="config.json"):
        export_workdir(tmp_path / "missing", tmp_path / "b", quant="float32")
    assert list(tmp_path.iterdir()) == []


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
    assert "generator: quant=int8_io" in done.stdout
    loaded = load_bundle(out)  # also verifies the report's sha256
    assert "generator_edgetpu_report.json" in loaded.metadata["models"]["generator"]["extra_files"]
    report = json.loads((out / "generator_edgetpu_report.json").read_text())
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
