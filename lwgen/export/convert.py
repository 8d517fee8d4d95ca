"""JAX generator → TFLite conversion, post-training quantization and verification against JAX.

The path is ``jax2tf.convert(fn, with_gradient=False)`` (native StableHLO serialization for the
CPU platform) → ``tf.function`` with a fixed ``input_signature`` (``z`` float32
``[batch, latent_dim]``, ``y`` float32 one-hot ``[batch, num_classes]``) →
``tf.lite.TFLiteConverter.from_concrete_functions``. The condition is a float one-hot tensor, never
an integer lookup (an embedding exports as GATHER_ND, which the Edge TPU cannot run).

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

The int8 modes calibrate activation ranges on a representative dataset drawn from the latent
prior ``z ~ N(0, I)`` with classes cycled in order.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf
from ai_edge_litert.tools import flatbuffer_utils
from jax.experimental import jax2tf

from lwgen.export.bundle import INT8_MODES, MIN_CALIBRATION, QUANT_MODES
from lwgen.export.runtime import TFLiteRunner

DENSE_WEIGHTS = "per_tensor"
PEAK_TO_PEAK = 2.0  # images live in [-1, 1]
_CALIBRATION_STREAM = 0
_VERIFICATION_STREAM = 1


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
      ValueError: if ``quant`` is not in ``QUANT_MODES``, ``batch`` < 1, or an int8 mode gets
        fewer than ``MIN_CALIBRATION`` calibration samples.
    """
    if quant not in QUANT_MODES:
        raise ValueError(f"quant {quant!r} is not one of {QUANT_MODES}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if quant in INT8_MODES and num_calibration < MIN_CALIBRATION:
        raise ValueError(
            f"num_calibration={num_calibration} is too few for {quant}: "
            f"need >= {MIN_CALIBRATION} representative samples"
        )


def prior_samples(
    latent_dim: int, num_classes: int, num_samples: int, seed: int, stream: int
) -> tuple[np.ndarray, np.ndarray]:
    """Latents from ``N(0, I)`` and one-hot classes cycling ``0, 1, ..., num_classes - 1``.

    Args:
      latent_dim: size of ``z``.
      num_classes: number of classes.
      num_samples: number of samples N.
      seed: base seed.
      stream: independent stream index (calibration and verification use different ones).

    Returns:
      ``(z f32[N, latent_dim], y f32[N, num_classes])``.
    """
    rng = np.random.default_rng([seed, stream])
    z = rng.standard_normal((num_samples, latent_dim), dtype=np.float32)
    y = np.eye(num_classes, dtype=np.float32)[np.arange(num_samples) % num_classes]
    return z, y


def representative_dataset(
    latent_dim: int, num_classes: int, batch: int, num_samples: int, seed: int = 0
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Calibration data for the int8 converter (same samples on every call).

    Args:
      latent_dim: size of ``z``.
      num_classes: number of classes.
      batch: static batch of the model; samples are yielded in batches of this size.
      num_samples: calibration samples, rounded up to whole batches.
      seed: base seed.

    Returns:
      A generator function yielding ``[z f32[batch, latent_dim], y f32[batch, num_classes]]``.
    """
    num_batches = math.ceil(num_samples / batch)
    z, y = prior_samples(latent_dim, num_classes, num_batches * batch, seed, _CALIBRATION_STREAM)

    def dataset() -> Iterator[list[np.ndarray]]:
        for start in range(0, num_batches * batch, batch):
            yield [z[start : start + batch], y[start : start + batch]]

    return dataset


def concrete_function(
    generator: Any, variables: Mapping[str, Any], batch: int
) -> tuple[tf.types.experimental.ConcreteFunction, tf.Module]:
    """The inference generator as a TF concrete function with inputs ``z`` and ``y``.

    Args:
      generator: flax generator module (see ``lwgen.export.bundle.export_generator``).
      variables: its variables; they become constants of the exported graph.
      batch: static batch size.

    Returns:
      The concrete function ``(z f32[batch, latent_dim], y f32[batch, num_classes]) ->
      {"image": f32[batch, H, W, C]}`` and the ``tf.Module`` owning it (the converter's
      ``trackable_obj``; with it the converter emits a ``serving_default`` signature).
    """

    def apply(z: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
        return {"image": generator.apply(variables, z, y, train=False)}

    converted = jax2tf.convert(apply, with_gradient=False, native_serialization_platforms=("cpu",))
    signature = [
        tf.TensorSpec([batch, generator.latent_dim], tf.float32, name="z"),
        tf.TensorSpec([batch, generator.num_classes], tf.float32, name="y"),
    ]
    module = tf.Module()
    module.generate = tf.function(converted, input_signature=signature, autograph=False)
    return module.generate.get_concrete_function(), module


def convert(
    generator: Any,
    variables: Mapping[str, Any],
    quant: str = "int8",
    batch: int = 1,
    num_calibration: int = 256,
    *,
    seed: int = 0,
    sparsity: bool = False,
) -> bytes:
    """Converts a generator to a TFLite flatbuffer.

    Args:
      generator: flax generator module with ``latent_dim`` and ``num_classes`` fields.
      variables: its variables.
      quant: one of ``QUANT_MODES`` (see the module docstring).
      batch: static batch size of the model.
      num_calibration: representative samples for the int8 modes (≥ ``MIN_CALIBRATION``).
      seed: seed of the representative dataset.
      sparsity: also apply ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` (sparse weight encoding
        for pruned models).

    Returns:
      The ``.tflite`` model bytes.

    Raises:
      ValueError: on bad options (see ``check_options``) or if the TFLite converter fails (the
        message holds the converter's first error line).
    """
    check_options(quant, batch, num_calibration)
    with _without_shardy():
        function, module = concrete_function(generator, variables, batch)
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
            generator.latent_dim, generator.num_classes, batch, num_calibration, seed
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Per-tensor FULLY_CONNECTED weights: see DENSE_WEIGHTS.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if quant == "int8_io":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as e:  # the converter's ConverterError is not public API
        raise ValueError(f"TFLite conversion ({quant}) failed: {_summary(e)}") from e


def _summary(error: Exception, limit: int = 300) -> str:
    """The first line of a (possibly huge) converter error that names an error, shortened."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if "error" in line.lower()] or lines or [repr(error)]
    return f"{type(error).__name__}: {named[0][:limit]}"


def error_stats(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float | int]:
    """Max abs error and PSNR of ``candidate`` images against ``reference`` images.

    PSNR = 10 log10(peak² / MSE) with peak = 2 (the ``[-1, 1]`` range); an MSE of 0 is floored
    at the smallest normal float64 so the result stays finite (and JSON-serialisable).

    Args:
      reference: float ``[N, H, W, C]`` in ``[-1, 1]``.
      candidate: same shape.

    Returns:
      ``{"max_abs_error", "psnr_db" (dB), "num_samples": N}``.

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
        "psnr_db": 10.0 * math.log10(PEAK_TO_PEAK**2 / mse),
        "num_samples": int(reference.shape[0]),
    }


def verify(
    model_content: bytes,
    generator: Any,
    variables: Mapping[str, Any],
    *,
    min_psnr: float = 20.0,
    num_samples: int = 32,
    seed: int = 0,
) -> dict[str, float | int]:
    """Runs the TFLite model and the JAX generator on the same inputs and compares them.

    The inputs are ``num_samples`` latents from ``N(0, I)`` (a different stream from the
    calibration data) with classes cycled.

    Args:
      model_content: the ``.tflite`` bytes.
      generator: the flax generator module it was converted from.
      variables: its variables.
      min_psnr: minimum acceptable PSNR in dB.
      num_samples: number of images compared.
      seed: base seed.

    Returns:
      ``error_stats`` plus ``min_psnr_db``.

    Raises:
      ValueError: if ``min_psnr`` is not finite, or the PSNR is below it (message names both).
    """
    if not math.isfinite(min_psnr):
        raise ValueError(f"min_psnr must be a finite number of dB, got {min_psnr}")
    z, y = prior_samples(
        generator.latent_dim, generator.num_classes, num_samples, seed, _VERIFICATION_STREAM
    )
    reference = np.asarray(generator.apply(variables, jnp.asarray(z), jnp.asarray(y), train=False))
    stats = error_stats(reference, TFLiteRunner(model_content)(z, y))
    if stats["psnr_db"] < min_psnr:
        raise ValueError(
            f"export refused: PSNR {stats['psnr_db']:.2f} dB of the TFLite model against the JAX "
            f"generator is below min_psnr {min_psnr:.2f} dB "
            f"(max abs error {stats['max_abs_error']:.4f} over {num_samples} samples)"
        )
    return {**stats, "min_psnr_db": float(min_psnr)}


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


def describe_model(model_content: bytes) -> dict[str, Any]:
    """``{"inputs", "outputs"}`` tensor specs (see ``runtime.tensor_spec``) and ``"ops"`` counts."""
    return {**TFLiteRunner(model_content).tensor_specs(), "ops": op_counts(model_content)}
