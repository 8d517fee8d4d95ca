"""Model profiles: parameters, multiply-accumulates per layer, peak activation memory, file sizes
and an energy-per-image *estimate*.

Everything is read from the inference ``jaxpr`` of the model at batch 1, so it works for any Flax
model and counts what actually runs:

* **MACs** — one per multiply-accumulate of every ``dot_general`` (Dense, einsum) and
  ``conv_general_dilated`` (Conv, ConvTranspose), per image. A convolution counts
  ``H_out * W_out * K_h * K_w * C_in/groups * C_out``; a transposed convolution (a convolution
  with input dilation) does not count the products with the zeros it inserts, which gives
  ``H_in * W_in * K_h * K_w * C_in * C_out``. ``nonzero_macs`` skips the products with weights
  that are exactly zero (what sparse kernels could skip after unstructured pruning).
  Element-wise ops (BatchNorm, activations, resizing) are not MACs and are not counted.
* **Peak activation memory** — the largest total size of the tensors alive at once when the
  top-level ops of the jaxpr run in order, each op holding its inputs and outputs; weights and
  values computed only from weights (e.g. folded BatchNorm factors) are excluded.
* **Energy** — MACs times the per-operation energies of Horowitz 2014 ("Computing's energy
  problem (and what we can do about it)", ISSCC, 45 nm: 8-bit integer multiply 0.2 pJ, add
  0.03 pJ; 32-bit float multiply 3.7 pJ, add 0.9 pJ). An estimate: memory access, which
  usually dominates, and non-MAC ops are left out.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from lwgen.errors import MissingFileError
from lwgen.io import atomic_write_json

HOROWITZ_45NM_PJ = {
    "int8": {"mult": 0.2, "add": 0.03},
    "fp32": {"mult": 3.7, "add": 0.9},
}
ENERGY_NOTE = (
    "estimate: MACs x per-operation energy at 45 nm (Horowitz, ISSCC 2014: int8 multiply 0.2 pJ "
    "+ add 0.03 pJ, fp32 multiply 3.7 pJ + add 0.9 pJ); memory access and non-MAC ops excluded"
)
MAC_PRIMITIVES = ("dot_general", "conv_general_dilated")


def _path_name(path: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _macs(eqn: Any) -> tuple[str, int]:
    """``(op kind, MACs)`` of one ``dot_general`` or ``conv_general_dilated`` equation."""
    out_size = math.prod(eqn.outvars[0].aval.shape)
    lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
    if eqn.primitive.name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        return "dense", out_size * math.prod(lhs[d] for d in lhs_contract)
    rhs_spec = eqn.params["dimension_numbers"].rhs_spec
    taps = math.prod(rhs[d] for d in rhs_spec[1:])  # C_in/groups * K_h * K_w
    dilation = math.prod(eqn.params["lhs_dilation"])
    kind = "conv_transpose" if dilation > 1 else "conv"
    return kind, out_size * taps // dilation


def _layer_name(eqn: Any, kernel_name: str | None) -> str:
    if kernel_name is not None:
        return kernel_name.rsplit("/", 1)[0].removeprefix("params/")
    return str(eqn.source_info.name_stack) or eqn.primitive.name


def _sub_jaxprs(eqn: Any) -> list[Any]:
    found = []
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jcore.ClosedJaxpr):
                found.append(item.jaxpr)
            elif isinstance(item, jcore.Jaxpr):
                found.append(item)
    return found


def _walk_layers(jaxpr: Any, weights: dict[Any, tuple[str, np.ndarray]], rows: list) -> None:
    """Appends a row per MAC op of ``jaxpr`` and its sub-jaxprs; ``weights`` maps a var to the
    ``(name, value)`` of the parameter it holds."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in MAC_PRIMITIVES:
            kind, macs = _macs(eqn)
            kernel = weights.get(eqn.invars[1]) if isinstance(eqn.invars[1], jcore.Var) else None
            density = 1.0 if kernel is None else np.count_nonzero(kernel[1]) / kernel[1].size
            rows.append(
                {
                    "layer": _layer_name(eqn, kernel and kernel[0]),
                    "op": kind,
                    "kernel_shape": list(eqn.invars[1].aval.shape),
                    "output_shape": list(eqn.outvars[0].aval.shape[1:]),
                    "macs": int(macs),
                    "nonzero_macs": int(round(macs * density)),
                }
            )
        for sub in _sub_jaxprs(eqn):
            inner = {}
            if len(sub.invars) == len(eqn.invars):
                inner = {
                    iv: weights[ov]
                    for iv, ov in zip(sub.invars, eqn.invars, strict=True)
                    if isinstance(ov, jcore.Var) and ov in weights
                }
            _walk_layers(sub, inner, rows)


