"""The ``diffusion`` family: class-conditional DDPM/DDIM with guidance and step distillation.

A U-Net denoiser (``lwgen.models.unet``, after Ho et al. 2020 App. B) learns ε or v
(``lwgen.losses.diffusion``) on a linear or cosine schedule (``lwgen.diffusion.schedules``) with
label dropout, and is sampled by DDIM or DDPM with classifier-free guidance
(``lwgen.diffusion.samplers``). A config with a ``teacher`` group trains a student: progressive
distillation (Salimans & Ho 2022) halves the teacher's steps; ``"predictions"`` distils into a
narrower U-Net. Training lives in ``lwgen.families.diffusion_core``, export in
``lwgen.families.diffusion_export``; this module adds sampling grids, evaluation and the config.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from lwgen.diffusion.samplers import sample
from lwgen.diffusion.schedules import Schedule
from lwgen.eval.conditional import evaluate_sampler
from lwgen.families import diffusion_core as core
from lwgen.families.diffusion_export import MIN_PSNR_DB, bundle_fields, export_specs
from lwgen.families.registry import Family, Restored, register

GRID_PER_CLASS = 10


def sample_grid(config: ml_collections.ConfigDict, variables) -> tuple[np.ndarray, int]:
    """``GRID_PER_CLASS`` samples per class with the configured sampler, one row per class."""
    num_classes = config.model.denoiser.num_classes
    labels = np.repeat(np.arange(num_classes), GRID_PER_CLASS)
    return core.draw_samples(config, variables, labels, seed=0), num_classes


def score_sampler(run, dims, data_config, per_class: int = 100, cache_dir=None, seed: int = 0):
    """`evaluate_sampler` of ``run(x_T f32 [B, H, W, C], y f32 [B, K], noise f32
    [num_steps, B, H, W, C]) -> images`` with ``dims = (image shape, num_classes, num_steps)``:
    the fixed latents are ``x_T`` (flattened),
    the step noise comes from ``numpy.random.default_rng(seed)`` chunk by chunk."""
    shape, num_classes, num_steps = dims
    rng = np.random.default_rng([seed, 1])

    def sample_fn(z: np.ndarray, y: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal((num_steps, len(z), *shape), dtype=np.float32)
        return np.asarray(run(z.reshape(-1, *shape), y, noise))

    return evaluate_sampler(
        sample_fn,
        num_classes,
        int(np.prod(shape)),
        data_config,
        per_class=per_class,
        cache_dir=cache_dir,
    )


def evaluate(
    restored: Restored, per_class: int = 100, cache_dir: str | None = None, **overrides
) -> dict:
    """Class accuracy, Fréchet distance, precision and recall (``lwgen.eval.conditional``) of the
    EMA denoiser with the configured sampler; ``overrides`` change ``sample_steps``, ``sampler``,
    ``eta`` or ``guidance`` (e.g. the teacher at 100, 50 and 20 DDIM steps)."""
    config = restored.config
    run = core.sampler_fn(config, **overrides)
    variables = restored.variables[core.DENOISER]
    num_steps = len(core.sampler_settings(config, **overrides)["timesteps"])
    dims = (core.image_shape(config), int(config.model.denoiser.num_classes), num_steps)
    metrics = score_sampler(
        lambda x_T, y, noise: run(variables, x_T, y, noise), dims, config.data, per_class, cache_dir
    )
    return {**metrics, "sample_steps": num_steps}


def bundle_sampler(bundle_dir: str, num_threads: int = 1):
    """``(run(x_T, y, noise) -> images, fields)``: the JAX sampler of
    ``lwgen.diffusion.samplers`` driving a bundle's TFLite denoiser with the schedule and
    settings stored in ``bundle.json``.

    ``run`` executes op by op under ``jax.disable_jit`` (the scan becomes a host loop) and calls
    the interpreter directly with numpy arrays. A ``jax.pure_callback`` from compiled code would
    run the interpreter on XLA's CPU thread, where any JAX call deadlocks a one-core machine."""
    import jax

    from lwgen.export.metadata import load_bundle
    from lwgen.export.runtime import TFLiteRunner
    from lwgen.models.unet import timestep_embedding

    bundle = load_bundle(bundle_dir)
    fields = bundle.metadata["fields"]
    runner = TFLiteRunner.from_bundle(bundle, core.DENOISER, num_threads)
    schedule = Schedule.from_alpha_bar(fields["schedule"]["name"], fields["schedule"]["alpha_bar"])

    def denoise(x_t, t, y):
        embedding = np.asarray(timestep_embedding(t, fields["embed_dim"]))
        out = runner(x_t=np.asarray(x_t), t_embedding=embedding, y=np.asarray(y))["output"]
        return jax.numpy.asarray(out)

    def run(x_T, y, noise):
        with jax.disable_jit():
            return sample(
                denoise,
                x_T,
                y,
                np.asarray(fields["timesteps"]),
                schedule,
                parameterization=fields["parameterization"],
                sampler=fields["sampler"],
                eta=fields["eta"],
                guidance=fields["guidance"],
                noise=noise,
            )

    return run, fields


