"""Runs an lwgen edge bundle on a device (Raspberry Pi, Coral) and writes a PNG grid of samples.

Standalone on purpose: it needs only the Python standard library, numpy, Pillow and a LiteRT
interpreter (``ai_edge_litert``, else ``tflite_runtime``, else ``tensorflow.lite``), never JAX, Flax
or lwgen. It therefore repeats, in a few lines, the ``bundle.json`` checks (bundle format 2) and
the int8 input/output handling that ``lwgen.export`` implements on the host;
``tests/test_bundle_schema.py`` keeps the two validators in agreement.

It dispatches on the bundle's ``family`` (``FAMILIES``). The conditional generators (``dcgan``,
``tinygan``) run the bundle's model ``generator`` (inputs ``z``, one-hot ``y``):

    python export/pi_infer.py --bundle DIR --labels 0,3,7 --num 8 --seed 0 --out grid.png \\
        [--npy out.npz] [--threads N] [--edgetpu] [--benchmark K] [--scale 4] \\
        [--kernels auto|builtin]

The ``diffusion`` family runs the numpy sampler of ``pi_diffusion.py`` (keep it next to this
script) with the bundle's ``denoiser`` each step, from the schedule and sampler in
``bundle.json``; ``--steps``, ``--guidance`` and ``--eta`` override the bundle's settings, and
``--benchmark K`` times K whole samples of one image.

``--upscale UPSCALER_BUNDLE`` enlarges the samples of any generator bundle with an ``upscaler``
bundle before they are written (``pi_upscale.py``, keep it next to this script; it picks the
bundle's model for the samples' size and converts gray ↔ RGB), e.g. 32×32 → 128×128 at ×4; pass
``--scale 1`` to write the grid at the enlarged size. An ``upscaler`` bundle on its own enlarges
``--input`` photos, fitted to its largest input side (64 → 256 at ×4 by default):

    python export/pi_infer.py --bundle UPSCALER_BUNDLE --input PHOTO_OR_FOLDER --out OUT \\
        [--benchmark K]

The ``textgan`` family (``pi_text.py``, keep it next to this script) reads ``--prompt "..."``
(repeatable, one grid row each); the ``tokenizers`` package is needed only for its bundles with
a TFLite text encoder.

The image->image families read ``--input`` (a PNG/JPEG file or a folder of them, fitted to the
model's shape by ``pi_images.py``, keep it next to this script) and write one PNG per input
(`write_images`). The ``cyclegan`` family (``pi_cyclegan.py``) translates with the generator of
``--direction a2b|b2a``.

The grid has one row per label and ``--num`` columns, each image upscaled ``--scale``× (nearest)
with a 2 px gutter. ``--npy`` also saves ``images`` (uint8 ``[N, H, W, C]``) and ``labels`` (int64
``[N]``). ``--edgetpu`` loads the ``libedgetpu.so.1`` delegate and runs the bundle's
``generator_edgetpu.tflite`` (written when ``edgetpu_compiler`` was on ``PATH`` at export); without
it the INT8 model runs on the CPU, with XNNPACK (``--kernels auto``, falling back to LiteRT's
builtin kernels when XNNPACK refuses the graph) or the builtin kernels (``--kernels builtin``);
the path taken is printed as ``runtime: ...``. Errors print one line on stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

EDGETPU_LIBRARY = "libedgetpu.so.1"
EDGETPU_SUFFIX = "_edgetpu.tflite"
GUTTER_PX = 2
GUTTER_VALUE = 128
INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
REEXPORT_HINT = "re-export it with export/export_bundle.py --workdir=WORKDIR --out=BUNDLE_DIR"

# bundle.json, format 2: the same schema as lwgen/export/metadata.py (see BUILD.md).
FORMAT_VERSION = 2
QUANT_MODES = ("float32", "float16", "dynamic", "int8", "int8_io")
INT8_MODES = ("int8", "int8_io")
TENSOR_DTYPES = ("float32", "int8", "uint8", "int32")
MODEL_NAME = re.compile(r"[a-z][a-z0-9_]*")
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")
_NUMBER = (int, float)
TOP_KEYS = (
    dict.fromkeys(("family", "lwgen_version"), str)
    | {"format_version": int}
    | {key: dict for key in ("models", "fields", "config", "source")}
)
MODEL_KEYS = (
    dict.fromkeys(("file", "sha256", "quant"), str)
    | dict.fromkeys(("size_bytes", "batch"), int)
    | dict.fromkeys(("inputs", "outputs"), list)
    | dict.fromkeys(("ops", "error", "fields", "extra_files"), dict)
    | {"sparsity": bool, "calibration": (dict, type(None))}
)
TENSOR_KEYS = dict.fromkeys(("name", "tensor", "dtype"), str) | {
    "shape": list,
    "scale": _NUMBER,
    "zero_point": int,
}
CALIBRATION_KEYS = {"num_samples": int, "seed": int, "dense_weights": str}
ERROR_KEYS = dict.fromkeys(("max_abs_error", "psnr_db", "min_psnr_db", "peak_to_peak"), _NUMBER)
ERROR_KEYS["num_samples"] = int


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
    parser.add_argument(
        "--steps", type=_int_at_least(1), default=None, help="diffusion: sampling steps"
    )
    parser.add_argument(
        "--kernels",
        choices=("auto", "builtin"),
        default="auto",
        help="CPU kernels: XNNPACK (auto) or LiteRT's builtin kernels",
    )
    parser.add_argument("--guidance", type=float, default=None, help="diffusion: guidance w")
    parser.add_argument("--eta", type=float, default=None, help="diffusion: DDIM eta")
    parser.add_argument(
        "--upscale", default=None, help="enlarge the samples with this upscaler bundle"
    )
    parser.add_argument(
        "--input", default=None, help="image->image bundles: a PNG/JPEG file or a folder of them"
    )
    parser.add_argument(
        "--direction", choices=("a2b", "b2a"), default="a2b", help="cyclegan: which generator"
    )
    parser.add_argument(
        "--prompt", action="append", default=None, help="textgan: a prompt (one grid row each)"
    )
    parser.add_argument("--style", default=None, help="style bundles: the style's name")
    return parser.parse_args(argv)


def _fits(value: Any, kind: Any) -> bool:
    """``isinstance`` where a JSON ``true``/``false`` counts only as ``bool``, never a number."""
    return kind is bool if isinstance(value, bool) else isinstance(value, kind)


def _check_keys(where: str, mapping: Any, types: dict[str, Any]) -> None:
    if not isinstance(mapping, dict):
        raise ValueError(f"{where}: must be an object, got {mapping!r}")
    for key, kind in types.items():
        if key not in mapping or not _fits(mapping[key], kind):
            raise ValueError(f"{where}: key {key!r} is missing or has the wrong type")


def _check_format(metadata: Any, where: str) -> None:
    if not isinstance(metadata, dict):
        raise ValueError(f"{where}: must hold a JSON object")
    version = metadata.get("format_version")
    if not _fits(version, int):
        raise ValueError(f"{where}: format_version must be an integer, got {version!r}")
    if version < FORMAT_VERSION or "models" not in metadata:
        found = f"format {version}" if version < FORMAT_VERSION else "no 'models'"
        raise ValueError(f"{where}: {found}: this bundle is from an older lwgen; {REEXPORT_HINT}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{where}: bundle format {version} is newer than this script's")


def _check_tensors(where: str, tensors: list[Any], batch: int) -> list[str]:
    for i, tensor in enumerate(tensors):
        _check_keys(f"{where}[{i}]", tensor, TENSOR_KEYS)
        shape = tensor["shape"]
        if (
            tensor["dtype"] not in TENSOR_DTYPES
            or tensor["scale"] < 0
            or not shape
            or not all(_fits(d, int) and d > 0 for d in shape)
            or shape[0] != batch
        ):
            raise ValueError(f"{where}[{i}]: bad dtype, scale or shape in {tensor!r}")
    names = [tensor["name"] for tensor in tensors]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{where}: needs one or more uniquely named tensors, got {names}")
    return names


def _check_model(where: str, name: str, model: Any) -> None:
    _check_keys(where, model, MODEL_KEYS)
    if (
        model["file"] != name + ".tflite"
        or not SHA256.fullmatch(model["sha256"])
        or model["quant"] not in QUANT_MODES
        or model["size_bytes"] < 1
        or model["batch"] < 1
        or (model["calibration"] is not None) != (model["quant"] in INT8_MODES)
    ):
        raise ValueError(f"{where}: bad file, sha256, quant, size_bytes, batch or calibration")
    if model["calibration"] is not None:
        _check_keys(f"{where}.calibration", model["calibration"], CALIBRATION_KEYS)
    _check_tensors(f"{where}.inputs", model["inputs"], model["batch"])
    outputs = _check_tensors(f"{where}.outputs", model["outputs"], model["batch"])
    if not all(_fits(count, int) and count >= 0 for count in model["ops"].values()):
        raise ValueError(f"{where}.ops: must map operator names to counts")
    if sorted(model["error"]) != sorted(outputs):
        raise ValueError(f"{where}.error: must have one entry per output {outputs}")
    for output in outputs:
        _check_keys(f"{where}.error.{output}", model["error"][output], ERROR_KEYS)
    for file, sha in model["extra_files"].items():
        if not FILE_NAME.fullmatch(file) or not _fits(sha, str) or not SHA256.fullmatch(sha):
            raise ValueError(f"{where}.extra_files: {file!r} needs a plain name and a sha256")


def validate_metadata(metadata: Any, where: str = "bundle.json") -> None:
    """Checks a format-2 ``bundle.json`` dict as ``lwgen.export.metadata.validate_metadata`` does.

    Raises:
      ValueError: naming the first missing, mistyped or inconsistent key; a format-1 bundle is
        told to be re-exported.
    """
    _check_format(metadata, where)
    _check_keys(where, metadata, TOP_KEYS)
    if not metadata["models"]:
        raise ValueError(f"{where}: models must hold at least one model")
    files = ["bundle.json"]
    for name, model in metadata["models"].items():
        if not MODEL_NAME.fullmatch(name):
            raise ValueError(f"{where}: model name {name!r} must match {MODEL_NAME.pattern}")
        _check_model(f"{where}: models.{name}", name, model)
        files += [model["file"], *model["extra_files"]]
    if len(set(files)) != len(files):
        raise ValueError(f"{where}: file names {files} are not unique")


def read_metadata(bundle_dir: str) -> dict[str, Any]:
    """Reads and validates ``bundle.json``.

    Raises:
      FileNotFoundError: naming the missing directory or file.
      ValueError: on invalid JSON or metadata.
    """
    directory = Path(bundle_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"bundle directory {directory} not found")
    meta_path = directory / "bundle.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"bundle file {meta_path} not found")
    try:
        metadata = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{meta_path} is not valid JSON: {e}") from e
    validate_metadata(metadata, str(meta_path))
    return metadata


def _verified_bytes(path: Path, sha256: str) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"bundle file {path} not found")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path}: sha256 does not match bundle.json (corrupted?)")
    return data


def read_model(bundle_dir: str, metadata: dict[str, Any], name: str, edgetpu: bool) -> bytes:
    """The verified bytes of model ``name``: ``NAME.tflite``, or with ``edgetpu`` the compiled
    ``NAME_edgetpu.tflite`` when the bundle has one (else a note and ``NAME.tflite``).

    Raises:
      FileNotFoundError: naming a missing file.
      ValueError: if the bundle has no model ``name`` or a file's sha256 does not match.
    """
    if name not in metadata["models"]:
        raise ValueError(f"bundle has no model {name!r} (has {sorted(metadata['models'])})")
    model = metadata["models"][name]
    compiled = name + EDGETPU_SUFFIX
    if edgetpu and compiled in model["extra_files"]:
        return _verified_bytes(Path(bundle_dir) / compiled, model["extra_files"][compiled])
    if edgetpu:
        print(f"pi_infer: note: the bundle has no {compiled}; ops run on the CPU", file=sys.stderr)
    return _verified_bytes(Path(bundle_dir) / model["file"], model["sha256"])


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
    """One bundle model's interpreter: named float inputs → named float outputs, converting
    int8 tensors with the scale and zero point ``bundle.json`` records."""

    def __init__(
        self,
        model: dict[str, Any],
        model_content: bytes,
        interpreter_cls: Callable[..., Any],
        threads: int,
        delegates: list[Any] | None,
        kernels: str = "auto",
    ):
        """``kernels``: ``"auto"`` (XNNPACK, or LiteRT's builtin kernels when XNNPACK refuses
        the graph, e.g. sparse INT8) or ``"builtin"`` (always the builtin kernels); the path
        taken is ``self.runtime``."""
        self.runtime = "XNNPACK"
        if kernels == "auto":
            self.interpreter = interpreter_cls(
                model_content=model_content, num_threads=threads, experimental_delegates=delegates
            )
            try:
                self.interpreter.allocate_tensors()
            except RuntimeError:
                if delegates:
                    raise
                self.runtime = "builtin (XNNPACK refused the graph)"
        if kernels == "builtin" or self.runtime != "XNNPACK":
            resolver = sys.modules[interpreter_cls.__module__].OpResolverType
            self.interpreter = interpreter_cls(
                model_content=model_content,
                num_threads=threads,
                experimental_delegates=delegates,
                experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self.interpreter.allocate_tensors()
            self.runtime = "builtin" if kernels == "builtin" else self.runtime
        if delegates:
            self.runtime = "Edge TPU delegate"
        inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
        outputs = {d["name"]: d for d in self.interpreter.get_output_details()}
        self.inputs = {spec["name"]: self._match(spec, inputs) for spec in model["inputs"]}
        self.outputs = {spec["name"]: self._match(spec, outputs) for spec in model["outputs"]}
        self.batch = model["batch"]

    @staticmethod
    def _match(spec: dict[str, Any], details: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if spec["tensor"] not in details:
            raise ValueError(f"model has no tensor {spec['tensor']!r} named in bundle.json")
        return {**spec, "index": details[spec["tensor"]]["index"]}

    def _set(self, spec: dict[str, Any], x: np.ndarray) -> None:
        if spec["dtype"] != "float32" and spec["scale"]:  # scale 0: plain ints (token ids)
            info = np.iinfo(spec["dtype"])
            x = np.round(x / np.float32(spec["scale"])) + spec["zero_point"]
            x = np.clip(x, info.min, info.max)
        self.interpreter.set_tensor(spec["index"], x.astype(spec["dtype"]))

    def _get(self, spec: dict[str, Any]) -> np.ndarray:
        out = self.interpreter.get_tensor(spec["index"]).astype(np.float32)
        if spec["dtype"] != "float32" and spec["scale"]:
            out = (out - np.float32(spec["zero_point"])) * np.float32(spec["scale"])
        return out

    def run_batch(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """One invocation on exactly ``batch`` examples → ``{output: float32 [batch, ...]}``."""
        for name, spec in self.inputs.items():
            self._set(spec, inputs[name])
        self.interpreter.invoke()
        return {name: self._get(spec) for name, spec in self.outputs.items()}

    def pad(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """The first ``batch`` examples of each input, zero-padded to ``batch``."""
        padded = {}
        for name, x in inputs.items():
            x = x[: self.batch]
            padded[name] = np.pad(x, [(0, self.batch - len(x))] + [(0, 0)] * (x.ndim - 1))
        return padded

    def run(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Any number of examples, in static-batch chunks (last one zero-padded)."""
        n = len(next(iter(inputs.values())))
        chunks = [
            self.run_batch(**self.pad(**{k: x[start:] for k, x in inputs.items()}))
            for start in range(0, n, self.batch)
        ]
        return {
            name: np.concatenate([chunk[name] for chunk in chunks])[:n] for name in self.outputs
        }


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


