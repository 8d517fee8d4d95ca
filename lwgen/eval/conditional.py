"""Scores a class-conditional sampler with the judge against the data's held-out split.

Every sampler is scored on the same fixed inputs: ``per_class`` latents ``z ~ N(0, I)`` per class
from ``lwgen.data.prior`` (stream 0 of ``seed``), so a JAX generator and its exported bundle are
compared on identical ``(z, y)``. The metrics:

- ``class_accuracy``: fraction of samples the judge assigns to the class they were conditioned on;
- ``frechet_distance``: Fréchet distance (Heusel et al. 2017, eq. 2) between the samples and the
  real held-out images in the judge's penultimate-layer features;
- ``judge_heldout_accuracy``: the judge's accuracy on real held-out images, i.e. the class
  accuracy real data gets (the ceiling for ``class_accuracy``);
- ``precision``, ``recall``: improved precision and recall (Kynkäänniemi et al. 2019, k = 3) of
  the samples against the held-out images in the same features, on equally many of each
  (`balanced_precision_recall`): how many samples look real, how much of the real data the
  samples cover;
- ``real_frechet_distance``, ``real_precision``, ``real_recall``: the same metrics of
  ``per_class`` real training images per class against the held-out images (the references
  real data gets at this sample count);
- ``num_samples``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lwgen.data import load_source
from lwgen.data.captions import base_data_config
from lwgen.data.distill_set import real_data_config
from lwgen.data.prior import prior_inputs
from lwgen.data.source import to_unit_range
from lwgen.errors import ConfigError
from lwgen.eval.judge import Judge, as_data_config, load_or_train_judge
from lwgen.eval.metrics import class_accuracy, frechet_distance, precision_recall

SAMPLE_CHUNK = 250
RANGE_TOLERANCE = 1e-3
SampleFn = Callable[[np.ndarray, np.ndarray], Any]


def fixed_inputs(
    num_classes: int, latent_dim: int, per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation inputs: ``per_class`` latents for each class, in class order.

    Args:
      num_classes: K ≥ 1.
      latent_dim: size of ``z``, ≥ 1.
      per_class: samples per class, ≥ 2 (the Fréchet distance needs two).
      seed: seed of ``np.random.default_rng``.

    Returns:
      ``z`` float32 ``[K · per_class, latent_dim]`` from ``N(0, I)`` and labels int32
      ``[K · per_class]`` (``per_class`` zeros, then ones, ...).

    Raises:
      ValueError: on a count below its minimum.
    """
    minimums = {"num_classes": (num_classes, 1), "latent_dim": (latent_dim, 1),
                "per_class": (per_class, 2)}  # fmt: skip
    for name, (value, low) in minimums.items():
        if int(value) != value or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
    return prior_inputs(latent_dim, num_classes, labels, seed)[0], labels


