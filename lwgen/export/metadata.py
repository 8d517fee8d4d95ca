"""The ``bundle.json`` schema (bundle format 2): constants, validation, and verified reading.

A bundle is a directory with one ``NAME.tflite`` per model, optional extra files per model (the
Edge TPU report and compiled model) and ``bundle.json``; BUILD.md documents every key. This module
is the one definition of that format in lwgen: ``lwgen.export.bundle`` validates what it writes
with `validate_metadata`, ``lwgen.export.runtime`` reads bundles with `load_bundle`. It needs
neither TensorFlow nor LiteRT. ``export/pi_infer.py`` repeats the checks (it cannot import lwgen);
``tests/test_bundle_schema.py`` keeps the two in agreement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from lwgen.errors import BundleError, MissingFileError
from lwgen.io import file_sha256, sha256_hex

FORMAT_VERSION = 2
METADATA_FILE = "bundle.json"
MODEL_SUFFIX = ".tflite"
QUANT_MODES = ("float32", "float16", "dynamic", "int8", "int8_io")
INT8_MODES = ("int8", "int8_io")
TENSOR_DTYPES = ("float32", "int8", "uint8", "int32")
REEXPORT_HINT = "re-export it with export/export_bundle.py --workdir=WORKDIR --out=BUNDLE_DIR"

MODEL_NAME = re.compile(r"[a-z][a-z0-9_]*")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")

_NUMBER = (int, float)
TOP_KEYS = {
    "format_version": int,
    "family": str,
    "lwgen_version": str,
    "models": dict,
    "fields": dict,
    "config": dict,
    "source": dict,
}
MODEL_KEYS = {
    "file": str,
    "sha256": str,
    "size_bytes": int,
    "quant": str,
    "batch": int,
    "sparsity": bool,
    "calibration": (dict, type(None)),
    "inputs": list,
    "outputs": list,
    "ops": dict,
    "error": dict,
    "fields": dict,
    "extra_files": dict,
}
TENSOR_KEYS = {
    "name": str,
    "tensor": str,
    "dtype": str,
    "shape": list,
    "scale": _NUMBER,
    "zero_point": int,
}
CALIBRATION_KEYS = {"num_samples": int, "seed": int, "dense_weights": str}
ERROR_KEYS = {
    "max_abs_error": _NUMBER,
    "psnr_db": _NUMBER,
    "num_samples": int,
    "min_psnr_db": _NUMBER,
    "peak_to_peak": _NUMBER,
}


class Bundle(NamedTuple):
    """A verified bundle.

    Attributes:
      directory: the bundle directory.
      metadata: the parsed, validated ``bundle.json``.
      models: ``{model name: .tflite bytes}``, each checked against its sha256 and size.
    """

    directory: Path
    metadata: dict[str, Any]
    models: dict[str, bytes]


def _fits(value: Any, kind: type | tuple[type, ...]) -> bool:
    """``isinstance`` where a JSON ``true``/``false`` counts only as ``bool``, never a number."""
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind)


def _check_keys(where: str, mapping: Any, types: Mapping[str, Any]) -> None:
    """Checks that ``mapping`` is a dict holding every key of ``types`` with a value of its type.

    Raises:
      BundleError: naming ``where`` and the first missing or mistyped key.
    """
    if not isinstance(mapping, dict):
        raise BundleError(f"{where}: must be an object, got {mapping!r}")
    for key, kind in types.items():
        if key not in mapping:
            raise BundleError(f"{where}: missing key {key!r}")
        if not _fits(mapping[key], kind):
            raise BundleError(f"{where}: key {key!r} has the wrong type: {mapping[key]!r}")


def _check_format(metadata: Any, where: str = METADATA_FILE) -> None:
    """Refuses anything but a format-2 ``bundle.json`` object, pointing old bundles to re-export.

    Raises:
      BundleError: if ``metadata`` is not an object, lacks an integer ``format_version``, is
        format 1 (or has no ``models``, as format 1 bundles) or comes from a newer lwgen.
    """
    if not isinstance(metadata, dict):
        raise BundleError(f"{where}: must hold a JSON object")
    version = metadata.get("format_version")
    if not _fits(version, int):
        raise BundleError(f"{where}: format_version must be an integer, got {version!r}")
    if version < FORMAT_VERSION or "models" not in metadata:
        found = f"format {version}" if version < FORMAT_VERSION else "no 'models'"
        raise BundleError(
            f"{where}: {found}: this bundle was written by an older lwgen (this one reads "
            f"format {FORMAT_VERSION}); {REEXPORT_HINT}"
        )
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{where}: bundle format {version} was written by a newer lwgen; this one reads "
            f"format {FORMAT_VERSION}"
        )


def _check_tensors(where: str, tensors: list[Any], batch: int) -> list[str]:
    """Checks a model's ``inputs`` or ``outputs`` list; returns the tensor names in order."""
    if not tensors:
        raise BundleError(f"{where}: must list at least one tensor")
    for i, tensor in enumerate(tensors):
        at = f"{where}[{i}]"
        _check_keys(at, tensor, TENSOR_KEYS)
        if tensor["dtype"] not in TENSOR_DTYPES:
            raise BundleError(f"{at}: dtype {tensor['dtype']!r} is not one of {TENSOR_DTYPES}")
        shape = tensor["shape"]
        if not shape or not all(_fits(d, int) and d > 0 for d in shape) or shape[0] != batch:
            raise BundleError(f"{at}: shape must be positive ints [{batch}, ...], got {shape}")
        if tensor["scale"] < 0:
            raise BundleError(f"{at}: scale must be >= 0, got {tensor['scale']}")
    names = [tensor["name"] for tensor in tensors]
    if len(set(names)) != len(names):
        raise BundleError(f"{where}: tensor names {names} are not unique")
    return names


