"""Export of the diffusion family: the denoiser as a TFLite model, its bundle fields, and the
scoring of an exported bundle.

The bundle holds one model, ``denoiser``: ``(x_t f32 [B, H, W, C], t_embedding f32
[B, embed_dim], y f32 [B, K]) -> output f32 [B, H, W, C]`` (ε or v). The sampler runs outside the
model, on the device (``export/pi_infer.py``), from the schedule and sampler settings stored in
``bundle.json`` (`bundle_fields`). INT8 calibration draws the representative dataset from the
model's own sampling trajectories, over all classes and, with guidance, the null class too; the
verification reports the error per timestep the sampler visits.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from lwgen.data.prior import class_names, cycled_labels
from lwgen.diffusion.samplers import sampler_noise
from lwgen.export.spec import ExportSpec, TensorSpec
from lwgen.families.diffusion_core import (
    DENOISER,
    denoiser_module,
    image_shape,
    sampler_fn,
    sampler_settings,
    schedule_of,
)
from lwgen.families.registry import Restored
from lwgen.models.unet import UNet, timestep_embedding

OUTPUT_PEAK_TO_PEAK = 8.0  # ε and v are ≈ N(0, 1): PSNR over ±4 standard deviations
MIN_PSNR_DB = 25.0
TRAJECTORY_CHAINS = 64  # sampling chains behind the representative dataset


def _denoiser_fn(module: UNet, variables, x_t, t_embedding, y) -> dict[str, jax.Array]:
    return {"output": module.apply(variables, x_t, t_embedding, y, train=False)}


def _trajectory_rows(restored: Restored, seed: int, stream: int):
    """``(x_t, t, y)`` rows of the states the configured sampler visits from ``TRAJECTORY_CHAINS``
    starts with classes cycled; with guidance, each state twice (class and null class)."""
    config = restored.config
    settings = sampler_settings(config)
    timesteps = settings["timesteps"]
    num_classes = int(config.model.denoiser.num_classes)
    labels = cycled_labels(TRAJECTORY_CHAINS, num_classes)
    x_T, noise = sampler_noise(
        seed * 1000 + stream, len(timesteps), (TRAJECTORY_CHAINS, *image_shape(config))
    )
    y = np.eye(num_classes, dtype=np.float32)[labels]
    states = np.asarray(
        sampler_fn(config, trajectory=True)(restored.variables[DENOISER], x_T, y, noise)
    )
    x_t = states.reshape(-1, *states.shape[2:])
    t = np.repeat(timesteps, TRAJECTORY_CHAINS)
    ys = np.tile(y, (len(timesteps), 1))
    if settings["guidance"] > 0.0:
        x_t, t, ys = (
            np.concatenate([x_t, x_t]),
            np.concatenate([t, t]),
            np.concatenate([ys, 0 * ys]),
        )
    return x_t.astype(np.float32), t.astype(np.int32), ys


def _draw(restored: Restored, cache: dict, num: int, seed: int, stream: int):
    """``num`` rows of `_trajectory_rows` (computed once per ``(seed, stream)`` into ``cache``),
    drawn without replacement where possible."""
    if (seed, stream) not in cache:
        cache[seed, stream] = _trajectory_rows(restored, seed, stream)
    x_t, t, y = cache[seed, stream]
    rng = np.random.default_rng([seed, stream, 7])
    index = rng.choice(len(t), size=num, replace=num > len(t))
    return x_t[index], t[index], y[index]


def _sample_inputs(restored: Restored, cache: dict, num: int, seed: int, stream: int):
    x_t, t, y = _draw(restored, cache, num, seed, stream)
    module = denoiser_module(restored.config)
    embedding = np.asarray(timestep_embedding(t, module.embed_dim))
    return {"x_t": x_t, "t_embedding": embedding, "y": y}


def _timestep_groups(restored: Restored, cache: dict, num: int, seed: int, stream: int):
    return _draw(restored, cache, num, seed, stream)[1]


def export_specs(restored: Restored, batch: int = 1) -> list[ExportSpec]:
    """One model, ``denoiser`` (see the module docstring), calibrated on sampling trajectories,
    its verification error also reported per timestep.

    ``batch`` (the exporter's static batch) does not change the spec.
    """
    del batch
    module = denoiser_module(restored.config)
    shape = image_shape(restored.config)
    cache: dict = {}
    return [
        ExportSpec(
            name=DENOISER,
            fn=functools.partial(_denoiser_fn, module),
            variables=restored.variables[DENOISER],
            inputs=(
                TensorSpec("x_t", shape),
                TensorSpec("t_embedding", (module.embed_dim,)),
                TensorSpec("y", (module.num_classes,)),
            ),
            outputs=("output",),
            sample_inputs=functools.partial(_sample_inputs, restored, cache),
            min_psnr=float(restored.config.export.get("min_psnr", MIN_PSNR_DB)),
            peak_to_peak=OUTPUT_PEAK_TO_PEAK,
            error_groups=("timestep", functools.partial(_timestep_groups, restored, cache)),
        )
    ]


def bundle_fields(restored: Restored) -> dict[str, Any]:
    """What ``export/pi_infer.py`` needs to sample: classes, image shape, the schedule's
    ``alpha_bar`` (float64 values as JSON numbers), the timestep embedding and the sampler."""
    config = restored.config
    module = denoiser_module(config)
    schedule = schedule_of(config)
    settings = sampler_settings(config)
    return {
        "class_names": class_names(config.data, module.num_classes),
        "num_classes": int(module.num_classes),
        "image_shape": [int(d) for d in image_shape(config)],
        "schedule": {
            "name": schedule.name,
            "num_timesteps": schedule.num_timesteps,
            "alpha_bar": [float(a) for a in schedule.alpha_bar],
        },
        "parameterization": settings["parameterization"],
        "embed_dim": int(module.embed_dim),
        "sampler": settings["sampler"],
        "timesteps": [int(t) for t in settings["timesteps"]],
        "eta": settings["eta"],
        "guidance": settings["guidance"],
    }
