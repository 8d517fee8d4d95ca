"""The embedding projector: generated and real held-out images in the judge's feature space.

`project_workdir` draws ``num`` samples per class with the workdir's family (``Family.sample``),
takes up to ``num`` real held-out images per class, embeds both with the judge's penultimate
features (`lwgen.eval.judge`) and writes

- TensorBoard projector files (``tensorboard --logdir OUT`` shows them in its Projector tab):
  ``OUT/projector_config.pbtxt`` (the ``ProjectorConfig`` proto of
  ``tensorboard.plugins.projector``, in text format) pointing at ``OUT/projector/``
  ``tensors.tsv`` (the features), ``metadata.tsv`` (class name and real/generated per row) and
  ``sprite.png`` (the images tiled row-major in a square grid, as the projector expects);
- ``OUT/projector/pca.png`` and ``tsne.png``: scatter plots of the PCA (scikit-learn ``PCA``) and
  t-SNE (van der Maaten & Hinton 2008, scikit-learn ``TSNE``) projections to 2-D, colour by class,
  circles for real and crosses for generated images;
- ``OUT/projector/projector.json``: counts, PCA explained variance, t-SNE KL divergence, times.

It knows no family: any family whose ``sample`` draws images of the judged data's shape works.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lwgen.data import load_source
from lwgen.data.prior import class_names
from lwgen.data.source import to_unit_range
from lwgen.errors import ConfigError
from lwgen.eval.conditional import judged_data_config
from lwgen.eval.judge import as_data_config, load_or_train_judge
from lwgen.families.registry import get_family
from lwgen.images import make_grid, save_png
from lwgen.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from lwgen.train.checkpoint import restore_inference

CONFIG_FILE = "projector_config.pbtxt"  # the name TensorBoard's projector plugin looks for
PROJECTOR_DIR = "projector"
TENSOR_NAME = "judge_features"
SOURCES = ("real", "generated")
MARKERS = {"real": "o", "generated": "x"}
DEFAULT_PERPLEXITY = 30.0


def heldout_per_class(data_config, num: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``num`` held-out images of each class (all of a smaller class), class by class.

    Returns:
      images float32 ``[M, H, W, C]`` in ``[-1, 1]`` and labels int32 ``[M]``.
    """
    heldout = load_source(data_config, "heldout")
    idx = np.concatenate(
        [np.flatnonzero(heldout.labels == k)[:num] for k in range(heldout.num_classes)]
    )
    return to_unit_range(heldout.images[idx]), heldout.labels[idx].astype(np.int32)


def sprite(images: np.ndarray) -> np.ndarray:
    """The projector's sprite: images tiled row-major in a ``ceil(√N) × ceil(√N)`` grid.

    Args:
      images: float ``[N, H, W, C]`` in ``[-1, 1]``, N ≥ 1.

    Returns:
      uint8 ``[side·H, side·W, C]``; tiles past ``N`` are black.
    """
    side = int(np.ceil(np.sqrt(len(images))))
    pad = np.full((side * side - len(images), *images.shape[1:]), -1.0, np.float32)
    return make_grid(np.concatenate([images, pad]), rows=side, gutter=0, scale=1)


def projector_config(image_shape: Sequence[int]) -> Any:
    """The ``ProjectorConfig`` proto of the files `write_projector_files` writes.

    Paths are relative to the folder of ``projector_config.pbtxt`` (TensorBoard resolves them
    there); ``single_image_dim`` is ``[width, height]`` of one sprite tile.
    """
    from tensorboard.plugins.projector import projector_config_pb2  # protobuf only

    config = projector_config_pb2.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = TENSOR_NAME
    embedding.tensor_path = f"{PROJECTOR_DIR}/tensors.tsv"
    embedding.metadata_path = f"{PROJECTOR_DIR}/metadata.tsv"
    embedding.sprite.image_path = f"{PROJECTOR_DIR}/sprite.png"
    embedding.sprite.single_image_dim.extend([int(image_shape[1]), int(image_shape[0])])
    return config


