"""Quantization-aware training by fake quantization of an existing Flax model.

After Jacob et al. 2018 ("Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference"): the affine map ``r = S (q - Z)`` (§2.1, eq. 1) and simulated
quantization in the forward pass (§3.1, eq. 12) ``q(r; a, b, n) = round((clamp(r; a, b) - a) / s)
s + a`` with ``s = (b - a) / (n - 1)``, trained with the straight-through estimator.

* Weights: per-output-channel symmetric int8, ``scale_c = max|w_c| / 127``, values in
  ``[-127, 127]``, zero point 0 (the TFLite int8 weight scheme). Per-channel scales make the
  fake quantization invariant to the later folding of BatchNorm into the kernel, which scales
  each output channel.
* Activations: per-tensor asymmetric int8 in ``[-128, 127]`` with ``scale = (max - min) / 255``
  and an integer zero point; the range is widened to contain 0 so that 0 is exactly
  representable (§2.1). Ranges are EMAs of the batch min/max (§3.1) kept in the ``"quant_stats"``
  collection beside each layer, updated whenever that collection is mutable.
* Gradients: clipped straight-through estimator, identity inside the range and zero outside.

The model definition is not copied: ``fake_quantization()`` installs a ``flax.linen``
method interceptor that, for every ``nn.Dense``/``nn.Conv``/``nn.ConvTranspose`` call, fake
quantizes the layer input and output and re-runs the layer with a fake-quantized kernel. Biases
stay float (they become int32 at export).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

QUANT_COLLECTION = "quant_stats"
ACTIVATION_QMIN, ACTIVATION_QMAX = -128, 127
WEIGHT_QMAX = 127
_EPS = 1e-12
_NESTED = contextvars.ContextVar("lwgen_fake_quant_nested", default=False)


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """Settings of the fake-quantization interceptor.

    Attributes:
      ema_decay: smoothing of the activation range EMA (Jacob et al. 2018, §3.1).
      quantize_inputs: fake-quantize each intercepted layer's input.
      quantize_outputs: fake-quantize each intercepted layer's output.
      layer_types: module classes whose ``__call__`` is intercepted (each must own a
        ``kernel`` param).
      axis_name: mapped axis over which batch min/max are reduced inside a data-parallel step
        (``"batch"``), so that every device tracks the same range; None outside one.
    """

    ema_decay: float = 0.99
    quantize_inputs: bool = True
    quantize_outputs: bool = True
    layer_types: tuple[type, ...] = (nn.Dense, nn.Conv, nn.ConvTranspose)
    axis_name: str | None = None


def activation_qparams(
    min_val: jax.Array, max_val: jax.Array, qmin: int = ACTIVATION_QMIN, qmax: int = ACTIVATION_QMAX
) -> tuple[jax.Array, jax.Array]:
    """Asymmetric per-tensor scale and zero point for the float range ``[min_val, max_val]``.

    The range is widened to contain 0 and the zero point rounded to an integer, so that real 0
    maps exactly to ``zero_point`` (Jacob et al. 2018, §2.1).

    Returns:
      ``(scale, zero_point)``: float32 scalars, ``scale = (max - min) / (qmax - qmin)`` and
      ``zero_point`` an integer value in ``[qmin, qmax]`` stored as float32.
    """
    min_val = jnp.minimum(min_val, 0.0)
    max_val = jnp.maximum(max_val, 0.0)
    scale = jnp.maximum((max_val - min_val) / (qmax - qmin), _EPS)
    zero_point = jnp.clip(jnp.round(qmin - min_val / scale), qmin, qmax)
    return scale, zero_point


def weight_scales(kernel: jax.Array) -> jax.Array:
    """Symmetric per-output-channel scales ``max|w_c| / 127`` of a kernel ``[..., C_out]``.

    Returns:
      float32 ``[C_out]``; an all-zero channel gets scale 1.
    """
    max_abs = jnp.max(jnp.abs(kernel).reshape(-1, kernel.shape[-1]), axis=0)
    return jnp.where(max_abs > 0, max_abs / WEIGHT_QMAX, 1.0)


def quantize(
    x: jax.Array, scale: jax.Array, zero_point: jax.Array, qmin: int, qmax: int
) -> jax.Array:
    """Float to integer codes ``clip(round(x / scale) + zero_point, qmin, qmax)`` as int32."""
    return jnp.clip(jnp.round(x / scale) + zero_point, qmin, qmax).astype(jnp.int32)


def dequantize(q: jax.Array, scale: jax.Array, zero_point: jax.Array) -> jax.Array:
    """Integer codes back to float32, ``scale * (q - zero_point)`` (Jacob et al. 2018, eq. 1)."""
    return scale * (q.astype(jnp.float32) - zero_point)


def fake_quant(
    x: jax.Array, scale: jax.Array, zero_point: jax.Array, qmin: int, qmax: int
) -> jax.Array:
    """Quantize-dequantize in float with the clipped straight-through estimator.

    Forward: ``dequantize(quantize(x))`` (Jacob et al. 2018, eq. 12). Backward: gradient 1 where
    ``x`` lies inside the representable range ``[(qmin - Z) S, (qmax - Z) S]`` and 0 outside;
    no gradient reaches ``scale`` or ``zero_point``.

    Args:
      x: float array.
      scale: float32 scalar or array broadcastable to ``x`` (per channel on the last axis).
      zero_point: integer-valued float32, broadcastable like ``scale``.
      qmin: smallest integer code (-128 for int8 activations, -127 for weights).
      qmax: largest integer code (127).

    Returns:
      float32 array of ``x``'s shape holding only values ``scale * (k - zero_point)``.
    """
    scale, zero_point = jax.lax.stop_gradient(scale), jax.lax.stop_gradient(zero_point)
    clipped = jnp.clip(x, (qmin - zero_point) * scale, (qmax - zero_point) * scale)
    snapped = dequantize(quantize(clipped, scale, zero_point, qmin, qmax), scale, zero_point)
    return clipped + jax.lax.stop_gradient(snapped - clipped)


def fake_quant_weight(kernel: jax.Array) -> jax.Array:
    """Per-output-channel symmetric int8 fake quantization of a kernel ``[..., C_out]``."""
    return fake_quant(kernel, weight_scales(kernel), 0.0, -WEIGHT_QMAX, WEIGHT_QMAX)


def _batch_range(x: jax.Array, axis_name: str | None) -> jax.Array:
    x = jax.lax.stop_gradient(x)
    lo, hi = jnp.min(x), jnp.max(x)
    if axis_name is not None:
        lo, hi = jax.lax.pmin(lo, axis_name), jax.lax.pmax(hi, axis_name)
    return jnp.stack([lo, hi]).astype(jnp.float32)


def _tracked_range(module: nn.Module, name: str, x: jax.Array, config: QuantConfig) -> jax.Array:
    """The ``[min, max]`` EMA stored at ``quant_stats/<layer>/<name>``, updated if mutable."""
    scope = module.scope
    mutable = scope.is_mutable_collection(QUANT_COLLECTION)
    existed = scope.has_variable(QUANT_COLLECTION, name)
    if not existed and not mutable:
        raise ValueError(
            f"layer {'/'.join(scope.path)} has no {QUANT_COLLECTION}/{name}: run "
            f"init_quant_stats first or pass mutable=[{QUANT_COLLECTION!r}]"
        )
    batch = _batch_range(x, config.axis_name)
    variable = scope.variable(QUANT_COLLECTION, name, lambda: batch)
    if existed and mutable:
        decay = config.ema_decay
        variable.value = decay * variable.value + (1.0 - decay) * batch
    return variable.value


def _fake_quant_activation(
    module: nn.Module, name: str, x: jax.Array, config: QuantConfig
) -> jax.Array:
    value_range = _tracked_range(module, name, x, config)
    scale, zero_point = activation_qparams(value_range[0], value_range[1])
    return fake_quant(x, scale, zero_point, ACTIVATION_QMIN, ACTIVATION_QMAX)


def _interceptor(config: QuantConfig):
    def intercept(next_fun, args, kwargs, context):
        module = context.module
        if (
            _NESTED.get()
            or context.method_name != "__call__"
            or not isinstance(module, config.layer_types)
            or not module.scope.has_variable("params", "kernel")
        ):
            return next_fun(*args, **kwargs)
        x = args[0]
        if config.quantize_inputs:
            x = _fake_quant_activation(module, "input_range", x, config)
        params = dict(module.variables["params"])
        params["kernel"] = fake_quant_weight(params["kernel"])
        token = _NESTED.set(True)
        try:
            y = module.clone(parent=None).apply({"params": params}, x, *args[1:], **kwargs)
        finally:
            _NESTED.reset(token)
        if config.quantize_outputs:
            y = _fake_quant_activation(module, "output_range", y, config)
        return y

    return intercept


@contextlib.contextmanager
def fake_quantization(config: QuantConfig | None = None) -> Iterator[None]:
    """Context manager under which ``model.apply`` runs with fake quantization.

    Use it inside the (jitted) step function, around ``model.apply``. Pass
    ``mutable=["quant_stats", ...]`` to ``apply`` to update the activation range EMAs (training),
    leave the collection immutable to use the stored ranges (evaluation).

    Args:
      config: interceptor settings; default ``QuantConfig()``.
    """
    with nn.intercept_methods(_interceptor(config or QuantConfig())):
        yield


def qat_apply(
    model: nn.Module,
    variables: dict[str, Any],
    *args: Any,
    config: QuantConfig | None = None,
    **kwargs: Any,
) -> Any:
    """``model.apply(variables, *args, **kwargs)`` with fake quantization switched on.

    Args:
      model: any Flax module (e.g. ``Generator``); its Dense/Conv/ConvTranspose layers are
        fake-quantized.
      variables: the model's variables including a ``"quant_stats"`` collection from
        ``init_quant_stats`` (or pass ``mutable`` containing ``"quant_stats"``).
      *args: the model's call arguments, e.g. ``z f32[B, latent_dim], y f32[B, num_classes]``.
      config: interceptor settings.
      **kwargs: forwarded to ``model.apply`` (``train=...``, ``mutable=[...]``, ``rngs=...``).

    Returns:
      Whatever ``model.apply`` returns (``(out, updated_collections)`` when ``mutable``).

    Raises:
      ValueError: if ranges are missing and ``"quant_stats"`` is not mutable.
    """
    with fake_quantization(config):
        return model.apply(variables, *args, **kwargs)


def init_quant_stats(
    model: nn.Module,
    variables: dict[str, Any],
    *args: Any,
    config: QuantConfig | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Initial activation ranges: the min/max of one calibration batch through the model.

    Args:
      model: the Flax module.
      variables: its trained float variables (any ``"quant_stats"`` in them is ignored).
      *args: a calibration batch of call arguments, e.g. ``(z, y)``.
      config: interceptor settings.
      **kwargs: forwarded to ``model.apply`` (e.g. ``train=False``).

    Returns:
      The ``"quant_stats"`` collection: per layer ``{"input_range", "output_range"}`` float32
      ``[2]`` arrays ``[min, max]``; add it to ``variables`` under ``"quant_stats"``.
    """
    float_variables = {k: v for k, v in variables.items() if k != QUANT_COLLECTION}
    _, state = qat_apply(
        model, float_variables, *args, config=config, mutable=[QUANT_COLLECTION], **kwargs
    )
    return state[QUANT_COLLECTION]
