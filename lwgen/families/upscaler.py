"""The ``upscaler`` family: a super-resolution network (×2 or ×4) trained on real photos.

One network, ``upscaler`` (``lwgen.models.sr.SuperResolution``, FSRCNN-like), learns to enlarge
bicubic-downsampled crops (source ``"sr_pairs"``, ``lwgen.data.sr_pairs``) back to the originals
with an L1 or MSE loss (``lwgen.losses.sr``); its EMA is evaluated and exported. Evaluation
(`evaluate`, `evaluate_bundle`) scores PSNR-Y and SSIM (``lwgen.eval.sr_metrics``) on the fixed
held-out tiles against bicubic enlargement. Export is ``lwgen.families.upscaler_export``.

Config: ``data`` (``source="sr_pairs"``, ``scale``, ``channels``, ``crop_size``, ``hr_source``,
``opencv_doc_dir``, ``folder``, ``eval_size``: the low-resolution side of the held-out tiles),
``model.upscaler`` (the `SuperResolution` fields other than ``scale`` and ``channels``, which
come from ``data``), ``train.loss``, ``optim``, ``export.input_sizes`` (one exported model per
input side).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lwgen.data import load_source
from lwgen.data.source import to_unit_range
from lwgen.data.sr_pairs import bicubic_upsample, downsample, eval_tiles, hr_pool, to_channels
from lwgen.errors import ConfigError
from lwgen.eval.sr_metrics import score_images
from lwgen.families.diffusion_core import optimizer
from lwgen.families.registry import Family, Restored, Trainer, register
from lwgen.families.upscaler_export import (
    UPSCALER,
    bundle_fields,
    export_specs,
    model_name,
    sr_module,
)
from lwgen.images import to_uint8
from lwgen.losses.sr import RECONSTRUCTION_LOSSES, psnr_from_mse, reconstruction_loss
from lwgen.models.sr import SCALES, UPSAMPLE_MODES
from lwgen.train.state import TrainState, create_train_state
from lwgen.train.steps import AXIS, pmean_metrics, update_ema, update_network

GRID_TILES = 4
EVAL_BATCH = 8


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks the data, model, loss and export entries of an up-scaler config.

    Raises:
      ConfigError: naming the first bad entry.
    """
    if "upscaler" not in config.model or "optim" not in config:
        raise ConfigError("model.family 'upscaler' needs config.model.upscaler and config.optim")
    if config.data.source != "sr_pairs":
        raise ConfigError(f"model.family 'upscaler' needs data.source 'sr_pairs', not "
                          f"{config.data.source!r}")  # fmt: skip
    if config.data.scale not in SCALES:
        raise ConfigError(f"data.scale must be one of {SCALES}, got {config.data.scale}")
    if config.model.upscaler.get("upsample", UPSAMPLE_MODES[0]) not in UPSAMPLE_MODES:
        raise ConfigError(f"model.upscaler.upsample must be one of {UPSAMPLE_MODES}")
    if config.train.get("loss", None) not in RECONSTRUCTION_LOSSES:
        raise ConfigError(f"train.loss must be one of {RECONSTRUCTION_LOSSES}")
    sizes = list(config.export.get("input_sizes", ()))
    if not sizes or min(sizes) < 1 or int(config.data.eval_size) < 1:
        raise ConfigError("export.input_sizes must list positive sides; data.eval_size > 0")


