"""Edge bundles: a directory holding ``model.tflite`` and ``bundle.json``, written atomically.

``bundle.json`` records everything a device needs to run the model without the training code
(format version, family, shapes, tensor dtypes with their int8 scale/zero point, class names, the
sha256 and size of ``model.tflite``) plus what was measured at export (max abs error and PSNR
against the JAX generator, op counts) and the training config. ``export_generator`` converts,
verifies and writes a bundle; ``export_workdir`` does it for a trained workdir; ``load_bundle``
verifies one on read.

This module does not import TensorFlow at import time (``lwgen.export.convert`` is imported
inside the export functions) so that ``load_bundle`` and ``lwgen.export.runtime`` stay usable on
hosts with only LiteRT.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from lwgen import __version__

FORMAT_VERSION = 1
MODEL_FILE = "model.tflite"
METADATA_FILE = "bundle.json"
QUANT_MODES = ("float32", "float16", "dynamic", "int8", "int8_io")
INT8_MODES = ("int8", "int8_io")
MIN_CALIBRATION = 200
EXPORT_DEFAULTS = {"quant": "int8", "batch": 1, "num_calibration": 256, "min_psnr": 20.0}
BUNDLE_DIR_MODE = 0o755  # mkdtemp makes 0o700; a bundle is meant to be copied to devices

ExtraFiles = Callable[[Path], Mapping[str, bytes]]

_NUMBER = (int, float)
_METADATA_KEYS = (
    dict.fromkeys(("family", "lwgen_version", "quant", "sha256"), str)
    | dict.fromkeys(("format_version", "size_bytes", "latent_dim", "num_classes", "batch"), int)
    | dict.fromkeys(("image_shape", "class_names", "inputs", "outputs"), list)
    | dict.fromkeys(("error", "config"), dict)
)
_TENSOR_KEYS = dict.fromkeys(("name", "tensor", "dtype"), str) | {
    "shape": list,
    "scale": _NUMBER,
    "zero_point": int,
}
_ERROR_KEYS = {"max_abs_error": _NUMBER, "psnr_db": _NUMBER, "num_samples": int}


class Bundle(NamedTuple):
    """A verified bundle: its directory, its ``bundle.json`` dict and the model bytes."""

    directory: Path
    metadata: dict[str, Any]
    model_content: bytes


def sha256_hex(data: bytes) -> str:
    """Hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _check_keys(where: str, mapping: Mapping[str, Any], types: Mapping[str, Any]) -> None:
    for key, kind in types.items():
        if key not in mapping:
            raise ValueError(f"{where}: missing key {key!r}")
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{where}: key {key!r} has the wrong type: {value!r}")


def validate_metadata(metadata: Mapping[str, Any], where: str = METADATA_FILE) -> None:
    """Checks the keys, types and consistency of a ``bundle.json`` dict.

    Args:
      metadata: the parsed ``bundle.json``.
      where: name used in error messages (usually the file path).

    Raises:
      ValueError: naming the first missing, mistyped or inconsistent key.
    """
    _check_keys(where, metadata, _METADATA_KEYS)
    if metadata["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{where}: format_version {metadata['format_version']} is not {FORMAT_VERSION}"
        )
    if metadata["quant"] not in QUANT_MODES:
        raise ValueError(f"{where}: quant {metadata['quant']!r} is not one of {QUANT_MODES}")
    shape = metadata["image_shape"]
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"{where}: image_shape must be 3 positive ints [H, W, C], got {shape}")
    if len(metadata["class_names"]) != metadata["num_classes"]:
        raise ValueError(
            f"{where}: {len(metadata['class_names'])} class_names for "
            f"num_classes={metadata['num_classes']}"
        )
    for key in ("inputs", "outputs"):
        for i, tensor in enumerate(metadata[key]):
            if not isinstance(tensor, dict):
                raise ValueError(f"{where}: {key}[{i}] must be an object, got {tensor!r}")
            _check_keys(f"{where}: {key}[{i}]", tensor, _TENSOR_KEYS)
    names = [t["name"] for t in metadata["inputs"]], [t["name"] for t in metadata["outputs"]]
    if names != (["z", "y"], ["image"]):
        raise ValueError(f"{where}: expected inputs ['z', 'y'] and outputs ['image'], got {names}")
    _check_keys(f"{where}: error", metadata["error"], _ERROR_KEYS)


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"bundle output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / METADATA_FILE).is_file():
        raise ValueError(
            f"bundle output {out} is a non-empty directory without {METADATA_FILE}; "
            "refusing to replace something that is not a bundle"
        )


