"""Writing edge bundles (format 2): every model of a family converted, verified and written at once.

`export_bundle` converts each ``ExportSpec`` a family hands over (``lwgen.export.convert``),
verifies it against JAX, and writes ``NAME.tflite`` per model plus ``bundle.json`` (schema in
``lwgen.export.metadata`` and BUILD.md) into a staging directory that replaces ``out`` only when
complete. `export_workdir` does it for a trained workdir through the family registry; it imports
no family and no model. Reading is ``lwgen.export.metadata.load_bundle`` (re-exported here).

This module does not import TensorFlow at import time (``lwgen.export.convert`` is imported
inside the export functions) so that it stays importable on hosts with only LiteRT.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lwgen import __version__
from lwgen.errors import BundleError, ExportError
from lwgen.export import edgetpu
from lwgen.export.metadata import (
    FORMAT_VERSION,
    INT8_MODES,
    METADATA_FILE,
    MODEL_NAME,
    MODEL_SUFFIX,
    QUANT_MODES,
    Bundle,
    load_bundle,
    validate_metadata,
)
from lwgen.export.spec import ExportSpec
from lwgen.io import atomic_write_json, sha256_hex

__all__ = [
    "FORMAT_VERSION",
    "QUANT_MODES",
    "Bundle",
    "export_bundle",
    "export_options",
    "export_workdir",
    "load_bundle",
    "validate_metadata",
    "write_bundle",
]

EXPORT_DEFAULTS = {"quant": "int8", "batch": 1, "num_calibration": 256, "min_psnr": None}
BUNDLE_DIR_MODE = 0o755  # mkdtemp makes 0o700; a bundle is meant to be copied to devices

# (model name, staged model path) -> {extra file name: bytes}, e.g. lwgen.export.edgetpu.
ExtraFiles = Callable[[str, Path], Mapping[str, bytes]]


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"bundle output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / METADATA_FILE).is_file():
        raise ExportError(
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


def _stage_model(
    staging: Path, name: str, content: bytes, entry: Mapping[str, Any], extra: ExtraFiles | None
) -> dict[str, Any]:
    """Writes ``NAME.tflite`` and its extra files into ``staging``; returns the full entry."""
    file = name + MODEL_SUFFIX
    (staging / file).write_bytes(content)
    extras = dict(extra(name, staging / file)) if extra else {}
    for extra_name, data in extras.items():
        path = staging / extra_name
        if path.name != extra_name or extra_name == METADATA_FILE or path.exists():
            raise ExportError(f"extra bundle file {extra_name!r} must be a new plain file name")
        path.write_bytes(data)
    return {
        **entry,
        "file": file,
        "sha256": sha256_hex(content),
        "size_bytes": len(content),
        "extra_files": {extra_name: sha256_hex(data) for extra_name, data in extras.items()},
    }


def write_bundle(
    out: str | Path,
    models: Mapping[str, bytes],
    metadata: Mapping[str, Any],
    extra_files: ExtraFiles | None = None,
) -> dict[str, Any]:
    """Writes a bundle directory atomically.

    Everything is written to a temporary directory next to ``out`` which is renamed into place
    only when complete and valid; an existing bundle at ``out`` is replaced only then.

    Args:
      out: target bundle directory.
      models: ``{model name: .tflite bytes}``; written as ``NAME.tflite``.
      metadata: ``bundle.json`` content whose ``models`` entries lack ``file``, ``sha256``,
        ``size_bytes`` and ``extra_files`` (added here).
      extra_files: called per model with its name and staged path; returns more files
        ``{file name: bytes}`` for the bundle (e.g. the Edge TPU report). Their sha256 are
        recorded under the model's ``extra_files``.

    Returns:
      The complete ``bundle.json`` dict.

    Raises:
      ExportError: if ``out`` is a file or a non-bundle directory, or an extra file name is not a
        plain new file name.
      BundleError: if the metadata is invalid (see ``validate_metadata``); nothing is written.
    """
    out = Path(out)
    _check_replaceable(out)
    if sorted(models) != sorted(metadata.get("models", {})):
        raise BundleError(f"models {sorted(models)} differ from bundle.json's models")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        staging.chmod(BUNDLE_DIR_MODE)
        entries = {
            name: _stage_model(staging, name, content, metadata["models"][name], extra_files)
            for name, content in models.items()
        }
        full = {**metadata, "models": entries}
        validate_metadata(full)
        atomic_write_json(staging / METADATA_FILE, full)
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return full


def _check_specs(specs: Sequence[ExportSpec]) -> None:
    names = [spec.name for spec in specs]
    if not names or len(set(names)) != len(names):
        raise ExportError(f"a bundle needs one or more models with unique names, got {names}")
    for name in names:
        if not MODEL_NAME.fullmatch(name):
            raise ExportError(f"model name {name!r} must match {MODEL_NAME.pattern}")


def _model_entry(
    spec: ExportSpec,
    content: bytes,
    *,
    quant: str,
    batch: int,
    num_calibration: int,
    min_psnr: float | None,
    sparsity: bool,
    seed: int,
) -> dict[str, Any]:
    """Verifies a converted model and returns its ``models`` entry (files added on writing)."""
    from lwgen.export import convert

    error = convert.verify(content, spec, min_psnr=min_psnr, seed=seed)
    calibration = {
        "num_samples": num_calibration,
        "seed": seed,
        "dense_weights": convert.DENSE_WEIGHTS,
    }
    return {
        "quant": quant,
        "batch": batch,
        "sparsity": sparsity,
        "calibration": calibration if quant in INT8_MODES else None,
        **convert.describe_model(content, spec),
        "error": error,
        "fields": dict(spec.fields),
    }


def export_bundle(
    specs: Sequence[ExportSpec],
    out: str | Path,
    *,
    family: str,
    quant: str = "int8",
    batch: int = 1,
    num_calibration: int = 256,
    min_psnr: float | None = None,
    sparsity: bool = False,
    seed: int = 0,
    family_fields: Mapping[str, Any] | None = None,
    config_dict: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    edgetpu: ExtraFiles | None = None,
) -> dict[str, Any]:
    """Converts every spec to TFLite, verifies each against JAX and writes one bundle.

    Args:
      specs: the bundle's models (a family's ``export_specs``); names become ``NAME.tflite``.
      out: bundle directory to write (replaced atomically if it is a bundle already).
      family: model family recorded in ``bundle.json`` (``export/pi_infer.py`` dispatches on it).
      quant: one of ``QUANT_MODES`` (see ``lwgen.export.convert``), for every model whose spec
        sets no ``quant`` of its own.
      batch: static batch size of every model.
      num_calibration: calibration samples for the int8 modes (≥ ``convert.MIN_CALIBRATION``).
      min_psnr: refuse the bundle if any output's PSNR against JAX is lower (dB); None uses each
        spec's ``min_psnr``.
      sparsity: add ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``.
      seed: seed of the calibration and verification inputs.
      family_fields: the family's ``bundle.json`` fields (``Family.bundle_fields``).
      config_dict: JSON-serialisable training config recorded in ``bundle.json``.
      source: provenance recorded in ``bundle.json`` (e.g. workdir and step).
      edgetpu: extra files per model (``lwgen.export.edgetpu.bundle_files``), or None.

    Returns:
      The written ``bundle.json`` dict.

    Raises:
      ExportError: on bad options or model names, a non-bundle ``out``, a failed conversion, or a
        PSNR below the threshold (nothing is written then).
      BundleError: if the fields or config make ``bundle.json`` invalid.
    """
    from lwgen.export import convert  # TensorFlow is only needed when exporting.

    convert.check_options(quant, batch, num_calibration)
    _check_specs(specs)
    _check_replaceable(Path(out))
    contents, entries = {}, {}
    for spec in specs:
        options = dict(quant=spec.quant or quant, batch=batch, num_calibration=num_calibration)
        convert.check_options(**options)
        contents[spec.name] = convert.convert(spec, **options, seed=seed, sparsity=sparsity)
        entries[spec.name] = _model_entry(
            spec, contents[spec.name], **options, min_psnr=min_psnr, sparsity=sparsity, seed=seed
        )
    metadata = {
        "format_version": FORMAT_VERSION,
        "family": family,
        "lwgen_version": __version__,
        "models": entries,
        "fields": dict(family_fields or {}),
        "config": dict(config_dict or {}),
        "source": dict(source or {}),
    }
    return write_bundle(out, contents, metadata, _extra_files(specs, edgetpu))


def _extra_files(specs: Sequence[ExportSpec], edgetpu: ExtraFiles | None) -> ExtraFiles | None:
    """Each spec's own ``files`` plus the ``edgetpu`` files, as one `ExtraFiles` callback."""
    files = {spec.name: dict(spec.files) for spec in specs}
    if edgetpu is None and not any(files.values()):
        return None
    return lambda name, path: {**files[name], **(edgetpu(name, path) if edgetpu else {})}


