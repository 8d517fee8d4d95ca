"""The two ``bundle.json`` validators (``lwgen.export.metadata`` on the host, the standalone
``export/pi_infer.py`` on the device) accept and refuse exactly the same metadata."""

import copy
from pathlib import Path

import pytest

from lwgen.errors import BundleError
from lwgen.export import metadata as lwgen_schema
from lwgen.export.bundle import load_bundle
from tests.conftest import load_script
from tests.export_toys import toy_bundle

PI_INFER = Path(__file__).resolve().parents[1] / "export" / "pi_infer.py"


pi_infer = load_script(PI_INFER, "pi_infer_under_test")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real two-model int8 bundle's metadata, with an extra file on the generator."""
    metadata = copy.deepcopy(load_bundle(toy_bundle(tmp_path_factory, "int8", True)).metadata)
    metadata["models"]["generator"]["extra_files"] = {"generator_edgetpu.tflite": "a" * 64}
    return metadata


def _set(path, value):
    """A mutation setting ``metadata[path[0]][path[1]]... = value``."""

    def mutate(metadata):
        *parents, last = path
        target = metadata
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _delete(path):
    def mutate(metadata):
        *parents, last = path
        target = metadata
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


G = ("models", "generator")
Z = (*G, "inputs", 0)
ERROR = (*G, "error", "image")

ACCEPTED = {
    "as written": lambda m: None,
    "float32 without calibration": lambda m: m["models"]["refiner"].update(
        quant="float32", calibration=None
    ),
    "a family neither knows the fields of": _set(("family",), "diffusion"),
    "unknown extra keys": _set(("notes",), "kept for later formats"),
    "empty family fields": _set(("fields",), {}),
    "integer scale": _set((*Z, "scale"), 1),
}
REFUSED = {
    "missing format_version": _delete(("format_version",)),
    "format_version as a string": _set(("format_version",), "2"),
    "format_version as a bool": _set(("format_version",), True),
    "format 1": _set(("format_version",), 1),
    "format 3": _set(("format_version",), 3),
    "missing models": _delete(("models",)),
    "no models": _set(("models",), {}),
    "models as a list": _set(("models",), []),
    "missing family": _delete(("family",)),
    "missing fields": _delete(("fields",)),
    "missing config": _delete(("config",)),
    "missing source": _delete(("source",)),
    "missing lwgen_version": _delete(("lwgen_version",)),
    "family as a number": _set(("family",), 3),
    "bad model name": lambda m: m["models"].update(Gen=m["models"].pop("generator")),
    "model not an object": _set(G, "generator.tflite"),
    "missing sha256": _delete((*G, "sha256")),
    "missing model fields": _delete((*G, "fields")),
    "file not NAME.tflite": _set((*G, "file"), "other.tflite"),
    "uppercase sha256": _set((*G, "sha256"), "A" * 64),
    "short sha256": _set((*G, "sha256"), "a" * 63),
    "zero size": _set((*G, "size_bytes"), 0),
    "size as a string": _set((*G, "size_bytes"), "8776"),
    "size as a bool": _set((*G, "size_bytes"), True),
    "unknown quant": _set((*G, "quant"), "int4"),
    "zero batch": _set((*G, "batch"), 0),
    "sparsity as an int": _set((*G, "sparsity"), 0),
    "int8 without calibration": _set((*G, "calibration"), None),
    "float32 with calibration": _set((*G, "quant"), "float32"),
    "calibration without seed": _delete((*G, "calibration", "seed")),
    "no inputs": _set((*G, "inputs"), []),
    "inputs as an object": _set((*G, "inputs"), {"z": {}}),
    "tensor not an object": _set(Z, "z"),
    "tensor without tensor name": _delete((*Z, "tensor")),
    "float64 tensor": _set((*Z, "dtype"), "float64"),
    "shape off the batch": _set((*Z, "shape"), [2, 8]),
    "zero dimension": _set((*Z, "shape"), [1, 0]),
    "float dimension": _set((*Z, "shape"), [1, 8.0]),
    "empty shape": _set((*Z, "shape"), []),
    "negative scale": _set((*Z, "scale"), -1.0),
    "scale as a string": _set((*Z, "scale"), "0.5"),
    "fractional zero point": _set((*Z, "zero_point"), 0.5),
    "duplicate input names": _set((*G, "inputs", 1, "name"), "z"),
    "negative op count": _set((*G, "ops", "CONV_2D"), -1),
    "op count as a string": _set((*G, "ops", "CONV_2D"), "2"),
    "no error for an output": _set((*G, "error"), {}),
    "error for a missing output": _set((*G, "error", "residual"), {}),
    "error without psnr": _delete((*ERROR, "psnr_db")),
    "min_psnr as a string": _set((*ERROR, "min_psnr_db"), "20"),
    "error stats not an object": _set(ERROR, 45.0),
    "extra file outside the bundle": _set((*G, "extra_files"), {"../x.tflite": "a" * 64}),
    "extra file without sha256": _set((*G, "extra_files"), {"notes.txt": "n/a"}),
    "extra file named like a model": _set((*G, "extra_files"), {"refiner.tflite": "a" * 64}),
    "extra file named bundle.json": _set((*G, "extra_files"), {"bundle.json": "a" * 64}),
}


def _verdicts(metadata):
    """``(lwgen accepts, pi_infer accepts)``; any other exception fails the test."""
    verdicts = []
    for validate, error in (
        (lwgen_schema.validate_metadata, BundleError),
        (pi_infer.validate_metadata, ValueError),
    ):
        try:
            validate(metadata)
            verdicts.append(True)
        except error:
            verdicts.append(False)
    return tuple(verdicts)


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_both_accept(good, case):
    metadata = copy.deepcopy(good)
    ACCEPTED[case](metadata)
    assert _verdicts(metadata) == (True, True)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_both_refuse(good, case):
    metadata = copy.deepcopy(good)
    REFUSED[case](metadata)
    assert _verdicts(metadata) == (False, False)


def test_both_refuse_what_is_not_an_object():
    for metadata in ([], "bundle", None, 2):
        assert _verdicts(metadata) == (False, False)


def test_both_refuse_format_1_with_a_re_export_hint():
    old = {"format_version": 1, "family": "dcgan", "sha256": "0" * 64}
    with pytest.raises(BundleError, match="older lwgen") as lwgen_error:
        lwgen_schema.validate_metadata(old)
    with pytest.raises(ValueError, match="older lwgen") as pi_error:
        pi_infer.validate_metadata(old)
    for error in (lwgen_error, pi_error):
        assert "export/export_bundle.py" in str(error.value)


def test_schema_tables_are_the_same():
    for name in (
        "FORMAT_VERSION",
        "QUANT_MODES",
        "INT8_MODES",
        "TENSOR_DTYPES",
        "TOP_KEYS",
        "MODEL_KEYS",
        "TENSOR_KEYS",
        "CALIBRATION_KEYS",
        "ERROR_KEYS",
        "REEXPORT_HINT",
    ):
        assert getattr(pi_infer, name) == getattr(lwgen_schema, name), name
    for name in ("MODEL_NAME", "FILE_NAME", "SHA256"):
        assert getattr(pi_infer, name).pattern == getattr(lwgen_schema, name).pattern, name