def _swap_into_place(staging: Path, out: Path) -> None:
    """Renames ``staging`` to ``out``; an existing ``out`` is moved aside first, then deleted."""
    if not out.exists():
        os.rename(staging, out)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, trash / "previous")
    try:
        os.rename(staging, out)
    except OSError:
        os.rename(trash / "previous", out)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def write_bundle(
    out: str | Path,
    model_content: bytes,
    metadata: Mapping[str, Any],
    extra_files: ExtraFiles | None = None,
) -> dict[str, Any]:
    """Writes a bundle directory atomically.

    Everything is written to a temporary directory next to ``out`` which is renamed into place
    only when complete; an existing bundle at ``out`` is replaced only then.

    Args:
      out: target bundle directory.
      model_content: the ``.tflite`` flatbuffer.
      metadata: ``bundle.json`` content without ``sha256``/``size_bytes``/``extra_files``
        (added here).
      extra_files: called with the staged ``model.tflite`` path; returns more files
        ``{file name: bytes}`` to put into the bundle (e.g. an Edge TPU report). Their sha256
        are recorded under ``extra_files``.

    Returns:
      The complete ``bundle.json`` dict.

    Raises:
      ValueError: if ``out`` is a file or a non-bundle directory, an extra file name is not a
        plain new file name, or the metadata is invalid (see ``validate_metadata``).
    """
    out = Path(out)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        staging.chmod(BUNDLE_DIR_MODE)
        (staging / MODEL_FILE).write_bytes(model_content)
        extras = dict(extra_files(staging / MODEL_FILE)) if extra_files else {}
        for name, data in extras.items():
            if name in (MODEL_FILE, METADATA_FILE) or Path(name).name != name:
                raise ValueError(f"extra bundle file name {name!r} must be a new plain file name")
            (staging / name).write_bytes(data)
        full = dict(metadata)
        full.update(
            sha256=sha256_hex(model_content),
            size_bytes=len(model_content),
            extra_files={name: sha256_hex(data) for name, data in extras.items()},
        )
        validate_metadata(full)
        text = json.dumps(full, indent=2, allow_nan=False)
        (staging / METADATA_FILE).write_text(text + "\n")
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return full


def _verified_bytes(path: Path, expected_sha256: str) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"bundle file {path} not found")
    data = path.read_bytes()
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise ValueError(
            f"{path}: sha256 {actual} does not match {expected_sha256} in {METADATA_FILE} "
            "(corrupted or replaced file)"
        )
    return data


def load_bundle(bundle_dir: str | Path) -> Bundle:
    """Reads a bundle and verifies ``bundle.json`` and the checksums of its files.

    Args:
      bundle_dir: directory written by ``write_bundle``.

    Returns:
      A ``Bundle`` with the parsed metadata and the verified model bytes.

    Raises:
      FileNotFoundError: naming the missing directory or file.
      ValueError: on invalid JSON, missing/mistyped keys, or a sha256 mismatch.
    """
    directory = Path(bundle_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"bundle directory {directory} not found")
    meta_path = directory / METADATA_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"bundle file {meta_path} not found")
    try:
        metadata = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta_path} is not valid JSON: {e}") from e
    if not isinstance(metadata, dict):
        raise ValueError(f"{meta_path} must hold a JSON object")
    validate_metadata(metadata, str(meta_path))
    model_content = _verified_bytes(directory / MODEL_FILE, metadata["sha256"])
    if len(model_content) != metadata["size_bytes"]:
        raise ValueError(f"{directory / MODEL_FILE}: size differs from {METADATA_FILE}")
    extra_files = metadata.get("extra_files", {})
    if not isinstance(extra_files, dict):
        raise ValueError(f"{meta_path}: extra_files must map file names to sha256")
    for name, sha in extra_files.items():
        if Path(name).name != name:
            raise ValueError(f"{meta_path}: extra file {name!r} is not a plain file name")
        _verified_bytes(directory / name, sha)
    return Bundle(directory, metadata, model_content)


def _class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(f"got {len(names)} class_names for num_classes={num_classes}")
    return names