def evaluate_bundle(
    bundle_dir: str, data_config, per_class: int = 100, cache_dir: str | None = None
) -> dict:
    """`evaluate` for an exported bundle: its TFLite denoiser in the same sampler, on the same
    inputs."""
    run, fields = bundle_sampler(bundle_dir)
    dims = (tuple(fields["image_shape"]), int(fields["num_classes"]), len(fields["timesteps"]))
    metrics = score_sampler(run, dims, data_config, per_class, cache_dir)
    return {**metrics, "sample_steps": len(fields["timesteps"])}


def diffusion_config(
    source: str, num_classes: int, image_shape: tuple[int, int, int], base_width: int = 32
) -> ml_collections.ConfigDict:
    """A complete class-conditional diffusion config that experiment files adjust.

    Defaults: cosine schedule over 1000 steps, v-prediction, label dropout 0.1, DDIM with 50
    steps, ``eta = 0`` and guidance ``w = 1``; Adam at 2e-3 with warm-up, clipping and cosine
    decay; EMA 0.999.

    Args:
      source: ``config.data.source``.
      num_classes: classes of the data set.
      image_shape: ``(H, W, C)``.
      base_width: the U-Net's ``base_width``.
    """
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_train_steps = 6000
    config.batch_size = 128
    config.model = dict(
        family="diffusion",
        denoiser=dict(
            num_classes=num_classes,
            base_width=base_width,
            channel_mults=(1, 2, 2),
            num_res_blocks=1,
            attention=False,
            embed_dim=32,
            norm="none",
        ),
    )
    config.data = dict(
        source=source,
        image_size=image_shape[0],
        channels=image_shape[2],
        data_dir=ml_collections.FieldReference(None, field_type=str),
        path=ml_collections.FieldReference(None, field_type=str),
        heldout_fraction=0.2,
    )
    config.diffusion = dict(
        schedule="cosine",
        num_timesteps=1000,
        parameterization="v",
        label_dropout=0.1,
        sampler="ddim",
        sample_steps=50,
        eta=0.0,
        guidance=1.0,
    )
    config.optim = dict(lr=2e-3, warmup_steps=200, grad_clip=1.0, ema_decay=0.999)
    config.train = dict(log_every=100, checkpoint_every=1000, keep_checkpoints=3, sample_every=1000)
    config.export = dict(quant="int8", num_calibration=256, batch=1, min_psnr=MIN_PSNR_DB)
    return config


FAMILY = register(
    Family(
        name="diffusion",
        validate_config=core.validate_config,
        make_trainer=core.make_trainer,
        inference_shapes=core.inference_shapes,
        sample_grid=sample_grid,
        evaluate=evaluate,
        export_specs=export_specs,
        bundle_fields=bundle_fields,
        evaluate_bundle=evaluate_bundle,
        sample=core.draw_samples,
    )
)
