"""Runs an lwgen edge bundle on a device (Raspberry Pi, Coral) and writes a PNG grid of samples.

Standalone on purpose: it needs only the Python standard library, numpy, Pillow and a LiteRT
interpreter (``ai_edge_litert``, else ``tflite_runtime``, else ``tensorflow.lite``), never JAX, Flax
or lwgen. It therefore repeats, in a few lines, the bundle checks and the int8 input/output
handling that ``lwgen.export`` implements on the host.

    python export/pi_infer.py --bundle DIR --labels 0,3,7 --num 8 --seed 0 --out grid.png \\
        [--npy out.npz] [--threads N] [--edgetpu] [--benchmark K] [--scale 4]

The grid has one row per label and ``--num`` columns, each image upscaled ``--scale``× (nearest)
with a 2 px gutter. ``--npy`` also saves ``images`` (uint8 ``[N, H, W, C]``) and ``labels`` (int64
``[N]``). ``--edgetpu`` loads the ``libedgetpu.so.1`` delegate and runs the bundle's
``model_edgetpu.tflite`` (written when ``edgetpu_compiler`` was on ``PATH`` at export); without it
the INT8 model runs on the CPU. Errors print one line on stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_MODEL = "model_edgetpu.tflite"
GUTTER_PX = 2
GUTTER_VALUE = 128
INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
REQUIRED_KEYS = ("sha256", "latent_dim", "num_classes", "image_shape", "inputs", "outputs")
TENSOR_KEYS = ("name", "tensor", "dtype", "scale", "zero_point")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> None:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parses the command line (see the module docstring)."""
    parser = _Parser(prog="pi_infer", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="bundle directory")
    parser.add_argument("--labels", default=None, help="comma-separated class ids (default: all)")
    parser.add_argument("--num", type=_int_at_least(1), default=8, help="samples per label")
    parser.add_argument("--seed", type=int, default=0, help="seed of z ~ N(0, I)")
    parser.add_argument("--out", required=True, help="output PNG grid")
    parser.add_argument("--npy", default=None, help="also write images/labels to this .npz")
    parser.add_argument("--threads", type=_int_at_least(1), default=1, help="interpreter threads")
    parser.add_argument(
        "--edgetpu", action="store_true", help=f"use the {EDGETPU_LIBRARY} delegate"
    )
    parser.add_argument(
        "--benchmark", type=_int_at_least(0), default=0, help="time K invocations (ms/image)"
    )
    parser.add_argument("--scale", type=_int_at_least(1), default=4, help="nearest upscale factor")
    return parser.parse_args(argv)


def read_bundle(bundle_dir: str, edgetpu: bool = False) -> tuple[dict[str, Any], bytes]:
    """Reads ``bundle.json`` and ``model.tflite``, verifying the model's sha256.

    With ``edgetpu`` and a bundle exported where ``edgetpu_compiler`` ran, the compiled
    ``model_edgetpu.tflite`` is read instead (checked against ``bundle.json``'s ``extra_files``).

    Raises:
      FileNotFoundError: naming the missing directory or file.
      ValueError: on invalid JSON, missing keys or a checksum mismatch.
    """
    directory = Path(bundle_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"bundle directory {directory} not found")
    meta_path, model_path = directory / "bundle.json", directory / "model.tflite"
    for path in (meta_path, model_path):
        if not path.is_file():
            raise FileNotFoundError(f"bundle file {path} not found")
    try:
        metadata = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta_path} is not valid JSON: {e}") from e
    missing = [
        key for key in REQUIRED_KEYS if not isinstance(metadata, dict) or key not in metadata
    ]
    if missing:
        raise ValueError(f"{meta_path} lacks keys {missing}")
    _check_tensor_specs(metadata, meta_path)
    model_content = model_path.read_bytes()
    actual = hashlib.sha256(model_content).hexdigest()
    if actual != metadata["sha256"]:
        raise ValueError(f"{model_path}: sha256 {actual} does not match bundle.json (corrupted?)")
    if not edgetpu:
        return metadata, model_content
    compiled_sha = metadata.get("extra_files", {}).get(EDGETPU_MODEL)
    if compiled_sha is None:
        print(
            f"pi_infer: note: the bundle has no {EDGETPU_MODEL}; ops run on the CPU",
            file=sys.stderr,
        )
        return metadata, model_content
    compiled = (directory / EDGETPU_MODEL).read_bytes()
    if hashlib.sha256(compiled).hexdigest() != compiled_sha:
        raise ValueError(f"{directory / EDGETPU_MODEL}: sha256 does not match bundle.json")
    return metadata, compiled