def benchmark(model: BundleModel, inputs: dict[str, np.ndarray], k: int) -> tuple[float, float]:
    """Median and p90 latency in ms per example over ``k`` invocations after one warm-up."""
    batch = model.pad(**inputs)
    model.run_batch(**batch)
    times = []
    for _ in range(k):
        start = time.perf_counter()
        model.run_batch(**batch)
        times.append((time.perf_counter() - start) * 1e3 / model.batch)
    return float(np.median(times)), float(np.percentile(times, 90))


def checked_model(metadata: dict[str, Any], name: str, input_names: list[str]) -> dict[str, Any]:
    """The ``bundle.json`` entry of model ``name``, checked to map exactly ``input_names`` to one
    output."""
    model = metadata["models"].get(name, {"inputs": [], "outputs": []})
    if sorted(spec["name"] for spec in model["inputs"]) != sorted(input_names) or (
        len(model["outputs"]) != 1
    ):
        names = ", ".join(input_names)
        raise ValueError(f"bundle.json: model {name!r} must map inputs {names} to one output")
    return model


def open_model(
    args: argparse.Namespace, metadata: dict[str, Any], name: str, model: dict[str, Any]
) -> BundleModel:
    """The interpreter of a `checked_model` (its sha256 verified), on ``--kernels``."""
    model_content = read_model(args.bundle, metadata, name, args.edgetpu)
    interpreter_cls, load_delegate = interpreter_api()
    delegates = edgetpu_delegates(load_delegate) if args.edgetpu else None
    bundle_model = BundleModel(
        model, model_content, interpreter_cls, args.threads, delegates, args.kernels
    )
    print(f"runtime: {bundle_model.runtime}")
    return bundle_model