def generate(sample_fn: SampleFn, z: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
    """Calls ``sample_fn`` on chunks of ``SAMPLE_CHUNK`` rows (the last one zero-padded).

    Every call sees the same batch size, so a jitted ``sample_fn`` compiles once.

    Args:
      sample_fn: ``(z f32 [B, L], y_onehot f32 [B, K]) -> f32 [B, H, W, C]`` in ``[-1, 1]``.
      z: float32 ``[N, L]``.
      y_onehot: float32 ``[N, K]``.

    Returns:
      float32 ``[N, H, W, C]`` clipped to ``[-1, 1]``.

    Raises:
      ValueError: if ``sample_fn`` returns a wrong batch size or rank, non-finite values or
        values outside ``[-1, 1]`` by more than ``RANGE_TOLERANCE``.
    """
    chunks = []
    for start in range(0, len(z), SAMPLE_CHUNK):
        zc, yc = z[start : start + SAMPLE_CHUNK], y_onehot[start : start + SAMPLE_CHUNK]
        pad = ((0, SAMPLE_CHUNK - len(zc)), (0, 0))
        images = np.asarray(sample_fn(np.pad(zc, pad), np.pad(yc, pad)), np.float32)
        if images.ndim != 4 or images.shape[0] != SAMPLE_CHUNK:
            raise ValueError(
                f"sample_fn must return [{SAMPLE_CHUNK}, H, W, C] images, got {images.shape}"
            )
        chunks.append(images[: len(zc)])
    images = np.concatenate(chunks)
    if not np.all(np.isfinite(images)):
        raise ValueError("sample_fn returned non-finite image values")
    low, high = float(images.min()), float(images.max())
    if low < -1.0 - RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise ValueError(f"sample_fn images must lie in [-1, 1], got range [{low}, {high}]")
    return np.clip(images, -1.0, 1.0)


def balanced_precision_recall(
    real: np.ndarray, generated: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """`lwgen.eval.metrics.precision_recall` (k = 3) on equally many real and generated points,
    as Kynkäänniemi et al. 2019 compare them: the larger set is subsampled without replacement
    (``numpy.random.default_rng(seed)``) to the size of the smaller.

    Args:
      real: float ``[N, D]`` features.
      generated: float ``[M, D]`` features.
      seed: seed of the subsample.

    Returns:
      ``{"precision", "recall"}`` in ``[0, 1]``.
    """
    size = min(len(real), len(generated))
    rng = np.random.default_rng(seed)
    real, generated = (
        x[np.sort(rng.choice(len(x), size, replace=False))] for x in (real, generated)
    )
    precision, recall = precision_recall(real, generated)
    return {"precision": precision, "recall": recall}


def real_reference(
    judge: Judge, data_config: Mapping, per_class: int
) -> tuple[np.ndarray, dict[str, float]]:
    """Judge features of the real held-out images, and the metrics real data gets against them.

    The references compare ``per_class`` training images of each class (the first ones, or all
    of a smaller class) with the held-out images: a real "generator" scored with the same sample
    count and class balance as `evaluate_sampler` uses, since the estimates of the distance,
    precision and recall depend on the sample count.

    Returns:
      ``(held-out features float32 [N_heldout, D], {"real_frechet_distance",
      "real_precision", "real_recall"})``.
    """
    train = load_source(data_config, "train")
    idx = np.concatenate(
        [np.flatnonzero(train.labels == k)[:per_class] for k in range(train.num_classes)]
    )
    heldout = judge.features(to_unit_range(load_source(data_config, "heldout").images))
    train_features = judge.features(to_unit_range(train.images[idx]))
    scores = balanced_precision_recall(heldout, train_features)
    return heldout, {
        "real_frechet_distance": frechet_distance(train_features, heldout),
        "real_precision": scores["precision"],
        "real_recall": scores["recall"],
    }


def evaluate_sampler(
    sample_fn: SampleFn,
    num_classes: int,
    latent_dim: int,
    data_config: Mapping,
    per_class: int = 100,
    seed: int = 0,
    cache_dir: str | None = None,
) -> dict[str, float | int]:
    """Scores a class-conditional sampler against the data's held-out split.

    Args:
      sample_fn: ``(z f32 [B, latent_dim], y_onehot f32 [B, num_classes]) -> f32
        [B, H, W, C]`` images in ``[-1, 1]`` with the data's ``(H, W, C)``.
      num_classes: K; must equal the judge's class count.
      latent_dim: size of ``z``.
      data_config: the config's ``data`` group (picks and trains the judge).
      per_class: samples per class (≥ 2).
      seed: seed of the fixed inputs (`fixed_inputs`).
      cache_dir: judge cache folder (see `load_or_train_judge`).

    Returns:
      ``{"class_accuracy", "frechet_distance", "precision", "recall",
      "judge_heldout_accuracy", "real_frechet_distance", "real_precision", "real_recall",
      "num_samples"}`` (see the module docstring).

    Raises:
      ValueError: on bad counts, a class count or image shape that differs from the judge's,
        or bad ``sample_fn`` output (see `generate`).
    """
    data_config = as_data_config(data_config)
    judge = load_or_train_judge(data_config, cache_dir)
    if num_classes != judge.module.num_classes:
        raise ConfigError(
            f"sampler has {num_classes} classes but the data has {judge.module.num_classes}"
        )
    z, labels = fixed_inputs(num_classes, latent_dim, per_class, seed)
    images = generate(sample_fn, z, np.eye(num_classes, dtype=np.float32)[labels])
    if images.shape[1:] != judge.image_shape:
        raise ConfigError(
            f"sampler images have shape {images.shape[1:]}, the data has {judge.image_shape}"
        )
    heldout_features, references = real_reference(judge, data_config, per_class)
    features = judge.features(images)
    return {
        "class_accuracy": class_accuracy(judge.logits(images), labels),
        "frechet_distance": frechet_distance(features, heldout_features),
        **balanced_precision_recall(heldout_features, features),
        "judge_heldout_accuracy": judge.heldout_accuracy,
        **references,
        "num_samples": int(len(images)),
    }


def judged_data_config(data_config: Mapping) -> Mapping:
    """The real data a workdir's generator is judged against.

    A distillation student's ``data`` group names the teacher's set; it is judged against the
    real data behind that set (``data.real_source``), like its teacher. A captioned source
    (``source = "captions"``) is judged against the images under the captions.

    Raises:
      ValueError: for a distillation set without ``data.real_source``.
    """
    if data_config.get("source", None) == "captions":
        return base_data_config(data_config)
    if data_config.get("source", None) != "distill":
        return data_config
    real = real_data_config(data_config)
    if real is None:
        raise ConfigError(
            "a distillation workdir is judged against real data: set data.real_source "
            "(and data.real_path for a folder)"
        )
    return real
