"""The ``style`` family: fast neural style transfer, one or many styles in one network.

Training lives in ``lwgen.families.style_core`` (Johnson et al. 2016 perceptual losses,
conditional instance norm of Dumoulin et al. 2017, teacher → student distillation). This module
adds the base config, the sample grid, the evaluation on held-out photos (content and style loss,
mean over styles, as in Gatys et al. 2016 eqs. 1 and 5) and the export: one model ``stylizer``,
``(image f32 [B, S, S, 3] in [-1, 1], style f32 [B, K] one-hot) -> image f32 [B, S, S, 3]``,
with the style names in ``bundle.json`` (``export/pi_infer.py --style NAME``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lwgen.data.photo_crops import load_photo_crops, resize_shorter_side, resized_photos
from lwgen.export.spec import ExportSpec, TensorSpec
from lwgen.families import style_core as core
from lwgen.families.registry import Family, Restored, register
from lwgen.losses import perceptual
from lwgen.models.style import equalize_norm_inputs
from lwgen.models.vgg import VGG16_WIDTHS

GRID_PHOTOS = 4
# INT8 against JAX on the verification photos, with `export_variables` and the folded norm of
# `lwgen.models.layers.ConditionalInstanceNorm`: the demo's teacher measured 30.1 dB (26.2 dB
# unfolded, 19.9 dB before equalisation) and its student 35.7 dB (32.0 dB unfolded).
MIN_PSNR_DB = 28.0
# `lwgen.models.style.bound_norm_input` bounds in kernel norms, chosen on the demo's data. 500-step
# teachers, looked at on 4 held-out photos × 6 styles: at 3 or 6 they turned posterised, at 8 or
# 10 they kept content and style without droplets; unclipped, white blobs grew over smooth
# regions. 600-step students of a 500-step clip-8 teacher, INT8 vs their float on 7 held-out
# photos × 6 styles (LPIPS): clip 8: 0.039 at 43.5 dB, 4: 0.026 at 45.0 dB (float vs teacher
# 0.208, 0.223).
NORM_INPUT_CLIP = 8.0
STUDENT_NORM_INPUT_CLIP = 4.0
# Calibration photos per style for `export_variables` (from the converter's calibration stream).
EQUALIZE_PER_STYLE = 2
Stylize = Callable[[np.ndarray, np.ndarray], np.ndarray]


def export_size(config: ml_collections.ConfigDict) -> int:
    """Side of the exported and evaluated images (``export.image_size``)."""
    return int(config.export.get("image_size", 256))


def center_square(photo: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[H, W, 3]`` → float32 ``[size, size, 3]`` in ``[-1, 1]``: shorter side resized to
    ``size``, centre cropped."""
    image = resize_shorter_side(photo, size)
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top : top + size, left : left + size].astype(np.float32) / 127.5 - 1.0


def heldout_photos(config: ml_collections.ConfigDict, size: int) -> tuple[list[str], np.ndarray]:
    """``(names, float32 [N, size, size, 3])`` of the held-out photos (evaluation only)."""
    folders = (config.data.get("opencv_doc_dir"), config.data.get("path"))
    photos = resized_photos("heldout", *folders, size)
    return [n for n, _ in photos], np.stack([center_square(p, size) for _, p in photos])


def jax_stylize(config: ml_collections.ConfigDict, variables) -> Stylize:
    """``stylize(images f32 [B, H, W, 3], styles f32 [B, K]) -> f32 [B, H, W, 3]`` of the
    stylizer in JAX (jitted, inference mode)."""
    module = core.stylizer_module(config)
    return jax.jit(lambda x, s: module.apply(variables, x, s))


def stylize_all(stylize: Stylize, images: np.ndarray, num_styles: int) -> np.ndarray:
    """float32 ``[num_styles, N, H, W, 3]``: every image in every style, one image per call
    (batch 1, as on the device)."""
    eye = np.eye(num_styles, dtype=np.float32)
    return np.stack(
        [
            np.concatenate([np.asarray(stylize(x[None], eye[s][None])) for x in images])
            for s in range(num_styles)
        ]
    )


@functools.lru_cache(maxsize=2)
def _scorer(config_json: str):
    """A jitted ``score(content, outputs, styles) -> (content loss, style loss)`` batch means
    with the VGG, layers and target Grams of the config (cached per config)."""
    config = ml_collections.ConfigDict(json.loads(config_json))
    vgg_module, vgg_vars = core.vgg_network(config)
    weights = core.loss_weights(config)
    grams = core.style_grams(config, (vgg_module, vgg_vars))

    @jax.jit
    def score(content, out, style):
        feats, content_feats = vgg_module.apply(vgg_vars, out), vgg_module.apply(vgg_vars, content)
        c = perceptual.content_loss(
            feats[weights.content_layer], content_feats[weights.content_layer]
        )
        g = [perceptual.gram_matrix(feats[layer]) for layer in weights.style_layers]
        s = perceptual.style_loss(g, core.select_grams(grams, style), weights.style_layer_weights)
        return c.mean(), s.mean()

    return score