def open_upscaler(args: argparse.Namespace, bundle_dir: str, height: int, width: int):
    """``(enlarge, model)``: the ``upscaler`` bundle's ``BundleModel`` for ``height × width``
    inputs (``pi_upscale.model_for``; keep ``pi_upscale.py`` next to this script) and
    ``enlarge(images f32 [N, h, w, C] in [-1, 1]) -> f32 [N, h·s, w·s, C]`` running it, gray ↔
    RGB converted by ``pi_upscale.upscale``."""
    pi_upscale = sibling_module("pi_upscale")
    metadata = read_metadata(bundle_dir)
    if metadata["family"] != "upscaler":
        raise ValueError(f"--upscale {bundle_dir}: a {metadata['family']!r} bundle, not upscaler")
    name = pi_upscale.model_for(metadata["fields"], height, width)
    model = checked_model(metadata, name, ["lowres"])
    bundle_args = argparse.Namespace(**{**vars(args), "bundle": bundle_dir})
    upscaler = open_model(bundle_args, metadata, name, model)
    channels = int(metadata["fields"]["channels"])

    def enlarge(images: np.ndarray) -> np.ndarray:
        return pi_upscale.upscale(lambda x: upscaler.run(lowres=x)["image"], images, channels)

    return enlarge, upscaler


