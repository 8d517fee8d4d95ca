"""Running exported generator ``.tflite`` models with LiteRT (no TensorFlow, no JAX).

``TFLiteRunner`` wraps one ``ai_edge_litert`` interpreter for a generator model whose signature
maps inputs ``z`` and ``y`` to the output ``image``: it quantizes float inputs and dequantizes int8
outputs with the tensors' own scale and zero point, and loops over chunks of the model's static
batch. The ``TFLiteGenerator`` reads a verified bundle (``lwgen.export.bundle``) and exposes the
same call signature as the JAX generator, so evaluation code can score INT8 outputs directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from lwgen.export.bundle import load_bundle

INPUT_NAMES = ("z", "y")
OUTPUT_NAME = "image"


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Affine-quantizes ``q = clip(round(x / scale) + zero_point)`` (TFLite's int8 scheme).

    Args:
      x: float array.
      scale: quantization step (> 0).
      zero_point: integer that represents 0.0.
      dtype: integer dtype of the result (``np.int8``).

    Returns:
      ``x`` quantized to ``dtype``, saturated to its range.
    """
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Inverse of ``quantize``: float32 ``(q - zero_point) * scale``."""
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def _is_quantized(detail: dict[str, Any]) -> bool:
    return np.issubdtype(detail["dtype"], np.integer)


def tensor_spec(name: str, detail: dict[str, Any]) -> dict[str, Any]:
    """JSON description of a signature tensor (the form stored in ``bundle.json``).

    Args:
      name: the tensor's key in the model signature (``"z"``, ``"y"``, ``"image"``).
      detail: its interpreter tensor details.

    Returns:
      ``{"name", "tensor" (interpreter tensor name), "dtype", "shape", "scale", "zero_point"}``;
      ``scale`` is 0.0 and ``zero_point`` 0 for float tensors (TFLite's "not quantized").
    """
    scale, zero_point = detail["quantization"]
    return {
        "name": name,
        "tensor": detail["name"],
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [int(d) for d in detail["shape"]],
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def allocated_interpreter(model_content: bytes, num_threads: int) -> Interpreter:
    """An interpreter with its tensors allocated, on XNNPACK if it can take the model.

    XNNPACK (LiteRT's default CPU delegate) refuses some graphs, e.g. INT8 models converted
    with the sparsity optimization; those run on the builtin kernels instead.
    """
    interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
    try:
        interpreter.allocate_tensors()
    except RuntimeError:
        interpreter = Interpreter(
            model_content=model_content,
            num_threads=num_threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
    return interpreter


class TFLiteRunner:
    """Runs a generator ``.tflite`` whose one signature maps ``z``, ``y`` to ``image``.

    Attributes:
      interpreter: the ``ai_edge_litert`` interpreter (tensors allocated).
      batch: the model's static batch size.
      latent_dim: size of ``z``.
      num_classes: size of the one-hot ``y``.
      image_shape: ``(H, W, C)`` of the output.
    """

    def __init__(self, model_content: bytes, num_threads: int = 1):
        """Builds the interpreter.

        Args:
          model_content: the ``.tflite`` flatbuffer.
          num_threads: CPU threads for the interpreter (≥ 1).

        Raises:
          ValueError: if ``num_threads`` < 1, or the model lacks inputs ``z``/``y`` or does not
            have exactly one output.
        """
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.interpreter = allocated_interpreter(model_content, num_threads)
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"model must have exactly one signature, got {list(signatures)}")
        signature = self.interpreter.get_signature_runner()
        inputs = signature.get_input_details()
        outputs = signature.get_output_details()
        if set(inputs) != set(INPUT_NAMES) or list(outputs) != [OUTPUT_NAME]:
            raise ValueError(
                f"model signature must map {INPUT_NAMES} to {OUTPUT_NAME!r}, "
                f"got {sorted(inputs)} -> {sorted(outputs)}"
            )
        self._z, self._y = inputs["z"], inputs["y"]
        self._out = outputs[OUTPUT_NAME]
        self.batch = int(self._z["shape"][0])
        self.latent_dim = int(self._z["shape"][1])
        self.num_classes = int(self._y["shape"][1])
        self.image_shape = tuple(int(d) for d in self._out["shape"][1:])

    def tensor_specs(self) -> dict[str, list[dict[str, Any]]]:
        """``{"inputs": [z spec, y spec], "outputs": [image spec]}`` (see ``tensor_spec``)."""
        return {
            "inputs": [tensor_spec("z", self._z), tensor_spec("y", self._y)],
            "outputs": [tensor_spec(OUTPUT_NAME, self._out)],
        }

    def _set_input(self, detail: dict[str, Any], x: np.ndarray) -> None:
        if _is_quantized(detail):
            scale, zero_point = detail["quantization"]
            x = quantize(x, scale, zero_point, detail["dtype"])
        self.interpreter.set_tensor(detail["index"], np.asarray(x, detail["dtype"]))

    def invoke(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Runs one static batch: float32 ``z [batch, latent_dim]``, ``y [batch, num_classes]``.

        Returns:
          float32 ``[batch, H, W, C]`` (dequantized if the output is int8).
        """
        self._set_input(self._z, z)
        self._set_input(self._y, y)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._out["index"])
        if _is_quantized(self._out):
            scale, zero_point = self._out["quantization"]
            return dequantize(out, scale, zero_point)
        return out.astype(np.float32)

    def __call__(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Generates any number of images, chunked to the static batch (last chunk zero-padded).

        Args:
          z: float32 ``[B, latent_dim]``.
          y: float32 one-hot ``[B, num_classes]``.

        Returns:
          float32 ``[B, H, W, C]`` images in ``[-1, 1]``.

        Raises:
          ValueError: on wrong shapes or mismatched batch sizes.
        """
        z = np.asarray(z, np.float32)
        y = np.asarray(y, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be [B, {self.latent_dim}], got {z.shape}")
        if y.ndim != 2 or y.shape[1] != self.num_classes or y.shape[0] != z.shape[0]:
            raise ValueError(f"y must be [{z.shape[0]}, {self.num_classes}], got {y.shape}")
        chunks = []
        for start in range(0, z.shape[0], self.batch):
            zc, yc = z[start : start + self.batch], y[start : start + self.batch]
            pad = self.batch - zc.shape[0]
            out = self.invoke(np.pad(zc, ((0, pad), (0, 0))), np.pad(yc, ((0, pad), (0, 0))))
            chunks.append(out[: self.batch - pad])
        return (
            np.concatenate(chunks, axis=0)
            if chunks
            else np.zeros((0, *self.image_shape), np.float32)
        )


class TFLiteGenerator:
    """A verified bundle's generator, callable like ``Generator.apply`` but on LiteRT.

    Attributes:
      metadata: the ``bundle.json`` dict.
      latent_dim: size of ``z``.
      num_classes: size of the one-hot ``y``.
      image_shape: ``(H, W, C)`` of the output.
    """

    def __init__(self, bundle_dir: str | Path, num_threads: int = 1):
        """Loads and verifies the bundle (``load_bundle``), then builds the interpreter.

        Args:
          bundle_dir: directory holding ``model.tflite`` and ``bundle.json``.
          num_threads: CPU threads for the interpreter.

        Raises:
          FileNotFoundError: if the bundle directory or one of its files is missing.
          ValueError: on a checksum mismatch, malformed ``bundle.json``, or a model whose
            tensors disagree with ``bundle.json``.
        """
        bundle = load_bundle(bundle_dir)
        self.metadata = bundle.metadata
        self._runner = TFLiteRunner(bundle.model_content, num_threads)
        specs = self._runner.tensor_specs()
        recorded = {key: self.metadata[key] for key in specs}
        if specs != recorded:
            raise ValueError(
                f"{bundle.directory}: bundle.json tensors {recorded} do not match the model {specs}"
            )
        self.latent_dim = self._runner.latent_dim
        self.num_classes = self._runner.num_classes
        self.image_shape = self._runner.image_shape

    def __call__(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Generates images.

        Args:
          z: float32 ``[B, latent_dim]``.
          y: float32 one-hot ``[B, num_classes]``.

        Returns:
          float32 ``[B, H, W, C]`` NHWC images in ``[-1, 1]``.

        Raises:
          ValueError: on wrong input shapes.
        """
        return self._runner(z, y)
