"""Export of the ``cyclegan`` family: both generators as image → image TFLite models.

The bundle holds ``generator_ab`` (A → B) and ``generator_ba`` (B → A), each
``image f32 [B, H, W, C] -> image f32 [B, H, W, C]`` in ``[-1, 1]``. INT8 calibration draws real
training images of the model's input domain (stream 0), verification held-out images (stream 1).
``bundle.json`` fields name the directions, domains and image shape for ``export/pi_infer.py``
(``--direction a2b|b2a``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jax
import ml_collections
import numpy as np

from lwgen.data import load_source
from lwgen.data.source import to_unit_range
from lwgen.data.unpaired import UnpairedSource
from lwgen.export.spec import ExportSpec, TensorSpec
from lwgen.families import cyclegan_core as core
from lwgen.families.registry import Restored

INPUT_DOMAIN = {core.G_AB: "a", core.G_BA: "b"}


def generator_fn(module, variables, image) -> dict[str, jax.Array]:
    """``{"image": module(image)}`` in inference mode: an `ExportSpec` function."""
    return {"image": module.apply(variables, image, train=False)}


@functools.lru_cache(maxsize=4)
def _source(data_json: str, split: str) -> UnpairedSource:
    """One split of the data config given as JSON (the cache key), loaded once."""
    return load_source(ml_collections.ConfigDict(json.loads(data_json)), split)


def _sample_inputs(restored: Restored, domain: str, num: int, seed: int, stream: int):
    """``num`` images of ``domain``: training images (stream 0) or held-out images (stream 1),
    drawn without replacement where possible."""
    split = "train" if stream == 0 else "heldout"
    source = _source(restored.config.data.to_json(), split)
    images = source.center(domain)
    rng = np.random.default_rng([seed, stream, 3])
    index = rng.choice(len(images), size=num, replace=num > len(images))
    return {"image": to_unit_range(images[index])}


def export_specs(restored: Restored, batch: int = 1) -> list[ExportSpec]:
    """The two generators (see the module docstring); ``batch`` does not change the specs."""
    del batch
    config = restored.config
    nets = core.modules(config)
    shape = core.image_shape(config)
    min_psnr = float(config.export.get("min_psnr", 18.0))
    return [
        ExportSpec(
            name=name,
            fn=functools.partial(generator_fn, nets[name]),
            variables=restored.variables[name],
            inputs=(TensorSpec("image", shape),),
            outputs=("image",),
            sample_inputs=functools.partial(_sample_inputs, restored, domain),
            min_psnr=min_psnr,
        )
        for name, domain in INPUT_DOMAIN.items()
    ]


def domain_names(data_config) -> dict[str, str]:
    """Readable names of the two domains (Fashion-MNIST class names, or ``"A"``/``"B"``)."""
    if data_config.get("source", None) == "fashion_unpaired":
        from lwgen.data.idx import CLASS_NAMES

        return {
            "a": CLASS_NAMES[int(data_config.class_a)],
            "b": CLASS_NAMES[int(data_config.class_b)],
        }
    return {"a": "A", "b": "B"}


def bundle_fields(restored: Restored) -> dict[str, Any]:
    """``image_shape``, ``directions`` (``{"a2b": "generator_ab", "b2a": "generator_ba"}``),
    ``domains`` (names of A and B) and the generator ``kind`` and ``norm``."""
    config = restored.config
    return {
        "image_shape": [int(d) for d in core.image_shape(config)],
        "directions": {d: spec[0] for d, spec in core.DIRECTIONS.items()},
        "domains": domain_names(config.data),
        "generator": {
            "kind": str(config.model.generator.kind),
            "norm": str(config.model.generator.norm),
        },
    }


def bundle_translators(bundle_dir: str, num_threads: int = 1) -> dict[str, Any]:
    """``{"a2b", "b2a"}``: the bundle's TFLite generators as numpy functions of float32
    ``[N, H, W, C]`` images in ``[-1, 1]`` (LiteRT, ``num_threads`` threads)."""
    from lwgen.export.metadata import load_bundle
    from lwgen.export.runtime import TFLiteRunner

    bundle = load_bundle(bundle_dir)
    out = {}
    for direction, name in bundle.metadata["fields"]["directions"].items():
        runner = TFLiteRunner.from_bundle(bundle, name, num_threads)
        out[direction] = lambda x, runner=runner: runner(image=x)["image"]
    return out