def upscale_inputs(args: argparse.Namespace, metadata: dict[str, Any]) -> None:
    """The ``upscaler`` path: each ``--input`` image fitted to the bundle's largest input side
    (``pi_images.py``), enlarged and written by `write_images` (``--npy``: also the uint8
    images); ``--benchmark K`` times the model on one image."""
    if args.input is None:
        raise ValueError("an upscaler bundle enlarges --input (a PNG/JPEG file or a folder)")
    fields = metadata["fields"]
    side = max(int(s) for s in fields["input_sizes"])
    pixels, names = sibling_module("pi_images").read_images(
        args.input, side, side, int(fields["channels"])
    )
    lowres = pixels.astype(np.float32) / 127.5 - 1.0
    enlarge, upscaler = open_upscaler(args, args.bundle, side, side)
    images = to_uint8(enlarge(lowres))
    write_images(args.out, images, names)
    if args.npy:
        atomic_write(args.npy, lambda f: np.savez(f, images=images, names=np.array(names)))
    if args.benchmark:
        median, p90 = benchmark(upscaler, {"lowres": lowres[:1]}, args.benchmark)
        print(
            f"benchmark: {side}x{side} -> {images.shape[2]}x{images.shape[1]}, {args.threads} "
            f"thread(s): median {median:.3f} ms/image, p90 {p90:.3f} ms/image"
        )


