"""Export specs: what a family hands the exporter for each model of a bundle.

The exporter (``lwgen.export.convert`` / ``lwgen.export.bundle``) knows no family and no model: it
converts whatever pure function a spec names (jax2tf → TFLite), calibrates it on the spec's
representative dataset, verifies it against JAX on the spec's verification inputs and writes it
into a bundle under the spec's name. A family's ``export_specs`` builds the specs from a restored
workdir (see ``lwgen.families.registry.Family``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

InputFn = Callable[[int, int, int], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A named model input: ``shape`` without the batch axis, and a numpy dtype name.

    Attributes:
      name: the input's name in the model signature (e.g. ``"z"``, ``"y"``, ``"x_t"``).
      shape: per-example shape, e.g. ``(64,)`` for ``z`` or ``(32, 32, 1)`` for an image.
      dtype: numpy dtype name; conditions enter as ``"float32"`` (one-hot, embeddings), never as
        integer lookups (see ``shared/DESIGN.md``).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """One model of a bundle.

    Attributes:
      name: model name in the bundle (``"generator"``, ``"denoiser"``, ...); the file is
        ``NAME.tflite``.
      fn: pure ``fn(variables, **inputs) -> {output name: float32 [B, ...]}`` in inference mode.
      variables: the variables ``fn`` closes over (constants of the exported graph).
      inputs: the named inputs, in signature order.
      outputs: the output names ``fn`` returns, in order.
      sample_inputs: ``(num, seed, stream) -> {input name: array [num, *shape]}`` drawn from the
        distribution the model sees in use; stream 0 is calibration (the representative dataset),
        stream 1 verification, so the two never share samples.
      min_psnr: the bundle is refused if any output's PSNR against JAX is below this (dB).
      peak_to_peak: value range of the outputs for PSNR (2.0 for images in ``[-1, 1]``).
      fields: model-level metadata recorded in ``bundle.json`` next to the tensors.
      error_groups: optional ``(group name, labels_fn)``; ``labels_fn(num, seed, stream)`` gives
        int ``[num]`` group labels of the same draws as ``sample_inputs`` (e.g. the timestep of
        each denoiser input). Verification then also records the error per group under
        ``error[output]["by_" + group name]``.
      quant: this model's quantization mode, overriding the bundle's (e.g. a float16 text
        encoder next to an INT8 generator); None uses the bundle's.
      files: extra files this model needs on the device, ``{file name: bytes}`` (e.g. its
        ``tokenizer.json``), written into the bundle with their sha256 recorded.
    """

    name: str
    fn: Callable[..., Mapping[str, Any]]
    variables: Any
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    sample_inputs: InputFn
    min_psnr: float = 20.0
    peak_to_peak: float = 2.0
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    error_groups: tuple[str, Callable[[int, int, int], np.ndarray]] | None = None
    quant: str | None = None
    files: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