def export_generator(
    generator: Any,
    variables: Mapping[str, Any],
    out: str | Path,
    *,
    quant: str = "int8",
    batch: int = 1,
    num_calibration: int = 256,
    min_psnr: float = 20.0,
    sparsity: bool = False,
    seed: int = 0,
    family: str = "dcgan",
    config_dict: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    source: Mapping[str, Any] | None = None,
    extra_files: ExtraFiles | None = None,
) -> dict[str, Any]:
    """Converts a conditional generator to TFLite, verifies it against JAX and writes a bundle.

    Args:
      generator: a flax module with ``num_classes``, ``image_shape`` and ``latent_dim`` fields,
        called as ``apply(variables, z f32[B, latent_dim], y f32[B, num_classes], train=False)
        -> f32[B, H, W, C]`` in ``[-1, 1]`` (e.g. ``lwgen.models.dcgan.Generator``).
      variables: its variables (``{"params", "batch_stats"}``).
      out: bundle directory to write (replaced atomically if it is a bundle already).
      quant: one of ``QUANT_MODES`` (see ``lwgen.export.convert.convert``).
      batch: static batch size of the exported model.
      num_calibration: calibration samples for the int8 modes (≥ ``MIN_CALIBRATION``).
      min_psnr: refuse the bundle if its PSNR against JAX is lower (dB).
      sparsity: add ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``.
      seed: seed of the calibration and verification latents.
      family: model family recorded in ``bundle.json``.
      config_dict: JSON-serialisable training config recorded in ``bundle.json``.
      class_names: one name per class; defaults to ``"0"``, ``"1"``, ...
      source: provenance recorded in ``bundle.json`` (e.g. workdir and step).
      extra_files: see ``write_bundle``.

    Returns:
      The written ``bundle.json`` dict.

    Raises:
      ValueError: on bad options, a non-bundle ``out``, or a PSNR below ``min_psnr`` (nothing
        is written then).
    """
    from lwgen.export import convert  # TensorFlow is only needed when exporting.

    convert.check_options(quant, batch, num_calibration)
    _check_replaceable(Path(out))
    names = _class_names(class_names, generator.num_classes)
    model_content = convert.convert(
        generator, variables, quant, batch, num_calibration, seed=seed, sparsity=sparsity
    )
    error = convert.verify(model_content, generator, variables, min_psnr=min_psnr, seed=seed)
    int8 = quant in INT8_MODES
    metadata = {
        "format_version": FORMAT_VERSION,
        "family": family,
        "lwgen_version": __version__,
        "quant": quant,
        "sparsity": sparsity,
        "batch": batch,
        "calibration": {
            "num_samples": num_calibration,
            "seed": seed,
            "dense_weights": convert.DENSE_WEIGHTS,
        }
        if int8
        else None,
        "image_shape": [int(d) for d in generator.image_shape],
        "latent_dim": int(generator.latent_dim),
        "num_classes": int(generator.num_classes),
        "class_names": names,
        "upsample": getattr(generator, "upsample", None),
        **convert.describe_model(model_content),
        "error": error,
        "config": dict(config_dict or {}),
        "source": dict(source or {}),
    }
    return write_bundle(out, model_content, metadata, extra_files)


def export_options(config_dict: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """Export options: ``overrides`` that are not None, else the config's ``export`` group.

    Args:
      config_dict: a training config as a dict (its ``export`` group may be missing).
      **overrides: ``quant``, ``batch``, ``num_calibration``, ``min_psnr`` (None = from config).

    Returns:
      ``{"quant", "batch", "num_calibration", "min_psnr"}``, falling back to
      ``EXPORT_DEFAULTS`` for anything neither given nor in the config.

    Raises:
      ValueError: on an unknown option name.
    """
    unknown = set(overrides) - set(EXPORT_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown export options {sorted(unknown)}; known: {list(EXPORT_DEFAULTS)}"
        )
    configured = dict(config_dict.get("export") or {})
    return {
        key: overrides[key] if overrides.get(key) is not None else configured.get(key, default)
        for key, default in EXPORT_DEFAULTS.items()
    }


def export_workdir(
    workdir: str | Path,
    out: str | Path,
    quant: str | None = None,
    batch: int | None = None,
    num_calibration: int | None = None,
    min_psnr: float | None = None,
    sparsity: bool = False,
    *,
    class_names: Sequence[str] | None = None,
    extra_files: ExtraFiles | None = None,
) -> dict[str, Any]:
    """Exports the EMA generator of a trained workdir (``restore_generator``) as a bundle.

    ``quant``, ``batch``, ``num_calibration`` and ``min_psnr`` left None come from the workdir
    config's ``export`` group (see ``export_options``). Class names come from ``class_names``,
    else ``config.data.class_names`` if the config has them, else ``"0"``, ``"1"``, .... Other
    arguments as in ``export_generator``.

    Returns:
      The written ``bundle.json`` dict (``config`` is the workdir's config, ``source`` its path
      and checkpoint step).

    Raises:
      FileNotFoundError: if the workdir has no config or checkpoint.
      ValueError: as ``export_generator``.
    """
    from lwgen.train.checkpoint import read_config, restore_generator

    config_dict = json.loads(read_config(str(workdir)).to_json())
    options = export_options(
        config_dict, quant=quant, batch=batch, num_calibration=num_calibration, min_psnr=min_psnr
    )
    from lwgen.export import convert  # TensorFlow, once the workdir is known to exist

    convert.check_options(options["quant"], options["batch"], options["num_calibration"])
    restored = restore_generator(str(workdir))
    return export_generator(
        restored.generator,
        restored.variables,
        out,
        **options,
        sparsity=sparsity,
        family=config_dict["model"]["family"],
        config_dict=config_dict,
        class_names=class_names or config_dict["data"].get("class_names"),
        source={"workdir": str(Path(workdir).resolve()), "step": int(restored.step)},
        extra_files=extra_files,
    )