def upscaled(args: argparse.Namespace, images: np.ndarray) -> np.ndarray:
    """``images`` (f32 ``[N, h, w, C]`` in [-1, 1]) enlarged by the ``--upscale`` bundle, or
    unchanged without one."""
    if not args.upscale:
        return images
    return open_upscaler(args, args.upscale, *images.shape[1:3])[0](images)


def write_outputs(args: argparse.Namespace, images: np.ndarray, label_ids: np.ndarray) -> None:
    """The PNG grid (one row per label) and, with ``--npy``, the uint8 images and labels; with
    ``--upscale``, of the images enlarged by that bundle."""
    images = to_uint8(upscaled(args, images))
    rows = len(np.unique(label_ids))
    grid = make_grid(images, rows, args.scale)
    atomic_write(args.out, lambda f: grid.save(f, format="PNG"))
    print(f"wrote {args.out}: {rows} labels x {args.num} samples, {grid.width}x{grid.height}")
    if args.npy:
        save_npy(args.npy, images, labels=label_ids)


def save_npy(path: str, images: np.ndarray, **arrays: np.ndarray) -> None:
    """The ``--npy`` file: uint8 ``images`` ``[N, H, W, C]`` and ``arrays`` (one entry per image:
    labels, names or prompts) in one ``.npz``, written atomically."""
    atomic_write(path, lambda f: np.savez(f, images=images, **arrays))
    described = ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items())
    print(f"wrote {path}: images {images.shape} uint8, {described}")


