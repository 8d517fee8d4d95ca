"""Export of the upscaler family: one TFLite model per input size, and the bundle fields.

TFLite models have static shapes, while the network is fully convolutional: the bundle holds the
same weights exported once per low-resolution side in ``config.export.input_sizes`` (default 32
and 64), model ``upscaler_<side>``: ``lowres f32 [B, side, side, C] -> image f32
[B, side·scale, side·scale, C]``, images in ``[-1, 1]``. ``export/pi_upscale.py`` picks the model
whose side equals its images' (a generator's 32×32 samples, or photos resized to 64×64 for
64 → 256). ``bundle.json`` records ``scale``, ``channels`` and ``input_sizes``.

INT8 calibration and verification use low-resolution inputs as the model sees them in use:
bicubic reductions of random training crops, or, where the pool's images are too small for a crop
of ``side·scale`` (a data set's own 32×32 images), crops of ``side`` pixels of the images
themselves (what a generator of that data set hands the up-scaler when chained).
"""

from __future__ import annotations

import functools
from typing import Any

import ml_collections
import numpy as np

from lwgen.data import load_source
from lwgen.data.photos import random_crops
from lwgen.data.sr_pairs import SRPairSource, hr_pool, to_channels
from lwgen.export.spec import ExportSpec, TensorSpec
from lwgen.families.registry import Restored
from lwgen.models.sr import SuperResolution

UPSCALER = "upscaler"
MIN_PSNR_DB = 30.0  # INT8 vs JAX, images in [-1, 1]


def sr_module(config: ml_collections.ConfigDict) -> SuperResolution:
    """``SuperResolution(scale=data.scale, channels=data.channels, **model.upscaler)``."""
    return SuperResolution(
        scale=int(config.data.scale),
        channels=int(config.data.channels),
        **config.model.upscaler.to_dict(),
    )


def model_name(side: int) -> str:
    """The bundle model for ``side``×``side`` inputs: ``upscaler_<side>``."""
    return f"upscaler_{side}"


def _fn(module, variables, lowres) -> dict[str, Any]:
    return {"image": module.apply(variables, lowres)}


def sample_lowres(pool, data_config, side: int, num: int, seed: int, stream: int) -> np.ndarray:
    """``num`` low-resolution inputs of ``side`` pixels (see the module docstring), a pure
    function of ``(seed, stream)``: float32 ``[num, side, side, C]`` in ``[-1, 1]``."""
    scale, channels = int(data_config.scale), int(data_config.channels)
    crop = side * scale
    if crop <= min(min(image.shape[:2]) for _, image in pool):
        return SRPairSource(pool, crop, scale, channels).batch(stream, num, seed)["lowres"]
    return to_channels(random_crops(pool, side, num, seed, stream), channels)


def _sample_inputs(pool, data_config, side: int, num: int, seed: int, stream: int):
    return {"lowres": sample_lowres(pool, data_config, side, num, seed, stream)}


def export_specs(restored: Restored, batch: int = 1) -> list[ExportSpec]:
    """One spec per ``export.input_sizes`` side (see the module docstring); ``batch`` (the
    exporter's static batch) does not change them."""
    del batch
    config = restored.config
    module = sr_module(config)
    pool = hr_pool(config.data, "train", load_source)
    min_psnr = float(config.export.get("min_psnr", None) or MIN_PSNR_DB)
    return [
        ExportSpec(
            name=model_name(side),
            fn=functools.partial(_fn, module),
            variables=restored.variables[UPSCALER],
            inputs=(TensorSpec("lowres", (side, side, module.channels)),),
            outputs=("image",),
            sample_inputs=functools.partial(_sample_inputs, pool, config.data, side),
            min_psnr=min_psnr,
            fields={"input_size": side, "output_size": side * module.scale},
        )
        for side in sorted({int(s) for s in config.export.input_sizes})
    ]


def bundle_fields(restored: Restored) -> dict[str, Any]:
    """What ``export/pi_upscale.py`` needs: scale, channels, the input sides and their models;
    plus the architecture and training data for the record."""
    config = restored.config
    sides = sorted({int(s) for s in config.export.input_sizes})
    return {
        "scale": int(config.data.scale),
        "channels": int(config.data.channels),
        "input_sizes": sides,
        "models_by_size": {str(side): model_name(side) for side in sides},
        "upsample": str(config.model.upscaler.get("upsample", "depth_to_space")),
        "hr_source": str(config.data.get("hr_source", "photos")),
    }
