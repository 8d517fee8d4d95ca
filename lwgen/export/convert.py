"""Export spec → TFLite conversion, post-training quantization, and verification against JAX.

The path, for any ``lwgen.export.spec.ExportSpec``, is ``jax2tf.convert(fn,
with_gradient=False)`` (native StableHLO serialization for the CPU platform) → ``tf.function``
with a fixed ``input_signature`` (the spec's named inputs at a static batch) →
``tf.lite.TFLiteConverter.from_concrete_functions``. Conditions enter as float tensors, never
integer lookups (an embedding exports as GATHER_ND, which the Edge TPU cannot run).

Quantization modes (TFLite post-training quantization, Jacob et al. 2018, "Quantization and
Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", §2 affine scheme):

* ``float32`` – no quantization;
* ``float16`` – float16 weights, float32 compute and IO;
* ``dynamic`` – int8 weights, activations quantized on the fly (dynamic range);
* ``int8``    – int8 weights and activations (``TFLITE_BUILTINS_INT8`` kernels only), float IO;
* ``int8_io`` – as ``int8`` but with int8 inputs and outputs too (what the Edge TPU wants).

In the int8 modes convolution weights are quantized per output channel and FULLY_CONNECTED weights
per tensor (``DENSE_WEIGHTS``): per-channel dense weights store a float scale and an int64 zero
point for each of the (2,048 in the demo) output units and the int32 bias scales again, which
made the demo's INT8 file 28.4% of float32 instead of 25.9%, for a PSNR against JAX of 40.59 dB
instead of 40.51 dB (measured on the 1,500-step demo generator).

The int8 modes calibrate activation ranges on the spec's representative dataset (stream 0 of
``spec.sample_inputs``); verification compares every output on stream 1, so the two never share
samples.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
import tensorflow as tf
from ai_edge_litert.tools import flatbuffer_utils
from jax.experimental import jax2tf

from lwgen.errors import ExportError
from lwgen.export.metadata import INT8_MODES, QUANT_MODES
from lwgen.export.runtime import TFLiteRunner
from lwgen.export.spec import ExportSpec

DENSE_WEIGHTS = "per_tensor"
MIN_CALIBRATION = 200
CALIBRATION_STREAM = 0
VERIFICATION_STREAM = 1
NUM_VERIFICATION = 32


@contextlib.contextmanager
def _without_shardy() -> Iterator[None]:
    """Lowers with GSPMD instead of Shardy while the body runs, then restores the setting.

    jax 0.10 lowers with Shardy by default, which puts ``sdy`` dialect ops into the serialized
    StableHLO; the TFLite converter of TF 2.21 cannot deserialize them ("dialect 'sdy' is
    unknown") and leaves an unconvertible ``XlaCallModule`` custom op.
    """
    previous = jax.config.jax_use_shardy_partitioner
    jax.config.update("jax_use_shardy_partitioner", False)
    try:
        yield
    finally:
        jax.config.update("jax_use_shardy_partitioner", previous)


def check_options(quant: str, batch: int, num_calibration: int) -> None:
    """Validates conversion options before any work is done.

    Raises:
      ExportError: if ``quant`` is not in ``QUANT_MODES``, ``batch`` < 1, or an int8 mode gets
        fewer than ``MIN_CALIBRATION`` calibration samples.
    """
    if quant not in QUANT_MODES:
        raise ExportError(f"quant {quant!r} is not one of {QUANT_MODES}")
    if batch < 1:
        raise ExportError(f"batch must be >= 1, got {batch}")
    if quant in INT8_MODES and num_calibration < MIN_CALIBRATION:
        raise ExportError(
            f"num_calibration={num_calibration} is too few for {quant}: "
            f"need >= {MIN_CALIBRATION} representative samples"
        )


def sample_inputs(spec: ExportSpec, num: int, seed: int, stream: int) -> dict[str, np.ndarray]:
    """``spec.sample_inputs`` checked against the spec's input names, shapes and dtypes.

    Returns:
      ``{input name: array [num, *shape] of the input's dtype}``.

    Raises:
      ExportError: naming the model and the input that is missing or mis-shaped.
    """
    inputs = spec.sample_inputs(num, seed, stream)
    expected = [t.name for t in spec.inputs]
    if sorted(inputs) != sorted(expected):
        raise ExportError(f"{spec.name}: sample_inputs gave {sorted(inputs)}, not {expected}")
    for tensor in spec.inputs:
        x = np.asarray(inputs[tensor.name])
        if x.shape != (num, *tensor.shape):
            raise ExportError(
                f"{spec.name}: sample input {tensor.name!r} has shape {x.shape}, "
                f"expected {(num, *tensor.shape)}"
            )
    return {t.name: np.asarray(inputs[t.name], t.dtype) for t in spec.inputs}


def representative_dataset(
    spec: ExportSpec, batch: int, num_samples: int, seed: int = 0
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Calibration data for the int8 converter (the same samples on every call).

    Args:
      spec: the model's export spec; samples come from its stream ``CALIBRATION_STREAM``.
      batch: static batch of the model; samples are yielded in batches of this size.
      num_samples: calibration samples, rounded up to whole batches.
      seed: base seed.

    Returns:
      A generator function yielding one dict per batch: input name → ``[batch, *shape]``
      (by name: the converter's positional order is that of the model's input tensors, which
      need not be the spec's).
    """
    num_batches = math.ceil(num_samples / batch)
    inputs = sample_inputs(spec, num_batches * batch, seed, CALIBRATION_STREAM)

    def dataset() -> Iterator[list[np.ndarray]]:
        for start in range(0, num_batches * batch, batch):
            yield {t.name: inputs[t.name][start : start + batch] for t in spec.inputs}

    return dataset


def jax_outputs(spec: ExportSpec, inputs: dict[str, Any]) -> dict[str, Any]:
    """``spec.fn`` on ``inputs``, its outputs in ``spec.outputs`` order.

    Raises:
      ExportError: if ``fn`` returns other outputs than ``spec.outputs``.
    """
    outputs = spec.fn(spec.variables, **inputs)
    if sorted(outputs) != sorted(spec.outputs):
        raise ExportError(f"{spec.name}: fn returned {sorted(outputs)}, not {list(spec.outputs)}")
    return {name: outputs[name] for name in spec.outputs}


def concrete_function(
    spec: ExportSpec, batch: int
) -> tuple[tf.types.experimental.ConcreteFunction, tf.Module]:
    """The spec's function as a TF concrete function over its named inputs at a static batch.

    Args:
      spec: the model's export spec; its variables become constants of the graph.
      batch: static batch size.

    Returns:
      The concrete function ``(*inputs [batch, *shape]) -> {output name: [batch, ...]}`` and
      the ``tf.Module`` owning it (the converter's ``trackable_obj``; with it the converter
      emits a ``serving_default`` signature keyed by the input and output names).
    """
    names = [t.name for t in spec.inputs]

    def apply(*args: jax.Array) -> dict[str, jax.Array]:
        return jax_outputs(spec, dict(zip(names, args, strict=True)))

    converted = jax2tf.convert(apply, with_gradient=False, native_serialization_platforms=("cpu",))
    signature = [
        tf.TensorSpec([batch, *t.shape], tf.as_dtype(t.dtype), name=t.name) for t in spec.inputs
    ]
    module = tf.Module()
    module.serve = tf.function(converted, input_signature=signature, autograph=False)
    return module.serve.get_concrete_function(), module


def _converter(
    spec: ExportSpec, quant: str, batch: int, num_calibration: int, seed: int, sparsity: bool
) -> tf.lite.TFLiteConverter:
    """A TFLite converter for the spec, set up for ``quant`` (see the module docstring)."""
    with _without_shardy():
        function, module = concrete_function(spec, batch)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], module)
    optimizations = set()
    if quant != "float32":
        optimizations.add(tf.lite.Optimize.DEFAULT)
    if sparsity:
        optimizations.add(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if quant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quant in INT8_MODES:
        converter.representative_dataset = representative_dataset(
            spec, batch, num_calibration, seed
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Per-tensor FULLY_CONNECTED weights: see DENSE_WEIGHTS.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if quant == "int8_io":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


def convert(
    spec: ExportSpec,
    quant: str = "int8",
    batch: int = 1,
    num_calibration: int = 256,
    *,
    seed: int = 0,
    sparsity: bool = False,
) -> bytes:
    """Converts one export spec to a TFLite flatbuffer.

    Args:
      spec: the model (function, variables, named inputs and outputs, sample inputs).
      quant: one of ``QUANT_MODES`` (see the module docstring).
      batch: static batch size of the model.
      num_calibration: representative samples for the int8 modes (≥ ``MIN_CALIBRATION``).
      seed: seed of the representative dataset.
      sparsity: also apply ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` (sparse weight encoding
        for pruned models).

    Returns:
      The ``.tflite`` model bytes.

    Raises:
      ExportError: on bad options (see `check_options`), sample inputs or outputs that do not
        match the spec, or if the TFLite converter fails (the message names the model and holds
        the converter's first error line).
    """
    check_options(quant, batch, num_calibration)
    converter = _converter(spec, quant, batch, num_calibration, seed, sparsity)
    try:
        return converter.convert()
    except Exception as e:  # the converter's ConverterError is not public API
        raise ExportError(f"{spec.name}: TFLite conversion ({quant}) failed: {_summary(e)}") from e


def _summary(error: Exception, limit: int = 300) -> str:
    """The first line of a (possibly huge) converter error that names an error, shortened."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if "error" in line.lower()] or lines or [repr(error)]
    return f"{type(error).__name__}: {named[0][:limit]}"


def error_stats(
    reference: np.ndarray, candidate: np.ndarray, peak_to_peak: float = 2.0
) -> dict[str, float | int]:
    """Max abs error and PSNR of ``candidate`` against ``reference``.

    PSNR = 10 log10(peak_to_peak² / MSE); an MSE of 0 is floored at the smallest normal float64
    so the result stays finite (and JSON-serialisable).

    Args:
      reference: float ``[N, ...]``.
      candidate: same shape.
      peak_to_peak: value range of the signal (2.0 for images in ``[-1, 1]``).

    Returns:
      ``{"max_abs_error", "psnr_db" (dB), "num_samples": N, "peak_to_peak"}``.

    Raises:
      ValueError: if the shapes differ.
    """
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    if reference.shape != candidate.shape:
        raise ValueError(f"shape {candidate.shape} differs from reference {reference.shape}")
    diff = candidate - reference
    mse = max(float(np.mean(diff**2)), np.finfo(np.float64).tiny)
    return {
        "max_abs_error": float(np.max(np.abs(diff))),
        "psnr_db": 10.0 * math.log10(peak_to_peak**2 / mse),
        "num_samples": int(reference.shape[0]),
        "peak_to_peak": float(peak_to_peak),
    }


def verify(
    model_content: bytes,
    spec: ExportSpec,
    *,
    min_psnr: float | None = None,
    num_samples: int = NUM_VERIFICATION,
    seed: int = 0,
) -> dict[str, dict[str, float | int]]:
    """Runs the TFLite model and the JAX function on the same inputs and compares every output.

    The inputs are ``num_samples`` draws of ``spec.sample_inputs`` on ``VERIFICATION_STREAM``
    (never the calibration samples).

    Args:
      model_content: the ``.tflite`` bytes.
      spec: the export spec it was converted from.
      min_psnr: minimum acceptable PSNR in dB for every output; None uses ``spec.min_psnr``.
      num_samples: number of examples compared.
      seed: base seed.

    Returns:
      ``{output name: error_stats + {"min_psnr_db"}}``, plus ``"by_<group>": {label:
      error_stats}`` when the spec has ``error_groups``.

    Raises:
      ExportError: if the threshold is not finite, or an output's PSNR is below it (the message
        names the model, the output and both values).
    """
    threshold = spec.min_psnr if min_psnr is None else min_psnr
    if not math.isfinite(threshold):
        raise ExportError(f"min_psnr must be a finite number of dB, got {threshold}")
    inputs = sample_inputs(spec, num_samples, seed, VERIFICATION_STREAM)
    reference = jax_outputs(spec, inputs)
    candidate = TFLiteRunner(model_content)(**inputs)
    errors = {}
    for name in spec.outputs:
        stats = error_stats(np.asarray(reference[name]), candidate[name], spec.peak_to_peak)
        if stats["psnr_db"] < threshold:
            raise ExportError(
                f"export refused: PSNR {stats['psnr_db']:.2f} dB of output {name!r} of model "
                f"{spec.name!r} against JAX is below min_psnr {threshold:.2f} dB "
                f"(max abs error {stats['max_abs_error']:.4f} over {num_samples} samples)"
            )
        errors[name] = {**stats, "min_psnr_db": float(threshold)}
        if spec.error_groups is not None:
            group_name, labels_fn = spec.error_groups
            labels = np.asarray(labels_fn(num_samples, seed, VERIFICATION_STREAM))
            errors[name][f"by_{group_name}"] = {
                str(label): error_stats(
                    np.asarray(reference[name])[labels == label],
                    candidate[name][labels == label],
                    spec.peak_to_peak,
                )
                for label in np.unique(labels)
            }
    return errors


def op_counts(model_content: bytes) -> dict[str, int]:
    """Builtin/custom operator name → count over all subgraphs of a ``.tflite`` model."""
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_content))
    counts: dict[str, int] = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            custom = code.customCode.decode() if code.customCode else None
            name = custom or flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def describe_model(model_content: bytes, spec: ExportSpec) -> dict[str, Any]:
    """``{"inputs", "outputs"}`` tensor specs in the spec's order and ``"ops"`` counts.

    Raises:
      ExportError: if the model's signature names differ from the spec's inputs and outputs.
    """
    runner = TFLiteRunner(model_content)
    found = runner.tensor_specs()
    order = {"inputs": [t.name for t in spec.inputs], "outputs": list(spec.outputs)}
    for key, names in order.items():
        if sorted(t["name"] for t in found[key]) != sorted(names):
            raise ExportError(f"{spec.name}: model {key} {found[key]} are not {names}")
    by_name = {key: {t["name"]: t for t in found[key]} for key in order}
    described = {key: [by_name[key][name] for name in names] for key, names in order.items()}
    return {**described, "ops": op_counts(model_content)}