def write_projector_files(
    out_dir: str, features: np.ndarray, images: np.ndarray, metadata: Sequence[Sequence[str]]
) -> None:
    """Writes the TensorBoard projector files of one embedding into ``out_dir`` (atomically).

    Args:
      out_dir: the TensorBoard log folder (``projector_config.pbtxt`` goes here, the rest into
        ``out_dir/projector/``).
      features: float ``[N, D]``, one row per point.
      images: float ``[N, H, W, C]`` in ``[-1, 1]``, the point's image (the sprite).
      metadata: ``N`` rows of ``(class name, source)``; tabs and newlines become spaces.

    Raises:
      ValueError: if the counts differ.
    """
    from google.protobuf import text_format

    if not len(features) == len(images) == len(metadata):
        raise ValueError(
            f"{len(features)} features, {len(images)} images and {len(metadata)} metadata rows"
        )
    folder = os.path.join(out_dir, PROJECTOR_DIR)
    buffer = io.StringIO()
    np.savetxt(buffer, features, fmt="%.6g", delimiter="\t")
    atomic_write_text(os.path.join(folder, "tensors.tsv"), buffer.getvalue())
    rows = ["\t".join(" ".join(str(v).split()) for v in row) for row in metadata]
    atomic_write_text(os.path.join(folder, "metadata.tsv"), "\n".join(["class\tsource", *rows]))
    save_png(os.path.join(folder, "sprite.png"), sprite(images))
    config = text_format.MessageToString(projector_config(images.shape[1:]))
    atomic_write_text(os.path.join(out_dir, CONFIG_FILE), config)


def project_2d(features: np.ndarray, seed: int, perplexity: float) -> dict[str, Any]:
    """PCA and t-SNE projections of ``features`` (float ``[N, D]``, N ≥ 4) to 2-D.

    t-SNE (van der Maaten & Hinton 2008) starts from the PCA projection; its perplexity is
    capped at ``(N − 1) / 3`` (scikit-learn needs it below N).

    Returns:
      ``{"pca": float [N, 2], "tsne": float [N, 2], "pca_explained_variance": [2 floats],
      "tsne_kl_divergence": float, "tsne_perplexity": float}``.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    pca = PCA(n_components=2, random_state=seed)
    perplexity = min(perplexity, (len(features) - 1) / 3)
    tsne = TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    return {
        "pca": pca.fit_transform(features),
        "tsne": tsne.fit_transform(features),
        "pca_explained_variance": [float(v) for v in pca.explained_variance_ratio_],
        "tsne_kl_divergence": float(tsne.kl_divergence_),
        "tsne_perplexity": float(perplexity),
    }


def scatter_png(
    points: np.ndarray,
    labels: np.ndarray,
    generated: np.ndarray,
    names: Sequence[str],
    title: str,
    axis_labels: tuple[str, str] = ("", ""),
) -> bytes:
    """A PNG scatter plot of 2-D points: colour by class, circles real, crosses generated.

    Args:
      points: float ``[N, 2]``.
      labels: int ``[N]`` classes in ``[0, len(names))``.
      generated: bool ``[N]``, True for generated points.
      names: class names (legend).
      title: the plot title.
      axis_labels: the x and y axis labels.

    Returns:
      The PNG file's bytes (matplotlib's Agg renderer, 120 dpi).
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    cmap = colormaps["tab10"] if len(names) <= 10 else colormaps["turbo"].resampled(len(names))
    colours = [cmap(k) for k in range(len(names))]
    figure = Figure(figsize=(8.5, 6.5), layout="constrained")
    axes = figure.add_subplot()
    for source, is_generated in zip(SOURCES, (False, True), strict=True):
        keep = generated == is_generated
        colour = [colours[k] for k in labels[keep]]
        axes.scatter(*points[keep].T, c=colour, s=14, marker=MARKERS[source], alpha=0.7)
    handles = [
        Line2D([], [], ls="", marker="s", color=colours[k], label=name)
        for k, name in enumerate(names)
    ]
    handles += [Line2D([], [], ls="", marker=MARKERS[s], color="k", label=s) for s in SOURCES]
    axes.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def embed_workdir(
    workdir: str, num: int, seed: int = 0, cache_dir: str | None = None
) -> dict[str, Any]:
    """Samples ``num`` images per class from a workdir and embeds them with the real ones.

    Args:
      workdir: a training workdir whose family has a ``sample`` function.
      num: generated images per class (and the most real held-out images per class), ≥ 1.
      seed: the sampler's seed.
      cache_dir: judge cache folder.

    Returns:
      ``{"features": f32 [N, D], "images": f32 [N, H, W, C], "labels": i32 [N], "generated":
      bool [N], "names": class names, "family": str, "step": int}``, real rows first.

    Raises:
      ConfigError: if ``num`` < 1, the family cannot sample, or its images do not have the
        judged data's shape.
      MissingFileError: if the workdir has no config or checkpoint.
    """
    if int(num) != num or num < 1:
        raise ConfigError(f"num must be an integer >= 1, got {num!r}")
    restored = restore_inference(workdir)
    family = get_family(restored.config.model.family)
    if family.sample is None:
        raise ConfigError(f"family {family.name!r} has no class-conditional sampler to project")
    data_config = as_data_config(judged_data_config(restored.config.data))
    judge = load_or_train_judge(data_config, cache_dir)
    num_classes = judge.module.num_classes
    real, real_labels = heldout_per_class(data_config, num)
    labels = np.repeat(np.arange(num_classes, dtype=np.int32), num)
    samples = np.asarray(family.sample(restored.config, restored.variables, labels, seed))
    if samples.shape != (len(labels), *judge.image_shape):
        raise ConfigError(
            f"family {family.name!r} sampled images of shape {samples.shape}, expected "
            f"{(len(labels), *judge.image_shape)} (the judged data's)"
        )
    images = np.concatenate([real, np.clip(samples, -1.0, 1.0)])
    return {
        "features": judge.features(images),
        "images": images,
        "labels": np.concatenate([real_labels, labels]),
        "generated": np.arange(len(images)) >= len(real),
        "names": class_names(restored.config.data, num_classes),
        "family": family.name,
        "step": int(restored.step),
    }