def score_outputs(config: ml_collections.ConfigDict, images, outputs) -> dict[str, float]:
    """Content loss (Gatys eq. 1, Johnson eq. 2) and style loss (Gatys eq. 5) of ``outputs``
    (``[K, N, H, W, 3]``, `stylize_all`) against ``images`` and each style, means over photos
    and styles, with the config's VGG, layers and layer weights."""
    score = _scorer(config.to_json())
    num_styles = len(outputs)
    results = [
        score(images, out, jnp.asarray(np.eye(num_styles, dtype=np.float32)[[s] * len(images)]))
        for s, out in enumerate(outputs)
    ]
    content, style = np.mean([[float(c), float(s)] for c, s in results], axis=0)
    return {"content_loss": float(content), "style_loss": float(style)}


def evaluate_stylize(config: ml_collections.ConfigDict, stylize: Stylize) -> dict[str, float]:
    """`score_outputs` of ``stylize`` on the held-out photos at `export_size`."""
    _, images = heldout_photos(config, export_size(config))
    outputs = stylize_all(stylize, images, int(config.model.stylizer.num_styles))
    return {**score_outputs(config, images, outputs), "num_photos": len(images)}


def evaluate(restored: Restored, per_class: int = 100, cache_dir: str | None = None) -> dict:
    """Held-out content and style loss of the stylizer (``per_class``/``cache_dir`` unused)."""
    del per_class, cache_dir
    variables = restored.variables[core.STYLIZER]
    return evaluate_stylize(restored.config, jax_stylize(restored.config, variables))


def tflite_stylize(bundle_dir: str, num_threads: int = 1) -> tuple[Stylize, dict]:
    """``(stylize, bundle.json)`` of a bundle's TFLite ``stylizer``."""
    from lwgen.export.metadata import load_bundle
    from lwgen.export.runtime import TFLiteRunner

    bundle = load_bundle(bundle_dir)
    runner = TFLiteRunner.from_bundle(bundle, core.STYLIZER, num_threads)
    return (lambda x, s: runner(image=x, style=s)["image"]), bundle.metadata


def evaluate_bundle(bundle_dir: str, data_config, per_class: int = 100, cache_dir=None) -> dict:
    """`evaluate` of a bundle's TFLite stylizer (its training config from ``bundle.json``)."""
    del data_config, per_class, cache_dir
    stylize, metadata = tflite_stylize(bundle_dir)
    return evaluate_stylize(ml_collections.ConfigDict(metadata["config"]), stylize)


def sample_grid(config: ml_collections.ConfigDict, variables) -> tuple[np.ndarray, int]:
    """Row 0: ``GRID_PHOTOS`` held-out photos at the training crop size; then one row per style."""
    _, images = heldout_photos(config, int(config.data.image_size))
    images = images[:GRID_PHOTOS]
    num_styles = int(config.model.stylizer.num_styles)
    outputs = stylize_all(jax_stylize(config, variables[core.STYLIZER]), images, num_styles)
    return np.concatenate([images[None], outputs]).reshape(-1, *images.shape[1:]), num_styles + 1


def _sample_inputs(config, num: int, seed: int, stream: int) -> dict[str, np.ndarray]:
    """Content crops of the training photos at the export size, styles cycled from ``seed``."""
    data = {**config.data.to_dict(), "image_size": export_size(config)}
    data["photo_side"] = max(int(data.get("photo_side", 256)), export_size(config))
    crops = load_photo_crops(data, "train").batch(stream, num, seed)["image"]
    style = core.style_one_hot(seed + stream, num, int(config.model.stylizer.num_styles))
    return {"image": crops, "style": np.asarray(style)}


def _stylizer_fn(module, variables, image, style) -> dict[str, jax.Array]:
    return {"image": module.apply(variables, image, style)}


def export_variables(config: ml_collections.ConfigDict, variables: dict) -> dict:
    """The stylizer's ``variables`` for export at ``export_size(config)``: with
    ``export.equalize`` (default on), every conv that feeds an instance norm rescaled to unit
    channel spread on ``EQUALIZE_PER_STYLE`` calibration photos per style
    (``lwgen.models.style.equalize_norm_inputs``: the same float function, the INT8 statistics
    of all channels in one range). On the previous demo's student it took INT8 vs float LPIPS
    from 0.336 to 0.227 and PSNR from 23.3 to 26.3 dB on the held-out photos. A network with
    ``model.stylizer.norm_input_clip`` is exported as trained (its clip bounds the range)."""
    module = core.stylizer_module(config)
    clipped = module.norm_input_clip > 0
    if clipped or not config.export.get("equalize", True):  # saved before the option: on
        return variables
    inputs = _sample_inputs(config, EQUALIZE_PER_STYLE * module.num_styles, 0, 0)
    return equalize_norm_inputs(module, variables, inputs["image"], inputs["style"])