def write_images(out: str, images: np.ndarray, names: list[str]) -> None:
    """Writes uint8 ``[N, H, W, C]`` images as PNGs: to the file ``out`` when it ends in ``.png``
    and N is 1, else into the folder ``out`` (created), one ``<input stem>.png`` per image.

    Raises:
      ValueError: if ``out`` is a ``.png`` file for several images, or two inputs share a stem.
    """
    if out.lower().endswith(".png"):
        if len(images) != 1:
            raise ValueError(f"--out {out} is one PNG file but there are {len(images)} images")
        paths = [Path(out)]
    else:
        paths = [Path(out) / f"{Path(name).stem}.png" for name in names]
        if len(set(paths)) != len(paths):
            raise ValueError(f"inputs {names} share a file stem: their outputs would collide")
        Path(out).mkdir(exist_ok=True)
    for path, image in zip(paths, images, strict=True):
        picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        atomic_write(str(path), lambda f, picture=picture: picture.save(f, format="PNG"))
    print(f"wrote {out}: {len(images)} image(s) {images.shape[2]}x{images.shape[1]}")


def _label_ids(args: argparse.Namespace, num_classes: int) -> np.ndarray:
    labels = parse_labels(args.labels, num_classes)
    return np.repeat(np.asarray(labels, np.int64), args.num)


def conditional_generator(args: argparse.Namespace, metadata: dict[str, Any]) -> None:
    """The ``dcgan``/``tinygan`` path: a grid of ``generator(z, y)`` samples, one row per label."""
    model = checked_model(metadata, "generator", ["z", "y"])
    shapes = {spec["name"]: spec["shape"] for spec in model["inputs"]}
    num_classes, latent_dim = shapes["y"][1], shapes["z"][1]
    label_ids = _label_ids(args, num_classes)
    generator = open_model(args, metadata, "generator", model)
    rng = np.random.default_rng(args.seed)
    z = rng.standard_normal((len(label_ids), latent_dim), dtype=np.float32)
    y = np.eye(num_classes, dtype=np.float32)[label_ids]
    (images,) = generator.run(z=z, y=y).values()
    write_outputs(args, images, label_ids)
    if args.benchmark:
        median, p90 = benchmark(generator, {"z": z, "y": y}, args.benchmark)
        print(
            f"benchmark: {args.benchmark} invocations at batch {generator.batch}, "
            f"{args.threads} thread(s): median {median:.3f} ms/image, p90 {p90:.3f} ms/image"
        )


def sibling_module(name: str) -> Any:
    """The module ``NAME.py`` next to this script (e.g. ``pi_diffusion``), loaded by path so that
    the two files work from any folder they are copied to together."""
    path = Path(__file__).resolve().parent / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"{path} is missing: copy it next to pi_infer.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def diffusion_settings(
    args: argparse.Namespace, fields: dict[str, Any], pi_diffusion: Any
) -> dict[str, Any]:
    """The sampler of ``bundle.json``'s fields, with ``--steps``, ``--guidance``, ``--eta``
    (``pi_diffusion``: the loaded `sibling_module`, for the step grid)."""
    schedule = fields["schedule"]
    timesteps = np.asarray(fields["timesteps"], np.int64)
    if args.steps is not None:
        timesteps = pi_diffusion.sampling_timesteps(args.steps, schedule["num_timesteps"])
    return {
        "timesteps": timesteps,
        "alpha_bar": np.asarray(schedule["alpha_bar"], np.float64),
        "embed_dim": int(fields["embed_dim"]),
        "parameterization": fields["parameterization"],
        "sampler": fields["sampler"],
        "eta": float(fields["eta"] if args.eta is None else args.eta),
        "guidance": float(fields["guidance"] if args.guidance is None else args.guidance),
    }