def upscaler_step(
    state: TrainState, batch: dict[str, jax.Array], *, trainer: Trainer, loss: str, ema_decay: float
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One up-scaler update on this device's shard (pmap-style; see ``lwgen.train.steps``).

    Args:
      state: replicated `TrainState` with network ``upscaler``.
      batch: ``lowres`` float32 ``[b, h, w, C]`` and ``image`` float32 ``[b, h·s, w·s, C]`` in
        ``[-1, 1]``.
      trainer: the bound `Trainer`.
      loss: ``train.loss`` (``lwgen.losses.sr.reconstruction_loss``).
      ema_decay: decay of the EMA that is evaluated and exported.

    Returns:
      The new state and device-averaged metrics (``loss``, ``l1``, ``mse``, ``grad_norm``) and
      ``psnr_db`` of the averaged ``mse``.
    """
    net = state.networks[UPSCALER]

    def loss_fn(params):
        pred = trainer.applies[UPSCALER](net.variables(params), batch["lowres"])
        value, aux = reconstruction_loss(pred, batch["image"], loss)
        return value, {"loss": value, **aux}

    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
    metrics["grad_norm"] = optax.tree.norm(jax.lax.pmean(grads, AXIS))
    net = update_network(net, grads, trainer.optimizers[UPSCALER])
    new_state = state.replace(
        step=state.step + 1,
        networks={UPSCALER: net},
        ema={UPSCALER: update_ema(state.ema[UPSCALER], net.params, ema_decay, state.step)},
    )
    metrics = pmean_metrics(metrics)
    return new_state, {**metrics, "psnr_db": psnr_from_mse(metrics["mse"])}


def _dummy_input(config: ml_collections.ConfigDict) -> jax.Array:
    side = int(config.data.crop_size) // int(config.data.scale)
    return jnp.zeros((1, side, side, int(config.data.channels)), jnp.float32)


def _init(trainer: Trainer, config: ml_collections.ConfigDict) -> TrainState:
    key, run_key = jax.random.split(jax.random.PRNGKey(config.seed))
    variables = trainer.modules[UPSCALER].init(key, _dummy_input(config))
    return create_train_state(run_key, {UPSCALER: variables}, trainer.optimizers, (UPSCALER,))


def inference_variables(state: TrainState) -> dict[str, Any]:
    """``{"upscaler": {"params": EMA params}}``."""
    return {UPSCALER: {"params": state.ema[UPSCALER]}}


def example_inputs(config: ml_collections.ConfigDict, num: int, seed: int) -> tuple[tuple, dict]:
    """``((lowres,), {})``: ``num`` low-resolution training crops (compression calibration)."""
    batch = load_source(config.data, "train").batch(0, num, seed)
    return (batch["lowres"],), {}


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
    """The up-scaler `Trainer` of ``config``."""
    module = sr_module(config)
    return Trainer(
        modules={UPSCALER: module},
        optimizers={UPSCALER: optimizer(config.optim, config.num_train_steps)},
        applies={UPSCALER: module.apply},
        init=functools.partial(_init, config=config),
        step=functools.partial(
            upscaler_step, loss=config.train.loss, ema_decay=config.optim.ema_decay
        ),
        inference_variables=inference_variables,
        example_inputs={UPSCALER: functools.partial(example_inputs, config)},
    )


def inference_shapes(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Abstract ``{"upscaler": {"params": ...}}``."""
    shapes = jax.eval_shape(sr_module(config).init, jax.random.PRNGKey(0), _dummy_input(config))
    return {UPSCALER: {"params": shapes["params"]}}


def heldout_pairs(data_config, lowres_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out evaluation pairs: ``(lowres f32 [N, s, s, C] in [-1, 1], truth uint8
    [N, s·scale, s·scale, C])`` from the `eval_tiles` of the held-out pool, ``s = lowres_size``."""
    scale, channels = int(data_config.scale), int(data_config.channels)
    pool = hr_pool(data_config, "heldout", load_source)
    image = to_channels(to_unit_range(eval_tiles(pool, lowres_size * scale)), channels)
    return downsample(image, scale), to_uint8(image)


def score_upscaler(run, data_config, lowres_size: int) -> dict[str, float | int]:
    """PSNR-Y and SSIM of ``run(lowres) -> images`` (float32 ``[N, H, W, C]`` in ``[-1, 1]``)
    and of bicubic enlargement on the held-out pairs, ``scale`` border pixels shaved.

    Returns:
      ``psnr_y_db``, ``ssim``, ``bicubic_psnr_y_db``, ``bicubic_ssim``, ``gain_db`` (PSNR-Y over
      bicubic), ``num_tiles``, ``lowres_size``.
    """
    scale = int(data_config.scale)
    lowres, truth = heldout_pairs(data_config, lowres_size)
    pred = np.concatenate([
        np.asarray(run(lowres[i : i + EVAL_BATCH])) for i in range(0, len(lowres), EVAL_BATCH)
    ])  # fmt: skip
    model = score_images(to_uint8(pred), truth, scale)
    bicubic = score_images(to_uint8(bicubic_upsample(lowres, scale)), truth, scale)
    return {
        **model,
        **{f"bicubic_{key}": value for key, value in bicubic.items()},
        "gain_db": model["psnr_y_db"] - bicubic["psnr_y_db"],
        "num_tiles": len(truth),
        "lowres_size": lowres_size,
    }


def evaluate(restored: Restored, per_class: int = 100, cache_dir: str | None = None) -> dict:
    """`score_upscaler` of the EMA network in JAX float32 at ``data.eval_size``
    (``per_class`` and ``cache_dir`` do not apply)."""
    del per_class, cache_dir
    config = restored.config
    apply = jax.jit(sr_module(config).apply)
    variables = restored.variables[UPSCALER]
    return score_upscaler(lambda x: apply(variables, x), config.data, int(config.data.eval_size))


def evaluate_bundle(
    bundle_dir: str, data_config, per_class: int = 100, cache_dir: str | None = None
) -> dict:
    """`score_upscaler` of the bundle's model for ``data.eval_size`` inputs (LiteRT, 1 thread).

    Raises:
      BundleError: if the bundle has no model for that input size.
    """
    from lwgen.export.metadata import load_bundle
    from lwgen.export.runtime import TFLiteRunner

    del per_class, cache_dir
    size = int(data_config.eval_size)
    runner = TFLiteRunner.from_bundle(load_bundle(bundle_dir), model_name(size))
    return score_upscaler(lambda x: runner(lowres=x)["image"], data_config, size)


def sample_grid(config: ml_collections.ConfigDict, variables) -> tuple[np.ndarray, int]:
    """``GRID_TILES`` held-out tiles, one row each: the input enlarged by nearest neighbour,
    bicubic, the up-scaler, the truth."""
    scale = int(config.data.scale)
    lowres, truth = heldout_pairs(config.data, int(config.data.eval_size))
    lowres, truth = lowres[:GRID_TILES], truth[:GRID_TILES]
    pred = np.asarray(sr_module(config).apply(variables[UPSCALER], lowres))
    nearest = lowres.repeat(scale, 1).repeat(scale, 2)
    columns = [nearest, bicubic_upsample(lowres, scale), pred, to_unit_range(truth)]
    return np.stack(columns, axis=1).reshape(-1, *truth.shape[1:]), len(truth)


def upscaler_config(scale: int, channels: int = 3) -> ml_collections.ConfigDict:
    """A complete up-scaler config that experiment files adjust.

    Defaults: 96×96 (×2) or 128×128 (×4) high-resolution photo crops, batch 16, L1 loss, Adam at
    2e-3 with warm-up, clipping and cosine decay, EMA 0.999; held-out tiles of 64 px
    low-resolution side; exported models for 32 and 64 px inputs (the generators' 32×32 images,
    and 64 → 256 for the timing goal).
    """
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_train_steps = 3000
    config.batch_size = 16
    config.model = dict(
        family="upscaler",
        upscaler=dict(features=32, shrink=16, num_maps=3, upsample="depth_to_space"),
    )
    config.data = dict(
        source="sr_pairs",
        hr_source="photos",
        scale=scale,
        channels=channels,
        crop_size=96 if scale == 2 else 128,
        eval_size=64,
        opencv_doc_dir=ml_collections.FieldReference(None, field_type=str),
        folder=ml_collections.FieldReference(None, field_type=str),
    )
    config.optim = dict(lr=2e-3, warmup_steps=100, grad_clip=1.0, ema_decay=0.999)
    config.train = dict(
        loss="l1", log_every=100, checkpoint_every=1000, keep_checkpoints=2, sample_every=1000
    )
    config.export = dict(quant="int8", num_calibration=256, batch=1, input_sizes=(32, 64))
    return config


FAMILY = register(
    Family(
        name="upscaler",
        validate_config=validate_config,
        make_trainer=make_trainer,
        inference_shapes=inference_shapes,
        sample_grid=sample_grid,
        evaluate=evaluate,
        export_specs=export_specs,
        bundle_fields=bundle_fields,
        evaluate_bundle=evaluate_bundle,
    )
)