def _check_tensor_specs(metadata: dict[str, Any], meta_path: Path) -> None:
    specs = metadata["inputs"], metadata["outputs"]
    if not all(isinstance(group, list) for group in specs) or [len(g) for g in specs] != [2, 1]:
        raise ValueError(f"{meta_path}: expected 2 inputs (z, y) and 1 output (image)")
    for spec in specs[0] + specs[1]:
        if not isinstance(spec, dict) or any(key not in spec for key in TENSOR_KEYS):
            raise ValueError(f"{meta_path}: tensor entry {spec!r} lacks one of {TENSOR_KEYS}")
    names = [spec["name"] for spec in specs[0] + specs[1]]
    if names != ["z", "y", "image"]:
        raise ValueError(f"{meta_path}: tensors must be z, y -> image, got {names}")


def check_output_paths(*paths: str | None) -> None:
    """Fails early if the folder of an output file does not exist.

    Raises:
      FileNotFoundError: naming the missing folder.
    """
    for path in paths:
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise FileNotFoundError(f"output folder {Path(path).parent} of {path} does not exist")


def parse_labels(text: str | None, num_classes: int) -> list[int]:
    """``"0,3,7"`` → ``[0, 3, 7]`` (``None`` → all classes).

    Raises:
      ValueError: on a non-integer or a label outside ``0..num_classes-1``.
    """
    if text is None:
        return list(range(num_classes))
    labels = []
    for part in text.split(","):
        try:
            label = int(part)
        except ValueError:
            raise ValueError(f"--labels: {part!r} is not an integer class id") from None
        if not 0 <= label < num_classes:
            raise ValueError(
                f"label {label} is out of range: valid labels are 0..{num_classes - 1}"
            )
        labels.append(label)
    return labels


