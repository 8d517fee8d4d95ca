"""The evaluation driver: scores a trained workdir or an exported bundle with its family's metrics.

The family (``config.model.family`` of the workdir, ``family`` of the bundle) says what to
measure (``lwgen.families.registry.Family.evaluate`` / ``evaluate_bundle``); this module restores,
dispatches and writes ``WORKDIR/eval.json`` atomically. It imports no family and no model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from lwgen.families.registry import get_family
from lwgen.io import atomic_write_json
from lwgen.train.checkpoint import restore_inference

EVAL_FILE = "eval.json"


def evaluate_workdir(
    workdir: str, per_class: int = 100, cache_dir: str | None = None
) -> dict[str, float | int]:
    """`score_workdir`, also written to ``WORKDIR/eval.json`` (atomically).

    Raises:
      MissingFileError: if the workdir has no config or checkpoint.
      ValueError: from the family's evaluation (bad counts, bad sampler output).
    """
    metrics = score_workdir(workdir, per_class, cache_dir)
    atomic_write_json(os.path.join(workdir, EVAL_FILE), metrics)
    return metrics


def score_workdir(
    workdir: str, per_class: int = 100, cache_dir: str | None = None
) -> dict[str, float | int]:
    """Scores the inference networks of a workdir's latest checkpoint; writes nothing.

    Args:
      workdir: a training workdir (``config.json`` and ``checkpoints/``).
      per_class: samples per class (class-conditional families).
      cache_dir: judge cache folder.

    Returns:
      The family's metrics plus ``"step"`` (the checkpoint's step).

    Raises:
      MissingFileError: if the workdir has no config or checkpoint.
      ValueError: from the family's evaluation (bad counts, bad sampler output).
    """
    restored = restore_inference(workdir)
    family = get_family(restored.config.model.family)
    metrics = family.evaluate(restored, per_class=per_class, cache_dir=cache_dir)
    metrics["step"] = int(restored.step)
    return metrics


def evaluate_bundle(
    bundle_dir: str,
    data_config: Mapping,
    per_class: int = 100,
    cache_dir: str | None = None,
) -> dict[str, float | int]:
    """Scores an exported bundle with its family's metrics, on the same inputs as the workdir.

    Args:
      bundle_dir: a bundle directory.
      data_config: the ``data`` group of the config the model was trained with.
      per_class: samples per class.
      cache_dir: judge cache folder.

    Returns:
      The family's metrics.

    Raises:
      MissingFileError / BundleError: from loading the bundle.
      ValueError: from the family's evaluation.
    """
    from lwgen.export.bundle import load_bundle  # LiteRT, not TensorFlow

    family = get_family(load_bundle(bundle_dir).metadata["family"])
    return family.evaluate_bundle(bundle_dir, data_config, per_class=per_class, cache_dir=cache_dir)
