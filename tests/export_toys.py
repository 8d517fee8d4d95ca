"""Toy export specs for the exporter tests: tiny Flax nets, no training core, no family.

* `conditional_spec`: a conditional generator ``(z f32[8], y one-hot f32[10]) -> image
  f32[16, 16, 1]`` in ``[-1, 1]``, the shape of the DCGAN family's ``generator``;
* `refiner_spec`: ``x f32[8, 8, 1] -> {"image" f32[16, 16, 1], "residual" f32[16, 16, 1]}``, a
  second model with two outputs for multi-model bundles;
* `toy_bundle`: their bundles, exported once per test session and shared by the export tests.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lwgen.export.bundle import export_bundle
from lwgen.export.spec import ExportSpec, TensorSpec

LATENT_DIM = 8
NUM_CLASSES = 10
IMAGE_SHAPE = (16, 16, 1)
CONDITIONAL_FIELDS = {
    "class_names": [str(i) for i in range(NUM_CLASSES)],
    "num_classes": NUM_CLASSES,
    "latent_dim": LATENT_DIM,
    "image_shape": list(IMAGE_SHAPE),
    "upsample": "resize_conv",
}
TOY_CONFIG = {"model": {"family": "dcgan"}, "export": {"quant": "int8"}}


def _upsample(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")


class ToyGenerator(nn.Module):
    """Dense → ``[4, 4, 8]`` → (resize ×2, conv, ReLU) → (resize ×2, conv) → tanh."""

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array) -> jax.Array:
        x = nn.Dense(4 * 4 * 8)(jnp.concatenate([z, y], axis=-1))
        x = nn.relu(x.reshape(-1, 4, 4, 8))
        x = nn.relu(nn.Conv(8, (3, 3))(_upsample(x)))
        return jnp.tanh(nn.Conv(IMAGE_SHAPE[-1], (3, 3))(_upsample(x)))


class ToyRefiner(nn.Module):
    """Upsamples an ``[8, 8, 1]`` image and predicts a residual: the image and the residual."""

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        up = _upsample(x)
        residual = 0.5 * jnp.tanh(nn.Conv(1, (3, 3))(nn.relu(nn.Conv(4, (3, 3))(up))))
        return jnp.clip(up + residual, -1.0, 1.0), residual


def conditional_inputs(num: int, seed: int, stream: int) -> dict[str, np.ndarray]:
    """``z ~ N(0, I)`` and one-hot classes cycling ``0..9``, as the DCGAN family draws them."""
    rng = np.random.default_rng([seed, stream])
    z = rng.standard_normal((num, LATENT_DIM), dtype=np.float32)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[np.arange(num) % NUM_CLASSES]
    return {"z": z, "y": y}


def refiner_inputs(num: int, seed: int, stream: int) -> dict[str, np.ndarray]:
    """Smooth random images in ``[-1, 1]``, ``f32[num, 8, 8, 1]``."""
    rng = np.random.default_rng([seed, stream, 1])
    coarse = rng.uniform(-1.0, 1.0, (num, 4, 4, 1)).astype(np.float32)
    return {"x": coarse.repeat(2, axis=1).repeat(2, axis=2)}


def conditional_spec(name: str = "generator", seed: int = 0, scale: float = 1.0) -> ExportSpec:
    """The toy conditional generator with random weights (``scale`` multiplies every kernel)."""
    module = ToyGenerator()
    variables = module.init(jax.random.PRNGKey(seed), *conditional_inputs(1, 0, 0).values())
    variables = jax.tree.map(lambda v: v * scale, variables)
    return ExportSpec(
        name=name,
        fn=lambda variables, z, y: {"image": module.apply(variables, z, y)},
        variables=variables,
        inputs=(TensorSpec("z", (LATENT_DIM,)), TensorSpec("y", (NUM_CLASSES,))),
        outputs=("image",),
        sample_inputs=conditional_inputs,
        fields={"role": "toy generator"},
    )


def refiner_spec(name: str = "refiner", seed: int = 1) -> ExportSpec:
    """The toy two-output refiner with random weights."""
    module = ToyRefiner()
    variables = module.init(jax.random.PRNGKey(seed), refiner_inputs(1, 0, 0)["x"])

    def fn(variables, x):
        image, residual = module.apply(variables, x)
        return {"image": image, "residual": residual}

    return ExportSpec(
        name=name,
        fn=fn,
        variables=variables,
        inputs=(TensorSpec("x", (8, 8, 1)),),
        outputs=("image", "residual"),
        sample_inputs=refiner_inputs,
        min_psnr=15.0,
    )


def toy_bundle(
    tmp_path_factory: pytest.TempPathFactory, quant: str, two_models: bool = False
) -> Path:
    """A ``dcgan``-family bundle of the toy generator (plus the refiner if ``two_models``),
    exported once per test session (do not modify; copy it first)."""
    out = tmp_path_factory.getbasetemp() / "lwgen_export_toys" / f"{quant}_{int(two_models)}"
    if not out.is_dir():
        specs = [conditional_spec(), refiner_spec()] if two_models else [conditional_spec()]
        export_bundle(
            specs,
            out,
            family="dcgan",
            quant=quant,
            family_fields=CONDITIONAL_FIELDS,
            config_dict=TOY_CONFIG,
            source={"toy": True},
        )
    return out
