"""Tests for lwgen.export.edgetpu: the static Edge TPU report and the compiler-log hook."""

import json
import os
import stat

import numpy as np
import pytest

from lwgen.export import edgetpu
from lwgen.export.bundle import export_bundle, load_bundle
from lwgen.export.edgetpu import edgetpu_report
from tests.export_toys import conditional_spec, refiner_spec
from tests.test_export import shared_bundle


def _int8_model(path, fn, input_shape):
    """Converts ``fn`` (float32 input of ``input_shape``) to a full-int8, int8-IO ``.tflite``."""
    import tensorflow as tf

    module = tf.Module()
    module.fn = tf.function(fn, input_signature=[tf.TensorSpec(input_shape, tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.fn.get_concrete_function()], module
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: (
        [rng.standard_normal(input_shape, dtype=np.float32)] for _ in range(8)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


def _op_names(report):
    return [op["op"] for op in report["ops"]]


def test_int8_io_dcgan_with_resize_conv_maps_fully(tmp_path_factory):
    bundle = shared_bundle(tmp_path_factory, "int8_io")
    assert json.loads((bundle / "bundle.json").read_text())["fields"]["upsample"] == "resize_conv"
    report = edgetpu_report(bundle / "generator.tflite")
    assert report["unsupported"] == [] and report["first_cpu_fallback"] is None
    assert report["coverage"] == 1.0 and report["cpu_ops"] == 0
    assert report["num_ops"] == len(report["ops"]) == report["edgetpu_ops"]
    assert {"RESIZE_NEAREST_NEIGHBOR", "CONV_2D", "FULLY_CONNECTED"} <= set(_op_names(report))
    for op in report["ops"]:
        assert op["placement"] == "edgetpu" and op["supported"]
        for tensor in op["inputs"] + op["outputs"]:
            assert tensor["dtype"] in ("INT8", "INT32") and tensor["static"]
            assert all(isinstance(d, int) for d in tensor["shape"])


def test_float_io_conversions_stay_on_cpu_without_splitting(tmp_path_factory):
    report = edgetpu_report(shared_bundle(tmp_path_factory, "int8") / "generator.tflite")
    boundary = [op for op in report["ops"] if op["io_boundary"]]
    assert sorted(op["op"] for op in boundary) == ["DEQUANTIZE", "QUANTIZE", "QUANTIZE"]
    assert all(op["placement"] == "cpu" for op in boundary)
    assert report["unsupported"] == []
    assert report["coverage"] == pytest.approx((report["num_ops"] - 3) / report["num_ops"])


def test_float_model_is_flagged_from_its_first_op(tmp_path_factory):
    report = edgetpu_report(shared_bundle(tmp_path_factory, "float32") / "generator.tflite")
    assert report["coverage"] == 0.0 and report["edgetpu_ops"] == 0
    assert report["first_cpu_fallback"]["index"] == 0
    assert "FLOAT32, not 8-bit quantized" in report["first_cpu_fallback"]["reason"]


def _six_d_transpose(x):
    import tensorflow as tf

    x = tf.nn.relu(x)
    x = tf.reshape(x, [1, 4, 4, 2, 2, 2])  # depth-to-space written as reshape/transpose
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.tanh(tf.reshape(x, [1, 8, 8, 2]))


def test_six_d_tensors_end_the_edgetpu_segment(tmp_path):
    report = edgetpu_report(_int8_model(tmp_path / "m.tflite", _six_d_transpose, [1, 4, 4, 8]))
    names = _op_names(report)
    cut = report["first_cpu_fallback"]["index"]
    assert names[cut] == "RESHAPE" and report["ops"][cut]["outputs"][0]["shape"] == [
        1,
        4,
        4,
        2,
        2,
        2,
    ]
    assert "only the 3 innermost dimensions" in report["first_cpu_fallback"]["reason"]
    assert "TRANSPOSE" in [u["op"] for u in report["unsupported"]]
    placements = [op["placement"] for op in report["ops"]]
    assert cut > 0 and placements == ["edgetpu"] * cut + ["cpu"] * (len(names) - cut)
    assert report["coverage"] == pytest.approx(cut / len(names))


def _leaky(x):
    import tensorflow as tf

    return tf.tanh(tf.nn.leaky_relu(tf.nn.relu6(x), alpha=0.2))


def test_unsupported_op_type_is_flagged(tmp_path):
    report = edgetpu_report(_int8_model(tmp_path / "m.tflite", _leaky, [1, 8, 8, 4]))
    assert [u["op"] for u in report["unsupported"]] == ["LEAKY_RELU"]
    assert "not a supported Edge TPU operation" in report["unsupported"][0]["reason"]
    last = report["ops"][-1]
    assert last["op"] == "TANH" and last["supported"] and last["placement"] == "cpu"
    assert "first unsupported op" in last["reason"]
    assert report["ops"][0]["placement"] == "edgetpu"


def test_unreadable_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        edgetpu_report(tmp_path / "missing.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="not a readable TFLite model"):
        edgetpu_report(tmp_path / "junk.tflite")


def _fake_compiler(folder):
    """An ``edgetpu_compiler`` stand-in that, like the real one, writes ``NAME_edgetpu.tflite``
    and ``NAME_edgetpu.log`` for ``NAME.tflite`` into the ``-o`` folder."""
    script = folder / edgetpu.COMPILER
    script.write_text(
        "#!/bin/sh\n"
        'while [ "$1" != "-o" ]; do shift; done\n'
        "name=${3##*/}; name=${name%.tflite}\n"  # no basename: PATH may hold only this
        'echo "Operator Count Status: CONV_2D 3 Mapped to Edge TPU" > "$2/${name}_edgetpu.log"\n'
        'echo "compiled $name" > "$2/${name}_edgetpu.tflite"\n'
        'echo "Edge TPU Compiler version fake"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_bundle_files_include_compiler_log_only_when_compiler_exists(
    tmp_path_factory, tmp_path, monkeypatch
):
    model = shared_bundle(tmp_path_factory, "int8_io") / "generator.tflite"
    monkeypatch.setenv("PATH", str(tmp_path))
    assert edgetpu.compile_model(model) is None
    assert set(edgetpu.bundle_files("generator", model)) == {"generator_edgetpu_report.json"}

    _fake_compiler(tmp_path)
    files = edgetpu.bundle_files("generator", model)
    log = files["generator_edgetpu_compiler.log"].decode()
    assert "exit status 0" in log and "Compiler version fake" in log and "Mapped to Edge" in log
    assert json.loads(files["generator_edgetpu_report.json"])["coverage"] == 1.0
    assert files["generator_edgetpu.tflite"] == b"compiled generator\n"


def test_every_model_of_a_bundle_gets_its_edgetpu_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    _fake_compiler(tmp_path)
    out = tmp_path / "bundle"
    specs = [conditional_spec(), refiner_spec()]
    export_bundle(specs, out, family="dcgan", quant="float32", edgetpu=edgetpu.bundle_files)
    models = load_bundle(out).metadata["models"]  # verifies every extra file's sha256
    for name in ("generator", "refiner"):
        suffixes = (
            edgetpu.REPORT_SUFFIX,
            edgetpu.COMPILER_LOG_SUFFIX,
            edgetpu.COMPILED_MODEL_SUFFIX,
        )
        assert sorted(models[name]["extra_files"]) == sorted(name + s for s in suffixes)
        report = json.loads((out / f"{name}_edgetpu_report.json").read_text())
        assert report["model"].endswith(f"{name}.tflite") and report["coverage"] == 0.0
        assert (out / f"{name}_edgetpu.tflite").read_text() == f"compiled {name}\n"
