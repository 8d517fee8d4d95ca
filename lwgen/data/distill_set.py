"""The black-box distillation data set: teacher samples ``(z, y, T(z, y))`` in TFRecord shards.

Black-box distillation (Chang & Lu 2020, "TinyGAN", §3) uses the teacher only to make this set;
training the student then reads it like any other source. `write_distill_set` samples any
``teacher_fn(z, y_onehot) -> images`` in batches and writes:

- ``shard-IIIII-of-NNNNN.tfrecord``: one ``tf.train.Example`` per sample: ``z`` (float list),
  ``label`` (int64), ``image`` (bytes: uint8 HWC pixels ``round((x + 1) · 127.5)``, the encoding
  the other sources hold in memory);
- ``manifest.json``: teacher info, parameters, image shape, and per shard file, count, sha256.

Shard ``i`` is a pure function of ``(seed, i)`` and the teacher: ``z ~ N(0, I)`` from
``np.random.default_rng([seed, i])`` and labels cycling over the classes by global sample index
(balanced to within one). Every shard and the manifest are written to a temporary name and
renamed, and the manifest is rewritten after each shard, so a killed run resumes at the first
missing shard and ends with the same bytes as an uninterrupted run.

TensorFlow is imported inside the functions, so importing ``lwgen.data`` does not pull it in.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
from tqdm import tqdm

from lwgen.data.source import ArraySource, check_split, to_unit_range
from lwgen.errors import ConfigError, DataError, MissingFileError
from lwgen.io import atomic_write_json, file_sha256

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
IMAGE_ENCODING = "uint8 HWC bytes, round((x + 1) * 127.5) of images in [-1, 1]"
# Manifest fields that must match for a run to resume into an existing set.
RESUME_KEYS = (
    "format_version", "teacher", "num", "num_classes", "latent_dim", "class_names", "seed",
    "shard_size", "batch_size",
)  # fmt: skip
RANGE_TOLERANCE = 1e-3  # teacher outputs may overshoot [-1, 1] by this much; they are clipped
TeacherFn = Callable[[np.ndarray, np.ndarray], Any]
LoadSource = Callable[[Mapping, str], ArraySource]


def write_distill_set(
    teacher_fn: TeacherFn,
    out_dir: str,
    num: int,
    num_classes: int,
    latent_dim: int,
    batch_size: int = 256,
    shard_size: int = 2048,
    seed: int = 0,
    teacher_info: Mapping | None = None,
    class_names: Sequence[str] | None = None,
) -> dict:
    """Samples ``num`` teacher triples into ``out_dir``, resuming a set a killed run left there.

    Args:
      teacher_fn: ``(z float32 [B, latent_dim], y_onehot float32 [B, num_classes]) -> float32
        [B, H, W, C]`` images in ``[-1, 1]``; any callable returning an array (numpy, JAX, a
        TFLite runner, a wrapped PyTorch model).
      out_dir: the set's directory (created if missing).
      num, num_classes, latent_dim: sample count, one-hot size and ``z`` size, each ≥ 1.
      batch_size, shard_size: samples per ``teacher_fn`` call and per TFRecord shard, ≥ 1.
      seed: non-negative sampling seed.
      teacher_info: JSON-serializable description of the teacher for the manifest.
      class_names: one name per class; ``None`` uses ``"0", "1", ...``.

    Returns:
      The final manifest (as written to ``out_dir/manifest.json``).

    Raises:
      ConfigError: on bad arguments, or an existing manifest written with different parameters
        or teacher.
      DataError: on an existing manifest of another format version, or a teacher output of the
        wrong shape, non-finite or outside ``[-1, 1]`` by more than ``RANGE_TOLERANCE``.
    """
    params = _params(
        num, num_classes, latent_dim, batch_size, shard_size, seed, teacher_info, class_names
    )
    os.makedirs(out_dir, exist_ok=True)
    manifest = _resumable_manifest(out_dir, params)
    valid = {entry["index"]: entry for entry in manifest["shards"] if _shard_ok(out_dir, entry)}
    num_shards = math.ceil(num / shard_size)
    done = sum(entry["count"] for entry in valid.values())
    _update_manifest(out_dir, manifest, valid, num_shards)
    with tqdm(total=num, initial=done, unit="img", desc="distill set") as progress:
        for index in range(num_shards):
            if index not in valid:
                valid[index] = _make_shard(teacher_fn, out_dir, manifest, params, index, progress)
                _update_manifest(out_dir, manifest, valid, num_shards)
    return manifest


def _update_manifest(out_dir: str, manifest: dict, valid: Mapping, num_shards: int) -> None:
    """Lists the ``valid`` shards in ``manifest`` and rewrites ``manifest.json`` atomically."""
    manifest["shards"] = [valid[i] for i in sorted(valid)]
    manifest["count"] = sum(entry["count"] for entry in manifest["shards"])
    manifest["complete"] = len(valid) == num_shards
    atomic_write_json(os.path.join(out_dir, MANIFEST), manifest)


def _params(num, num_classes, latent_dim, batch_size, shard_size, seed, teacher_info, class_names):
    for name, value in (
        ("num", num), ("num_classes", num_classes), ("latent_dim", latent_dim),
        ("batch_size", batch_size), ("shard_size", shard_size),
    ):  # fmt: skip
        if int(value) != value or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if int(seed) != seed or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    names = [str(i) for i in range(num_classes)] if class_names is None else list(class_names)
    if len(names) != num_classes:
        raise ConfigError(f"class_names has {len(names)} entries, expected {num_classes}")
    try:
        teacher = json.loads(json.dumps(dict(teacher_info or {})))
    except TypeError as e:
        raise ConfigError(f"teacher_info must be JSON-serializable: {e}") from e
    return {
        "format_version": FORMAT_VERSION, "teacher": teacher, "num": int(num),
        "num_classes": int(num_classes), "latent_dim": int(latent_dim), "class_names": names,
        "seed": int(seed), "shard_size": int(shard_size), "batch_size": int(batch_size),
    }  # fmt: skip


def _resumable_manifest(out_dir: str, params: dict) -> dict:
    """The manifest to continue from: the existing one if its parameters match, else a new one."""
    path = os.path.join(out_dir, MANIFEST)
    if not os.path.exists(path):
        return {
            **params, "image_encoding": IMAGE_ENCODING, "image_shape": None, "count": 0,
            "complete": False, "shards": [],
        }  # fmt: skip
    manifest = _read_manifest(out_dir)
    changed = [k for k in RESUME_KEYS if manifest.get(k) != params[k]]
    if changed:
        existing = {k: manifest.get(k) for k in changed}
        raise ConfigError(
            f"{path} was written with other {changed}: existing {existing}, requested "
            f"{ {k: params[k] for k in changed} }; resume with the same flags or use a new --out"
        )
    return manifest


def _shard_ok(out_dir: str, entry: Mapping) -> bool:
    path = os.path.join(out_dir, entry["file"])
    return os.path.isfile(path) and file_sha256(path) == entry["sha256"]


def shard_name(index: int, num_shards: int) -> str:
    """``shard-IIIII-of-NNNNN.tfrecord`` for shard ``index`` of ``num_shards``."""
    return f"shard-{index:05d}-of-{num_shards:05d}.tfrecord"


def shard_inputs(params: Mapping, index: int) -> tuple[np.ndarray, np.ndarray]:
    """The deterministic teacher inputs of shard ``index``.

    Args:
      params: the manifest parameters (``num``, ``shard_size``, ``seed``, ``num_classes``,
        ``latent_dim``).
      index: shard index.

    Returns:
      ``z`` float32 ``[n, latent_dim]`` from ``N(0, I)`` seeded by ``(seed, index)`` and labels
      int32 ``[n]`` equal to the global sample index modulo ``num_classes``.
    """
    start = index * params["shard_size"]
    count = min(params["shard_size"], params["num"] - start)
    rng = np.random.default_rng([params["seed"], index])
    z = rng.standard_normal((count, params["latent_dim"]), dtype=np.float32)
    labels = (np.arange(start, start + count) % params["num_classes"]).astype(np.int32)
    return z, labels


def _make_shard(teacher_fn, out_dir, manifest, params, index, progress) -> dict:
    """Samples shard ``index``, writes it, records its image shape; returns its manifest entry."""
    z, labels = shard_inputs(params, index)
    onehot = np.eye(params["num_classes"], dtype=np.float32)[labels]
    images = []
    for lo in range(0, len(z), params["batch_size"]):
        hi = lo + params["batch_size"]
        images.append(_teacher_images(teacher_fn, z[lo:hi], onehot[lo:hi], manifest))
        progress.update(len(images[-1]))
    images = np.concatenate(images)
    name = shard_name(index, math.ceil(params["num"] / params["shard_size"]))
    path = os.path.join(out_dir, name)
    _write_records(path, z, labels, images)
    return {"index": index, "file": name, "count": len(z), "sha256": file_sha256(path)}


def _teacher_images(
    teacher_fn: TeacherFn, z: np.ndarray, onehot: np.ndarray, manifest: dict
) -> np.ndarray:
    """Calls the teacher on one batch and quantizes its images to uint8 ``[B, H, W, C]``.

    The first batch of a set fixes ``manifest["image_shape"]``; later batches must match it.
    """
    images = np.asarray(teacher_fn(z, onehot), dtype=np.float32)
    if images.ndim != 4 or images.shape[0] != len(z):
        raise DataError(f"teacher_fn must return [{len(z)}, H, W, C] images, got {images.shape}")
    if manifest["image_shape"] is None:
        manifest["image_shape"] = list(images.shape[1:])
    if list(images.shape[1:]) != manifest["image_shape"]:
        raise DataError(
            f"teacher_fn images have shape {images.shape[1:]}, but the set's images have "
            f"{tuple(manifest['image_shape'])}"
        )
    if not np.all(np.isfinite(images)):
        raise DataError("teacher_fn returned non-finite image values")
    low, high = float(images.min()), float(images.max())
    if low < -1.0 - RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise DataError(f"teacher_fn images must lie in [-1, 1], got range [{low}, {high}]")
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _write_records(path: str, z: np.ndarray, labels: np.ndarray, images: np.ndarray) -> None:
    """Writes one TFRecord shard through ``path + ".tmp"`` and a rename.

    ``tf.io.TFRecordWriter`` writes only to a path, so this cannot use `lwgen.io.atomic_write`.
    """
    import tensorflow as tf

    tmp = path + ".tmp"
    with tf.io.TFRecordWriter(tmp) as writer:
        for z_row, label, image in zip(z, labels, images, strict=True):
            feature = {
                "z": tf.train.Feature(float_list=tf.train.FloatList(value=z_row.tolist())),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString(deterministic=True))
    os.replace(tmp, path)


def _read_manifest(set_dir: str) -> dict:
    """The manifest of the set in ``set_dir``.

    Raises:
      MissingFileError: if ``manifest.json`` is missing.
      DataError: if it is not valid JSON or has another format version.
    """
    path = os.path.join(set_dir, MANIFEST)
    if not os.path.isfile(path):
        raise MissingFileError(f"{path} not found: is {set_dir!r} a distillation set?")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON: {e}") from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path} has format_version {manifest.get('format_version')!r}, "
            f"expected {FORMAT_VERSION}"
        )
    return manifest


@dataclasses.dataclass(frozen=True)
class DistillSource(ArraySource):
    """A distillation set in memory: teacher images with the ``z`` and label that made them.

    Attributes:
      images: uint8 ``[N, H, W, C]`` teacher images (``round((x + 1) · 127.5)``).
      labels: int32 ``[N]`` classes.
      num_classes: number of classes.
      class_names: one name per class.
      z: float32 ``[N, latent_dim]`` latents the teacher was sampled at.
      manifest: the set's manifest.
      real: the real data set's train split, for TinyGAN's real-data terms (§3, "Learning from
        the real distribution"); ``None`` for pure black-box distillation.

    Raises:
      DataError: on construction, if ``z`` is not float32 ``[N, latent_dim]`` or ``real`` has
        another image shape or class count (and as `ArraySource`).
    """

    z: np.ndarray
    manifest: Mapping
    real: ArraySource | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.z.dtype != np.float32 or self.z.ndim != 2 or len(self.z) != len(self.images):
            raise DataError(
                f"z must be float32 [{len(self.images)}, latent_dim], got {self.z.dtype} "
                f"{self.z.shape}"
            )
        ours = (self.images.shape[1:], self.num_classes)
        if self.real is not None and (self.real.images.shape[1:], self.real.num_classes) != ours:
            raise DataError(
                f"the real data has images {self.real.images.shape[1:]} and "
                f"{self.real.num_classes} classes, the teacher's {ours[0]} and {ours[1]}"
            )

    @property
    def latent_dim(self) -> int:
        """Size of ``z``."""
        return self.z.shape[1]

    def batch(self, step: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
        """Batch ``step`` of the deterministic epoch-permuted stream (see `ArraySource.indices`).

        Returns:
          ``{"z": float32 [B, latent_dim], "label": int32 [B], "image": float32 [B, H, W, C]
          teacher images in [-1, 1]}``, plus ``"real_image"`` (float32 ``[B, H, W, C]``) and
          ``"real_label"`` (int32 ``[B]``), batch ``step`` of ``real``, when ``real`` is set.
        """
        idx = self.indices(step, batch_size, seed)
        batch = {"z": self.z[idx], "label": self.labels[idx]}
        batch["image"] = to_unit_range(self.images[idx])
        if self.real is not None:
            real = self.real.batch(step, batch_size, seed)
            batch.update(real_image=real["image"], real_label=real["label"])
        return batch


def real_data_config(data_config: Mapping) -> ml_collections.ConfigDict | None:
    """A copy of a distillation ``data`` group with ``source = real_source`` and
    ``path = real_path`` (the real data behind the set), or ``None`` if ``real_source`` is unset.

    Raises:
      ConfigError: if ``real_source`` is ``"distill"``.
    """
    source = data_config.get("real_source", None)
    if not source:
        return None
    if source == "distill":
        raise ConfigError("data.real_source must name a real data set, not 'distill'")
    fields = data_config.to_dict() if hasattr(data_config, "to_dict") else dict(data_config)
    fields.update(source=source, path=data_config.get("real_path", None))
    return ml_collections.ConfigDict(fields)


def load_distill_source(data_config: Mapping, split: str, load_real: LoadSource) -> ArraySource:
    """Loads a distillation set written by `write_distill_set` into memory.

    Every shard's sha256 is checked against the manifest before it is read.

    Args:
      data_config: the ``data`` group: ``path`` (the set), ``image_size`` and ``channels`` (must
        match the set), optional ``real_source``/``real_path`` (see `real_data_config`).
      split: ``"train"`` or ``"heldout"``.
      load_real: ``(data_config, split) -> ArraySource`` loading the real data set named by
        `real_data_config` (`lwgen.data.load_source`; passed in so that this module does not
        import the loader registry that imports it).

    Returns:
      For ``"train"`` a `DistillSource` of the whole set (with ``real``, the real data's train
      split, if ``real_source`` is set); for ``"heldout"`` the real data's held-out split.

    Raises:
      ConfigError: if ``path`` is unset, on ``"heldout"`` without ``real_source``, or if
        ``image_size`` or ``channels`` differs from the set's images.
      MissingFileError: if the manifest or a shard is missing.
      DataError: on an incomplete set (resume it) or a checksum mismatch (naming the shard).
      ValueError: on an unknown split.
    """
    check_split(split)
    real_config = real_data_config(data_config)
    if split == "heldout":
        if real_config is None:
            raise ConfigError(
                "a distillation set has no 'heldout' split: set data.real_source to evaluate on "
                "the real data set's held-out split"
            )
        return load_real(real_config, "heldout")
    set_dir = data_config.get("path", None)
    if not set_dir:
        raise ConfigError("data.path must name a distillation set directory, got None")
    manifest = _read_manifest(set_dir)
    if not manifest["complete"]:
        raise DataError(
            f"distillation set {set_dir!r} is incomplete ({manifest['count']} of "
            f"{manifest['num']} samples): rerun make_distill_set with the same flags to finish it"
        )
    _check_config_shape(data_config, manifest)
    paths = [_verified_shard(set_dir, entry) for entry in manifest["shards"]]
    z, labels, images = _read_records(paths, manifest["latent_dim"], manifest["image_shape"])
    if len(z) != manifest["count"]:
        raise DataError(f"{set_dir!r} holds {len(z)} samples, manifest says {manifest['count']}")
    real = None if real_config is None else load_real(real_config, "train")
    return DistillSource(
        images=images, labels=labels, num_classes=manifest["num_classes"],
        class_names=list(manifest["class_names"]), z=z, manifest=manifest, real=real,
    )  # fmt: skip


def _check_config_shape(data_config: Mapping, manifest: Mapping) -> None:
    height, _, channels = manifest["image_shape"]
    for key, have in (("image_size", height), ("channels", channels)):
        want = data_config.get(key, None)
        if want is not None and want != have:
            raise ConfigError(
                f"data.{key} is {want}, but the distillation set's images have {have}"
            )


def _verified_shard(set_dir: str, entry: Mapping) -> str:
    path = os.path.join(set_dir, entry["file"])
    if not os.path.isfile(path):
        raise MissingFileError(f"distillation shard {path} listed in the manifest is missing")
    if file_sha256(path) != entry["sha256"]:
        raise DataError(f"distillation shard {path} does not match its sha256 in the manifest")
    return path


def _read_records(paths: Sequence[str], latent_dim: int, image_shape: Sequence[int]):
    """Reads TFRecord shards with tf.data into ``(z f32 [N, L], labels i32 [N], images u8)``."""
    import tensorflow as tf

    spec = {
        "z": tf.io.FixedLenFeature([latent_dim], tf.float32),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "image": tf.io.FixedLenFeature([], tf.string),
    }

    def parse(serialized):
        ex = tf.io.parse_example(serialized, spec)
        images = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), [-1, *image_shape])
        return ex["z"], tf.cast(ex["label"], tf.int32), images

    dataset = tf.data.TFRecordDataset(list(paths)).batch(4096).map(parse)
    parts = list(dataset.as_numpy_iterator())
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