def stylizer_spec(restored: Restored, size: int | None = None) -> ExportSpec:
    """The ``stylizer`` `ExportSpec` at ``size`` (default `export_size`); the network is fully
    convolutional, so one trained workdir exports at any side divisible by 4."""
    config = restored.config
    size = size or export_size(config)
    sized = ml_collections.ConfigDict(config.to_dict())
    sized.export.image_size = size
    module = core.stylizer_module(config)
    return ExportSpec(
        name=core.STYLIZER,
        fn=functools.partial(_stylizer_fn, module),
        variables=export_variables(sized, restored.variables[core.STYLIZER]),
        inputs=(TensorSpec("image", (size, size, 3)), TensorSpec("style", (module.num_styles,))),
        outputs=("image",),
        sample_inputs=functools.partial(_sample_inputs, sized),
        min_psnr=float(config.export.get("min_psnr", MIN_PSNR_DB)),
    )


def export_specs(restored: Restored, batch: int = 1) -> list[ExportSpec]:
    """One model, ``stylizer`` (see the module docstring); ``batch`` does not change it."""
    del batch
    return [stylizer_spec(restored)]


def bundle_fields(restored: Restored) -> dict[str, Any]:
    """``style_names`` (in one-hot order), ``num_styles`` and ``image_shape``."""
    names = [str(n) for n in restored.config.style.names]
    size = export_size(restored.config)
    return {"style_names": names, "num_styles": len(names), "image_shape": [size, size, 3]}


def style_config(names: tuple[str, ...], crop_size: int = 96) -> ml_collections.ConfigDict:
    """A complete multi-style config that experiment files adjust.

    Defaults: the Johnson et al. 2016 network with conditional instance norm; content loss at
    ``relu2_2``, style loss at ``relu1_2, relu2_2, relu3_3`` (VGG16 stopped there); Adam at 2e-3
    (Johnson et al.'s 1e-3 is for 40k steps) with warm-up, clipping and cosine decay; EMA 0.99;
    ReLU6 after every norm, norm inputs clipped at ``NORM_INPUT_CLIP`` kernel norms
    (`lwgen.models.style.bound_norm_input`: no droplets) and a straight-through clip on the output
    (`lwgen.models.style.output_clip`: no white blobs); INT8 export at 256².

    Args:
      names: catalogue styles (``lwgen.data.styles.STYLES``), one-hot order.
      crop_size: training crop side (``data.image_size``).
    """
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_train_steps = 1000
    config.batch_size = len(names)
    config.model = dict(
        family="style",
        stylizer=dict(
            num_styles=len(names),
            widths=(32, 64, 128),
            num_res_blocks=5,
            upsample="resize_conv",
            activation="relu6",
            norm_input_clip=NORM_INPUT_CLIP,
            output="clip",
        ),
    )
    config.style = dict(names=tuple(names), image_size=256)
    config.vgg = dict(
        weights="imagenet", path=ml_collections.FieldReference(None, field_type=str),
        widths=VGG16_WIDTHS,
    )  # fmt: skip
    config.loss = dict(
        content_layer="relu2_2",
        style_layers=("relu1_2", "relu2_2", "relu3_3"),
        style_layer_weights=(1.0, 1.0, 1.0),
        content_weight=1.0,
        style_weight=1.0,  # 2.0 lost the content within 150 steps (6 styles, 64 px)
        tv_weight=10.0,
    )
    config.data = dict(
        source="photos",
        image_size=crop_size,
        photo_side=256,
        opencv_doc_dir=ml_collections.FieldReference(None, field_type=str),
        path=ml_collections.FieldReference(None, field_type=str),
    )
    config.optim = dict(lr=2e-3, warmup_steps=50, grad_clip=10.0, ema_decay=0.99)
    config.train = dict(log_every=50, checkpoint_every=500, keep_checkpoints=2, sample_every=500)
    config.export = dict(
        quant="int8", num_calibration=200, batch=1, min_psnr=MIN_PSNR_DB, image_size=256,
        equalize=True,  # see `export_variables`
    )  # fmt: skip
    return config


def student_config(
    teacher_config: ml_collections.ConfigDict, teacher_workdir: str
) -> ml_collections.ConfigDict:
    """The distilled student of a teacher config: widths (16, 32, 64), 3 residual blocks, trained
    on the teacher's outputs (pixel + perceptual distillation, ``config.teacher``), with every
    norm input clipped at ``STUDENT_NORM_INPUT_CLIP`` kernel norms
    (`lwgen.models.style.bound_norm_input`: a tighter INT8 range than the teacher's)."""
    config = ml_collections.ConfigDict(teacher_config.to_dict())
    config.model.stylizer.update(
        widths=(16, 32, 64), num_res_blocks=3, norm_input_clip=STUDENT_NORM_INPUT_CLIP
    )
    config.teacher = dict(workdir=teacher_workdir, pixel_weight=10.0, perceptual_weight=1.0)
    return config


FAMILY = register(
    Family(
        name="style",
        validate_config=core.validate_config,
        make_trainer=core.make_trainer,
        inference_shapes=core.inference_shapes,
        sample_grid=sample_grid,
        evaluate=evaluate,
        export_specs=export_specs,
        bundle_fields=bundle_fields,
        evaluate_bundle=evaluate_bundle,
    )
)
