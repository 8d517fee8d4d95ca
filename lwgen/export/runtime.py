"""Running exported ``.tflite`` models with LiteRT (no TensorFlow, no JAX).

`TFLiteRunner` wraps one ``ai_edge_litert`` interpreter for a model with one signature: it maps
named float32 inputs to named float32 outputs, quantizing int8 inputs and dequantizing int8
outputs with each tensor's own scale and zero point, and loops over chunks of the model's static
batch. `TFLiteRunner.from_bundle` runs one model of a verified bundle. `TFLiteGenerator` is a
bundle's conditional generator (inputs ``z``, ``y``; one output) behind the call signature of the
JAX generator, so evaluation code can score INT8 outputs directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from lwgen.errors import BundleError, ExportError
from lwgen.export.metadata import Bundle, load_bundle

GENERATOR = "generator"
GENERATOR_INPUTS = ("z", "y")


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


def _is_quantized(detail: Mapping[str, Any]) -> bool:
    """Integer tensors with a scale are quantized; scale 0 marks a plain integer input (token
    ids)."""
    return np.issubdtype(detail["dtype"], np.integer) and detail["quantization"][0] != 0.0


def tensor_spec(name: str, detail: Mapping[str, Any]) -> dict[str, Any]:
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
    """Runs a ``.tflite`` model whose one signature maps named inputs to named outputs.

    Attributes:
      interpreter: the ``ai_edge_litert`` interpreter (tensors allocated).
      inputs: ``{name: interpreter tensor details}`` of the signature's inputs.
      outputs: ``{name: interpreter tensor details}`` of its outputs.
      batch: the model's static batch size (axis 0 of every input).
    """

    def __init__(self, model_content: bytes, num_threads: int = 1):
        """Builds the interpreter.

        Args:
          model_content: the ``.tflite`` flatbuffer.
          num_threads: CPU threads for the interpreter (≥ 1).

        Raises:
          ExportError: if ``num_threads`` < 1, the model does not have exactly one signature,
            or its inputs do not share one static batch size.
        """
        if num_threads < 1:
            raise ExportError(f"num_threads must be >= 1, got {num_threads}")
        self.interpreter = allocated_interpreter(model_content, num_threads)
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ExportError(f"model must have exactly one signature, got {list(signatures)}")
        signature = self.interpreter.get_signature_runner()
        self.inputs = dict(signature.get_input_details())
        self.outputs = dict(signature.get_output_details())
        batches = {int(detail["shape"][0]) for detail in self.inputs.values()}
        if len(batches) != 1:
            raise ExportError(f"model inputs must share one batch size, got {sorted(batches)}")
        self.batch = batches.pop()

    @classmethod
    def from_bundle(cls, bundle: Bundle, name: str, num_threads: int = 1) -> TFLiteRunner:
        """The runner of model ``name`` of a loaded bundle, checked against ``bundle.json``.

        Raises:
          BundleError: if the bundle has no such model, or its tensors (names, dtypes, shapes,
            quantization) differ from those ``bundle.json`` records.
        """
        models = bundle.metadata["models"]
        if name not in models:
            raise BundleError(f"{bundle.directory}: no model {name!r} (has {sorted(models)})")
        runner = cls(bundle.models[name], num_threads)
        actual = runner.tensor_specs()
        recorded = {key: {t["name"]: t for t in models[name][key]} for key in actual}
        if {key: {t["name"]: t for t in actual[key]} for key in actual} != recorded:
            raise BundleError(
                f"{bundle.directory}: bundle.json tensors of {name!r} {recorded} do not match "
                f"the model {actual}"
            )
        return runner

    def tensor_specs(self) -> dict[str, list[dict[str, Any]]]:
        """``{"inputs": [...], "outputs": [...]}`` in signature order (see `tensor_spec`)."""
        return {
            "inputs": [tensor_spec(name, d) for name, d in self.inputs.items()],
            "outputs": [tensor_spec(name, d) for name, d in self.outputs.items()],
        }

    def _set_input(self, detail: Mapping[str, Any], x: np.ndarray) -> None:
        if _is_quantized(detail):
            scale, zero_point = detail["quantization"]
            x = quantize(x, scale, zero_point, detail["dtype"])
        self.interpreter.set_tensor(detail["index"], np.asarray(x, detail["dtype"]))

    def _get_output(self, detail: Mapping[str, Any]) -> np.ndarray:
        out = self.interpreter.get_tensor(detail["index"])
        if _is_quantized(detail):
            scale, zero_point = detail["quantization"]
            return dequantize(out, scale, zero_point)
        return out.astype(np.float32)

    def invoke(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Runs one static batch: every input float32 of its exact signature shape.

        Returns:
          ``{output name: float32 [batch, ...]}`` (dequantized where the output is int8).
        """
        for name, detail in self.inputs.items():
            self._set_input(detail, inputs[name])
        self.interpreter.invoke()
        return {name: self._get_output(detail) for name, detail in self.outputs.items()}

    def _check_inputs(self, inputs: Mapping[str, np.ndarray]) -> int:
        """Checks names and per-example shapes; returns the common number of examples N ≥ 1."""
        if set(inputs) != set(self.inputs):
            raise ValueError(f"inputs must be {sorted(self.inputs)}, got {sorted(inputs)}")
        sizes = set()
        for name, x in inputs.items():
            shape = tuple(int(d) for d in self.inputs[name]["shape"][1:])
            if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
                raise ValueError(f"input {name!r} must be [N, *{list(shape)}], got {x.shape}")
            sizes.add(x.shape[0])
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(f"inputs must share one number of examples N >= 1, got {sizes}")
        return sizes.pop()

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Runs any number of examples in chunks of the static batch (last chunk zero-padded).

        Args:
          **inputs: every signature input as float32 ``[N, *shape]`` (one shared N ≥ 1).

        Returns:
          ``{output name: float32 [N, ...]}``.

        Raises:
          ValueError: on missing or extra inputs, wrong shapes, or differing or zero N.
        """
        inputs = {name: np.asarray(x, np.float32) for name, x in inputs.items()}
        n = self._check_inputs(inputs)
        padded_n = -(-n // self.batch) * self.batch
        padded = {
            name: np.pad(x, [(0, padded_n - n)] + [(0, 0)] * (x.ndim - 1))
            for name, x in inputs.items()
        }
        chunks = [
            self.invoke(**{name: x[start : start + self.batch] for name, x in padded.items()})
            for start in range(0, padded_n, self.batch)
        ]
        return {name: np.concatenate([c[name] for c in chunks])[:n] for name in self.outputs}


class TFLiteGenerator:
    """A bundle's conditional generator, callable like ``Generator.apply`` but on LiteRT.

    Works for any bundle whose model ``generator`` takes ``z`` and a one-hot ``y`` and has one
    output (the DCGAN and TinyGAN families); nothing family-specific is imported.

    Attributes:
      metadata: the ``bundle.json`` dict.
      latent_dim: size of ``z``.
      num_classes: size of the one-hot ``y``.
      image_shape: ``(H, W, C)`` of the output.
    """

    def __init__(self, bundle_dir: str | Path, num_threads: int = 1):
        """Loads and verifies the bundle (``load_bundle``), then builds the interpreter.

        Args:
          bundle_dir: a bundle directory with a model ``generator``.
          num_threads: CPU threads for the interpreter.

        Raises:
          MissingFileError: if the bundle directory or one of its files is missing.
          BundleError: on a checksum mismatch, a malformed or old ``bundle.json``, no model
            ``generator``, or a generator that is not ``(z, y) -> one output``.
        """
        bundle = load_bundle(bundle_dir)
        self.metadata = bundle.metadata
        self._runner = TFLiteRunner.from_bundle(bundle, GENERATOR, num_threads)
        inputs, outputs = self._runner.inputs, self._runner.outputs
        if set(inputs) != set(GENERATOR_INPUTS) or len(outputs) != 1:
            raise BundleError(
                f"{bundle.directory}: model {GENERATOR!r} must map {GENERATOR_INPUTS} to one "
                f"output, got {sorted(inputs)} -> {sorted(outputs)}"
            )
        (self._output,) = outputs
        self.latent_dim = int(inputs["z"]["shape"][1])
        self.num_classes = int(inputs["y"]["shape"][1])
        self.image_shape = tuple(int(d) for d in outputs[self._output]["shape"][1:])

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
        return self._runner(z=z, y=y)[self._output]