def _check_model(where: str, name: str, model: Any) -> None:
    """Checks one entry of ``models`` (see BUILD.md for the keys)."""
    _check_keys(where, model, MODEL_KEYS)
    if model["file"] != name + MODEL_SUFFIX:
        raise BundleError(f"{where}: file must be {name + MODEL_SUFFIX!r}, got {model['file']!r}")
    if not SHA256.fullmatch(model["sha256"]):
        raise BundleError(f"{where}: sha256 must be 64 lowercase hex digits")
    if model["quant"] not in QUANT_MODES:
        raise BundleError(f"{where}: quant {model['quant']!r} is not one of {QUANT_MODES}")
    if model["size_bytes"] < 1 or model["batch"] < 1:
        raise BundleError(f"{where}: size_bytes and batch must be >= 1")
    if (model["calibration"] is not None) != (model["quant"] in INT8_MODES):
        raise BundleError(f"{where}: calibration must be an object exactly for {INT8_MODES}")
    if model["calibration"] is not None:
        _check_keys(f"{where}.calibration", model["calibration"], CALIBRATION_KEYS)
    _check_tensors(f"{where}.inputs", model["inputs"], model["batch"])
    outputs = _check_tensors(f"{where}.outputs", model["outputs"], model["batch"])
    if not all(_fits(count, int) and count >= 0 for count in model["ops"].values()):
        raise BundleError(f"{where}.ops: must map operator names to counts")
    if sorted(model["error"]) != sorted(outputs):
        raise BundleError(f"{where}.error: must have one entry per output {outputs}")
    for output in outputs:
        _check_keys(f"{where}.error.{output}", model["error"][output], ERROR_KEYS)
    for file, sha in model["extra_files"].items():
        if not FILE_NAME.fullmatch(file) or not _fits(sha, str) or not SHA256.fullmatch(sha):
            raise BundleError(f"{where}.extra_files: {file!r} needs a plain name and a sha256")


def validate_metadata(metadata: Any, where: str = METADATA_FILE) -> None:
    """Checks the keys, types and consistency of a format-2 ``bundle.json`` dict.

    Args:
      metadata: the parsed ``bundle.json``.
      where: name used in error messages (usually the file path).

    Raises:
      BundleError: naming the first missing, mistyped or inconsistent key; an old-format bundle
        gets a message saying to re-export it (see `_check_format`).
    """
    _check_format(metadata, where)
    _check_keys(where, metadata, TOP_KEYS)
    if not metadata["models"]:
        raise BundleError(f"{where}: models must hold at least one model")
    files = [METADATA_FILE]
    for name, model in metadata["models"].items():
        if not MODEL_NAME.fullmatch(name):
            raise BundleError(f"{where}: model name {name!r} must match {MODEL_NAME.pattern}")
        _check_model(f"{where}: models.{name}", name, model)
        files += [model["file"], *model["extra_files"]]
    if len(set(files)) != len(files):
        raise BundleError(f"{where}: file names {files} are not unique")


def read_metadata(directory: Path) -> dict[str, Any]:
    """Reads and validates ``DIRECTORY/bundle.json``.

    Raises:
      MissingFileError: if the directory or ``bundle.json`` does not exist.
      BundleError: on invalid JSON or metadata (see `validate_metadata`).
    """
    if not directory.is_dir():
        raise MissingFileError(f"bundle directory {directory} not found")
    path = directory / METADATA_FILE
    if not path.is_file():
        raise MissingFileError(f"bundle file {path} not found")
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path} is not valid JSON: {e}") from e
    validate_metadata(metadata, str(path))
    return metadata


def _check_digest(path: Path, actual: str, expected: str) -> None:
    if actual != expected:
        raise BundleError(
            f"{path}: sha256 {actual} does not match {expected} in {METADATA_FILE} "
            "(corrupted or replaced file)"
        )


def _model_bytes(directory: Path, model: Mapping[str, Any]) -> bytes:
    """A model's verified ``.tflite`` bytes; its extra files are verified too (not read)."""
    path = directory / model["file"]
    if not path.is_file():
        raise MissingFileError(f"bundle file {path} not found")
    data = path.read_bytes()
    _check_digest(path, sha256_hex(data), model["sha256"])
    if len(data) != model["size_bytes"]:
        raise BundleError(f"{path}: size {len(data)} differs from {METADATA_FILE}")
    for name, expected in model["extra_files"].items():
        extra = directory / name
        if not extra.is_file():
            raise MissingFileError(f"bundle file {extra} not found")
        _check_digest(extra, file_sha256(extra), expected)
    return data


def load_bundle(bundle_dir: str | Path) -> Bundle:
    """Reads a bundle, validating ``bundle.json`` and the sha256 of every file it lists.

    Args:
      bundle_dir: a directory written by ``lwgen.export.bundle.write_bundle``.

    Returns:
      The `Bundle` with every model's bytes.

    Raises:
      MissingFileError: naming the missing directory or file.
      BundleError: on invalid or old-format ``bundle.json``, or a sha256/size mismatch.
    """
    directory = Path(bundle_dir)
    metadata = read_metadata(directory)
    models = {name: _model_bytes(directory, m) for name, m in metadata["models"].items()}
    return Bundle(directory, metadata, models)