def interpreter_api() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(Interpreter, load_delegate)`` from the first LiteRT package that is installed."""
    for name in INTERPRETER_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.Interpreter, module.load_delegate
    try:
        tf = importlib.import_module("tensorflow")
    except ImportError:
        raise ValueError("no TFLite interpreter: pip install ai-edge-litert") from None
    return tf.lite.Interpreter, tf.lite.experimental.load_delegate


def edgetpu_delegates(load_delegate: Callable[..., Any]) -> list[Any]:
    """The Edge TPU delegate; probes the library first so a missing runtime fails cleanly."""
    try:
        ctypes.CDLL(EDGETPU_LIBRARY)
    except OSError as e:
        raise ValueError(f"--edgetpu: cannot load {EDGETPU_LIBRARY} ({e})") from None
    return [load_delegate(EDGETPU_LIBRARY)]


class BundleModel:
    """The bundle's interpreter with float ↔ int8 conversion from ``bundle.json``'s scales."""

    def __init__(
        self,
        metadata: dict[str, Any],
        model_content: bytes,
        interpreter_cls: Callable[..., Any],
        threads: int,
        delegates: list[Any] | None,
    ):
        self.interpreter = interpreter_cls(
            model_content=model_content, num_threads=threads, experimental_delegates=delegates
        )
        try:
            self.interpreter.allocate_tensors()
        except RuntimeError:
            if delegates:
                raise
            # XNNPACK refuses some graphs (e.g. sparse INT8): run on the builtin kernels.
            resolver = sys.modules[interpreter_cls.__module__].OpResolverType
            self.interpreter = interpreter_cls(
                model_content=model_content,
                num_threads=threads,
                experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self.interpreter.allocate_tensors()
        inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
        outputs = {d["name"]: d for d in self.interpreter.get_output_details()}
        self.z, self.y = (self._match(spec, inputs) for spec in metadata["inputs"])
        self.image = self._match(metadata["outputs"][0], outputs)
        self.batch = self.z["shape"][0]

    @staticmethod
    def _match(spec: dict[str, Any], details: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if spec["tensor"] not in details:
            raise ValueError(f"model has no tensor {spec['tensor']!r} named in bundle.json")
        return {**spec, "index": details[spec["tensor"]]["index"]}

    def _set(self, spec: dict[str, Any], x: np.ndarray) -> None:
        if spec["dtype"] != "float32":
            info = np.iinfo(spec["dtype"])
            x = np.round(x / np.float32(spec["scale"])) + spec["zero_point"]
            x = np.clip(x, info.min, info.max)
        self.interpreter.set_tensor(spec["index"], x.astype(spec["dtype"]))

    def run_batch(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """One invocation on exactly ``batch`` samples → float32 ``[batch, H, W, C]``."""
        self._set(self.z, z)
        self._set(self.y, y)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.image["index"]).astype(np.float32)
        if self.image["dtype"] != "float32":
            out = (out - np.float32(self.image["zero_point"])) * np.float32(self.image["scale"])
        return out

    def generate(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Any number of samples, in static-batch chunks (last one zero-padded)."""
        outs = []
        for start in range(0, len(z), self.batch):
            zc, yc = z[start : start + self.batch], y[start : start + self.batch]
            pad = ((0, self.batch - len(zc)), (0, 0))
            outs.append(self.run_batch(np.pad(zc, pad), np.pad(yc, pad))[: len(zc)])
        return np.concatenate(outs)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in ``[-1, 1]`` → uint8 ``[0, 255]``."""
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, rows: int, scale: int) -> Image.Image:
    """Tiles uint8 ``[rows * cols, H, W, C]`` row-major with a gutter, upscaled (nearest)."""
    n, h, w, c = images.shape
    if c not in (1, 3):
        raise ValueError(f"can only tile 1- or 3-channel images, got {c} channels")
    cols = n // rows
    th, tw = h * scale, w * scale
    canvas = np.full(
        (rows * th + (rows + 1) * GUTTER_PX, cols * tw + (cols + 1) * GUTTER_PX, c),
        GUTTER_VALUE,
        np.uint8,
    )
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        top, left = GUTTER_PX + r * (th + GUTTER_PX), GUTTER_PX + col * (tw + GUTTER_PX)
        canvas[top : top + th, left : left + tw] = image.repeat(scale, 0).repeat(scale, 1)
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Writes ``path`` through a temporary file in the same directory, then renames it."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def benchmark(model: BundleModel, z: np.ndarray, y: np.ndarray, k: int) -> tuple[float, float]:
    """Median and p90 latency in ms per image over ``k`` invocations after one warm-up."""
    zb, yb = z[: model.batch], y[: model.batch]
    pad = ((0, model.batch - len(zb)), (0, 0))
    zb, yb = np.pad(zb, pad), np.pad(yb, pad)
    model.run_batch(zb, yb)
    times = []
    for _ in range(k):
        start = time.perf_counter()
        model.run_batch(zb, yb)
        times.append((time.perf_counter() - start) * 1e3 / model.batch)
    return float(np.median(times)), float(np.percentile(times, 90))


def run(args: argparse.Namespace) -> None:
    """Loads the bundle, generates the grid (and npz), optionally benchmarks."""
    check_output_paths(args.out, args.npy)
    metadata, model_content = read_bundle(args.bundle, args.edgetpu)
    labels = parse_labels(args.labels, metadata["num_classes"])
    interpreter_cls, load_delegate = interpreter_api()
    delegates = edgetpu_delegates(load_delegate) if args.edgetpu else None
    model = BundleModel(metadata, model_content, interpreter_cls, args.threads, delegates)
    rng = np.random.default_rng(args.seed)
    label_ids = np.repeat(np.asarray(labels, np.int64), args.num)
    z = rng.standard_normal((len(label_ids), metadata["latent_dim"]), dtype=np.float32)
    y = np.eye(metadata["num_classes"], dtype=np.float32)[label_ids]
    images = to_uint8(model.generate(z, y))
    grid = make_grid(images, len(labels), args.scale)
    atomic_write(args.out, lambda f: grid.save(f, format="PNG"))
    print(
        f"wrote {args.out}: {len(labels)} labels x {args.num} samples, {grid.width}x{grid.height}"
    )
    if args.npy:
        atomic_write(args.npy, lambda f: np.savez(f, images=images, labels=label_ids))
        print(f"wrote {args.npy}: images {images.shape} uint8, labels {label_ids.shape} int64")
    if args.benchmark:
        median, p90 = benchmark(model, z, y, args.benchmark)
        print(
            f"benchmark: {args.benchmark} invocations at batch {model.batch}, "
            f"{args.threads} thread(s): median {median:.3f} ms/image, p90 {p90:.3f} ms/image"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0, or 2 after printing one error line."""
    args = parse_args(argv)
    try:
        run(args)
    except (OSError, ValueError) as e:
        print(f"pi_infer: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