def project_workdir(
    workdir: str,
    out_dir: str | None = None,
    num: int = 50,
    seed: int = 0,
    cache_dir: str | None = None,
    perplexity: float = DEFAULT_PERPLEXITY,
) -> dict[str, Any]:
    """Writes the projector files and the PCA / t-SNE plots of a workdir (module docstring).

    Args:
      workdir: a training workdir (read only unless ``out_dir`` is ``None``).
      out_dir: where to write; ``None`` writes into ``workdir`` (so ``tensorboard --logdir
        WORKDIR`` shows the embedding next to the training curves).
      num: generated images per class, and the most real held-out images per class.
      seed: the sampler's and the projections' seed.
      cache_dir: judge cache folder.
      perplexity: t-SNE perplexity (capped at a third of the point count).

    Returns:
      The summary also written to ``OUT/projector/projector.json``.

    Raises:
      ConfigError, MissingFileError: see `embed_workdir`.
    """
    start = time.perf_counter()
    out_dir = workdir if out_dir is None else out_dir
    embedded = embed_workdir(workdir, num, seed, cache_dir)
    names, labels, generated = embedded["names"], embedded["labels"], embedded["generated"]
    sources = np.where(generated, SOURCES[1], SOURCES[0])
    metadata = [(names[k], s) for k, s in zip(labels, sources, strict=True)]
    write_projector_files(out_dir, embedded["features"], embedded["images"], metadata)
    embed_s = time.perf_counter() - start
    projected = project_2d(embedded["features"], seed, perplexity)
    title = f"{os.path.basename(os.path.abspath(workdir))} ({embedded['family']}, step "
    title += f"{embedded['step']}): judge features, {num} generated per class"
    variance = projected["pca_explained_variance"]
    axes = {
        "pca": (
            "PCA",
            tuple(f"PC{i + 1} ({v:.1%} of the variance)" for i, v in enumerate(variance)),
        ),
        "tsne": ("t-SNE", ("t-SNE 1", "t-SNE 2")),
    }
    for method, (label, axis_labels) in axes.items():
        points = projected[method]
        png = scatter_png(points, labels, generated, names, f"{label} of {title}", axis_labels)
        atomic_write_bytes(os.path.join(out_dir, PROJECTOR_DIR, f"{method}.png"), png)
    summary = {
        "workdir": workdir,
        "family": embedded["family"],
        "step": embedded["step"],
        "num_real": int(np.sum(~generated)),
        "num_generated": int(np.sum(generated)),
        "feature_dim": int(embedded["features"].shape[1]),
        **{k: v for k, v in projected.items() if k not in ("pca", "tsne")},
        "embed_s": embed_s,
        "total_s": time.perf_counter() - start,
        "config": os.path.join(out_dir, CONFIG_FILE),
    }
    atomic_write_json(os.path.join(out_dir, PROJECTOR_DIR, "projector.json"), summary)
    return summary