def export_options(config_dict: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """Export options: ``overrides`` that are not None, else the config's ``export`` group.

    Args:
      config_dict: a training config as a dict (its ``export`` group may be missing).
      **overrides: ``quant``, ``batch``, ``num_calibration``, ``min_psnr`` (None = from config).

    Returns:
      ``{"quant", "batch", "num_calibration", "min_psnr"}``, falling back to
      ``EXPORT_DEFAULTS`` for anything neither given nor in the config (``min_psnr`` None means
      each export spec's own threshold).

    Raises:
      ExportError: on an unknown option name.
    """
    unknown = set(overrides) - set(EXPORT_DEFAULTS)
    if unknown:
        raise ExportError(
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
    edgetpu_report: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Exports a trained workdir's models (its family's ``export_specs``) as one bundle.

    ``quant``, ``batch``, ``num_calibration`` and ``min_psnr`` left None come from the workdir
    config's ``export`` group (see `export_options`). The family (``config.model.family``) is
    looked up in ``lwgen.families.registry``; it supplies the specs and the bundle fields.

    Args:
      workdir: a training workdir.
      out: bundle directory to write.
      quant, batch, num_calibration, min_psnr, sparsity, seed: as in `export_bundle`.
      edgetpu_report: add each model's Edge TPU report (and the compiler's log and compiled
        model where ``edgetpu_compiler`` is on ``PATH``), see ``lwgen.export.edgetpu``.

    Returns:
      The written ``bundle.json`` dict (``config`` is the workdir's config, ``source`` its path
      and checkpoint step).

    Raises:
      MissingFileError: if the workdir has no config or checkpoint.
      ConfigError: if the config names an unknown family.
      ExportError, BundleError: as `export_bundle`.
    """
    from lwgen.export import convert
    from lwgen.families.registry import get_family
    from lwgen.train.checkpoint import restore_inference

    restored = restore_inference(str(workdir))
    config_dict = json.loads(restored.config.to_json())
    options = export_options(
        config_dict, quant=quant, batch=batch, num_calibration=num_calibration, min_psnr=min_psnr
    )
    convert.check_options(options["quant"], options["batch"], options["num_calibration"])
    family = get_family(restored.config.model.family)
    return export_bundle(
        family.export_specs(restored, options["batch"]),
        out,
        family=family.name,
        **options,
        sparsity=sparsity,
        seed=seed,
        family_fields=family.bundle_fields(restored),
        config_dict=config_dict,
        source={"workdir": str(Path(workdir).resolve()), "step": int(restored.step)},
        edgetpu=edgetpu.bundle_files if edgetpu_report else None,
    )