def diffusion_sampler(args: argparse.Namespace, metadata: dict[str, Any]) -> None:
    """The ``diffusion`` path: the numpy sampler of ``pi_diffusion`` calling the bundle's
    ``denoiser`` each step; ``x_T`` then the step noise from ``default_rng(--seed)``."""
    pi_diffusion = sibling_module("pi_diffusion")
    model = checked_model(metadata, "denoiser", ["x_t", "t_embedding", "y"])
    fields = metadata["fields"]
    settings = diffusion_settings(args, fields, pi_diffusion)
    num_classes = int(fields["num_classes"])
    label_ids = _label_ids(args, num_classes)
    denoiser = open_model(args, metadata, "denoiser", model)

    def denoise(x_t, t_embedding, y):
        return denoiser.run(x_t=x_t, t_embedding=t_embedding, y=y)["output"]

    def draw(count: int) -> np.ndarray:
        rng = np.random.default_rng(args.seed)
        shape = (count, *fields["image_shape"])
        x_T = rng.standard_normal(shape, dtype=np.float32)
        noise = rng.standard_normal((len(settings["timesteps"]), *shape), dtype=np.float32)
        y = np.eye(num_classes, dtype=np.float32)[label_ids[:count]]
        return pi_diffusion.sample(denoise, x_T, y, noise=noise, **settings)

    write_outputs(args, draw(len(label_ids)), label_ids)
    if args.benchmark:
        times = []
        for _ in range(args.benchmark + 1):
            start = time.perf_counter()
            draw(1)
            times.append((time.perf_counter() - start) * 1e3)
        steps, calls = len(settings["timesteps"]), 2 if settings["guidance"] else 1
        print(
            f"benchmark: {args.benchmark} samples of 1 image, {steps} steps x {calls} "
            f"denoiser call(s), {args.threads} thread(s): median {np.median(times[1:]):.3f} "
            f"ms/image, p90 {np.percentile(times[1:], 90):.3f} ms/image"
        )


def image_translator(args: argparse.Namespace, metadata: dict[str, Any]) -> None:
    """The ``cyclegan`` path: ``pi_cyclegan.translate`` (keep it next to this script) runs the
    bundle's generator of ``--direction`` on ``--input``."""
    sibling_module("pi_cyclegan").translate(args, metadata, sys.modules[__name__])


def text_generator(args: argparse.Namespace, metadata: dict[str, Any]) -> None:
    """The ``textgan`` path: ``pi_text.py`` encodes ``--prompt`` and runs the generator, with
    this module's helpers (model opening, grid, atomic writes)."""
    sibling_module("pi_text").text_generator(args, metadata, sys.modules[__name__])


def style_transfer(args: argparse.Namespace, metadata: dict[str, Any]) -> None:
    """The ``style`` path: every ``--input`` photo through the bundle's ``stylizer`` in style
    ``--style`` (``pi_style.py``), one PNG per photo (`write_images`)."""
    pi_style, pi_images = sibling_module("pi_style"), sibling_module("pi_images")
    model = checked_model(metadata, "stylizer", ["image", "style"])
    style = pi_style.style_vector(args.style, metadata["fields"]["style_names"])
    if args.input is None:
        raise ValueError("style bundles need --input PHOTO|FOLDER")
    image_spec = next(spec for spec in model["inputs"] if spec["name"] == "image")
    photos, names = pi_images.read_images(args.input, *image_spec["shape"][1:])
    stylizer = open_model(args, metadata, "stylizer", model)
    images = to_uint8(pi_style.stylize(stylizer.run, photos, style))
    write_images(args.out, images, names)
    if args.npy:
        atomic_write(args.npy, lambda f: np.savez(f, images=images))
    if args.benchmark:
        inputs = {"image": photos[:1].astype(np.float32) / 127.5 - 1.0, "style": style[None]}
        median, p90 = benchmark(stylizer, inputs, args.benchmark)
        print(
            f"benchmark: {args.benchmark} invocations at batch {stylizer.batch}, "
            f"{args.threads} thread(s): median {median:.3f} ms/image, p90 {p90:.3f} ms/image"
        )


FAMILIES: dict[str, Callable[[argparse.Namespace, dict[str, Any]], None]] = {
    "dcgan": conditional_generator,
    "tinygan": conditional_generator,
    "diffusion": diffusion_sampler,
    "cyclegan": image_translator,
    "upscaler": upscale_inputs,
    "textgan": text_generator,
    "style": style_transfer,
}


def run(args: argparse.Namespace) -> None:
    """Checks the outputs' folders, reads the bundle and runs its family's path."""
    check_output_paths(args.out, args.npy)
    metadata = read_metadata(args.bundle)
    family = metadata["family"]
    if family not in FAMILIES:
        raise ValueError(f"bundle family {family!r} is not one of {sorted(FAMILIES)}")
    FAMILIES[family](args, metadata)


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