def _nbytes(var: Any) -> int:
    aval = var.aval
    return math.prod(aval.shape) * np.dtype(aval.dtype).itemsize


def _numel(var: Any) -> int:
    return math.prod(var.aval.shape)


def peak_activation(jaxpr: Any, weight_vars: set, size: Callable[[Any], int] = _nbytes) -> int:
    """Peak total size of live non-weight tensors over the top-level ops of ``jaxpr`` in order.

    Args:
      jaxpr: a ``jax.extend.core.Jaxpr``.
      weight_vars: its input vars that hold weights (excluded, like everything computed only
        from weights and literals).
      size: a var's size: bytes (default) or elements.

    Returns:
      The peak (int), in the unit of ``size``.
    """
    weight = set(weight_vars)
    last_use = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.invars:
            if isinstance(v, jcore.Var):
                last_use[v] = i
    for v in jaxpr.outvars:
        if isinstance(v, jcore.Var):
            last_use[v] = len(jaxpr.eqns)
    live = {v for v in jaxpr.invars if v not in weight}
    current = sum(size(v) for v in live)
    peak = current
    for i, eqn in enumerate(jaxpr.eqns):
        if all(not isinstance(v, jcore.Var) or v in weight for v in eqn.invars):
            weight.update(eqn.outvars)
            continue
        outs = [v for v in eqn.outvars if not isinstance(v, jcore.DropVar)]
        current += sum(size(v) for v in outs)
        peak = max(peak, current)
        live.update(outs)
        dead = {v for v in live if last_use.get(v, i) <= i}
        current -= sum(size(v) for v in dead)
        live -= dead
    return int(peak)


def energy_estimate_uj(macs: int, nonzero_macs: int) -> dict[str, Any]:
    """Energy per image in µJ from MAC counts (Horowitz 2014, 45 nm), labelled an estimate.

    Returns:
      ``{"fp32_uj", "int8_uj", "int8_nonzero_uj", "note"}``.
    """

    def per_mac(kind: str) -> float:
        return sum(HOROWITZ_45NM_PJ[kind].values()) * 1e-6  # pJ -> µJ

    return {
        "fp32_uj": macs * per_mac("fp32"),
        "int8_uj": macs * per_mac("int8"),
        "int8_nonzero_uj": nonzero_macs * per_mac("int8"),
        "note": ENERGY_NOTE,
    }


def profile_model(model: Any, variables: dict[str, Any], *inputs: Any, **kwargs: Any) -> dict:
    """Profiles ``model.apply(variables, *inputs, **kwargs)``.

    Args:
      model: any Flax module.
      variables: its variables (``params`` are counted as parameters).
      *inputs: example inputs with batch dimension 1, e.g. ``z f32[1, latent_dim]``,
        ``y f32[1, num_classes]``.
      **kwargs: extra ``apply`` arguments (e.g. ``train=False``).

    Returns:
      A JSON-ready dict: ``params``, ``nonzero_params``, ``macs``, ``nonzero_macs`` (per image),
      ``layers`` (one row per MAC op: ``layer``, ``op``, ``kernel_shape``, ``output_shape``,
      ``macs``, ``nonzero_macs``), ``peak_activation_bytes`` (at the model's dtypes) and
      ``peak_activation_bytes_int8`` (every tensor at one byte per element), ``energy``
      (``energy_estimate_uj``).

    Raises:
      ValueError: if an input does not have batch size 1.
    """
    for x in inputs:
        if jnp.shape(x)[:1] != (1,):
            raise ValueError(f"profile inputs must have batch size 1, got shape {jnp.shape(x)}")
    leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
    closed = jax.make_jaxpr(lambda v, *xs: model.apply(v, *xs, **kwargs))(variables, *inputs)
    jaxpr = closed.jaxpr
    weight_vars = jaxpr.invars[: len(leaves)]
    weights = {
        var: (_path_name(path), np.asarray(value))
        for var, (path, value) in zip(weight_vars, leaves, strict=True)
    }
    rows: list[dict[str, Any]] = []
    _walk_layers(jaxpr, weights, rows)
    params = [np.asarray(p) for p in jax.tree.leaves(variables.get("params", {}))]
    macs = sum(r["macs"] for r in rows)
    nonzero_macs = sum(r["nonzero_macs"] for r in rows)
    return {
        "params": int(sum(p.size for p in params)),
        "nonzero_params": int(sum(np.count_nonzero(p) for p in params)),
        "macs": int(macs),
        "nonzero_macs": int(nonzero_macs),
        "layers": rows,
        "peak_activation_bytes": peak_activation(jaxpr, set(weight_vars)),
        "peak_activation_bytes_int8": peak_activation(jaxpr, set(weight_vars), _numel),
        "energy": energy_estimate_uj(macs, nonzero_macs),
    }


def profile_generator(generator: Any, variables: dict[str, Any]) -> dict:
    """``profile_model`` of a conditional generator ``G(z f32[1, latent_dim], y f32[1, K])`` in
    inference mode (``train=False``); see ``profile_model`` for the keys."""
    z = jnp.zeros((1, generator.latent_dim), jnp.float32)
    y = jax.nn.one_hot(jnp.zeros((1,), jnp.int32), generator.num_classes)
    return profile_model(generator, variables, z, y, train=False)


def profile_files(paths: Sequence[str]) -> dict[str, int]:
    """Bytes of each file.

    Raises:
      MissingFileError: naming the first path that is not a file.
    """
    sizes = {}
    for path in paths:
        if not os.path.isfile(path):
            raise MissingFileError(f"cannot profile {path!r}: not a file")
        sizes[str(path)] = os.path.getsize(path)
    return sizes


def format_profile(profile: dict[str, Any]) -> str:
    """The profile as a Markdown per-layer table followed by its totals."""
    lines = [
        "| layer | op | kernel | output | MACs | nonzero MACs |",
        "|---|---|---|---|---:|---:|",
    ]
    for row in profile["layers"]:
        kernel = "x".join(map(str, row["kernel_shape"]))
        output = "x".join(map(str, row["output_shape"]))
        lines.append(
            f"| {row['layer']} | {row['op']} | {kernel} | {output} | {row['macs']:,} | "
            f"{row['nonzero_macs']:,} |"
        )
    energy = profile["energy"]
    lines += [
        f"| **total** | | | | **{profile['macs']:,}** | **{profile['nonzero_macs']:,}** |",
        "",
        f"params {profile['params']:,} ({profile['nonzero_params']:,} nonzero); peak activations "
        f"{profile['peak_activation_bytes']:,} bytes float32; energy per image (estimate) "
        f"{energy['fp32_uj']:.3f} µJ fp32, {energy['int8_uj']:.3f} µJ int8 "
        f"({energy['int8_nonzero_uj']:.3f} µJ skipping zero weights)",
    ]
    return "\n".join(lines)


def write_profile(profile: dict[str, Any], path: str) -> None:
    """Writes the profile as indented JSON (atomically, see `lwgen.io.atomic_write_json`)."""
    atomic_write_json(path, profile)
