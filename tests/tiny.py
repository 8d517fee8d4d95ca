"""Tiny configs of every registered family, used across tests (also importable from subprocesses).

`family_config` has one entry per family that ``lwgen.families.registry.names()`` lists (with the
toy family of ``tests/toy_family.py`` registered), so a new family without a tiny config here
fails the per-family training tests.
"""

import os

import jax
import jax.numpy as jnp

from lwgen.families.conditional_gan import gan_config, generator_module
from lwgen.families.objectives import distill_config


def tiny_gan_config(num_train_steps: int = 4):
    """Width-4 G and D on 16×16 digits, batch 8, checkpoints every 2 steps."""
    config = gan_config("digits", num_classes=10, image_shape=(16, 16, 1), base_width=4)
    config.model.generator.latent_dim = 8
    config.model.discriminator.num_blocks = 2
    config.num_train_steps = num_train_steps
    config.batch_size = 8
    config.train.update(log_every=1, checkpoint_every=2, sample_every=100, keep_checkpoints=5)
    return config


def tiny_distill_set(out_dir: str) -> str:
    """A 32-sample distillation set of a randomly initialised tiny generator (made once)."""
    from lwgen.data.distill_set import write_distill_set

    if os.path.isfile(os.path.join(out_dir, "manifest.json")):
        return out_dir
    generator = generator_module(tiny_gan_config())
    z, y = jnp.zeros((1, generator.latent_dim)), jnp.zeros((1, generator.num_classes))
    variables = generator.init(jax.random.PRNGKey(1), z, y)
    teacher = jax.jit(lambda z, y: generator.apply(variables, z, y))
    write_distill_set(teacher, out_dir, 32, 10, generator.latent_dim, batch_size=16, shard_size=32)
    return out_dir


def tiny_student_config(set_dir: str, num_train_steps: int = 4, **weights):
    """The tiny GAN as a TinyGAN student (base width 2) of ``set_dir``, with the real digits;
    ``weights`` are the ``distill`` loss weights (default: real-data terms at 0.1)."""
    config = tiny_gan_config(num_train_steps)
    config.model.family = "tinygan"
    config.model.generator.base_width = 2
    config.data.update(source="distill", path=set_dir)
    config.data.real_source = "digits"
    config.distill = distill_config(**(weights or {"real_adv": 0.1, "d_real_adv": 0.1}))
    return config


def tiny_diffusion_config(num_train_steps: int = 4, teacher_workdir: str | None = None):
    """Width-4 U-Net (two levels) on 16×16 digits, 50 timesteps, 4 DDIM steps, batch 8; with
    ``teacher_workdir``, a progressive-distillation student of it at 2 steps."""
    from lwgen.families.diffusion import diffusion_config

    config = diffusion_config("digits", num_classes=10, image_shape=(16, 16, 1), base_width=4)
    config.model.denoiser.update(channel_mults=(1, 2), embed_dim=8, num_groups=2)
    config.diffusion.update(num_timesteps=50, sample_steps=4)
    config.num_train_steps = num_train_steps
    config.batch_size = 8
    config.optim.warmup_steps = 1
    config.train.update(log_every=1, checkpoint_every=2, sample_every=100, keep_checkpoints=5)
    config.export.min_psnr = 10.0
    if teacher_workdir is not None:
        config.teacher = dict(workdir=teacher_workdir, mode="progressive", guidance=1.0)
        config.diffusion.update(sample_steps=2, guidance=0.0)
    return config


def tiny_diffusion_teacher(out_dir: str) -> str:
    """A tiny diffusion workdir trained for 2 steps (made once)."""
    from lwgen.train.loop import train

    if not os.path.isdir(os.path.join(out_dir, "checkpoints")):
        train(tiny_diffusion_config(2), out_dir)
    return out_dir


def tiny_style_config(num_train_steps: int = 4, teacher_workdir: str | None = None):
    """Width-(4, 8, 8) stylizer, one residual block, two scikit-image styles, 16-px crops of
    photos resized to 32 px, batch 4, narrow made VGG weights stopped at ``relu2_2``; with
    ``teacher_workdir``, a width-(2, 4, 4) student distilled from it."""
    from lwgen.families.style import student_config, style_config

    config = style_config(("brick", "grass"), crop_size=16)
    config.model.stylizer.update(widths=(4, 8, 8), num_res_blocks=1)
    config.style.image_size = 32
    config.vgg.update(weights="made", widths=(4, 4, 8, 8, 8))
    config.loss.update(style_layers=("relu1_2", "relu2_2"), style_layer_weights=(1.0, 1.0))
    config.data.photo_side = 32
    config.num_train_steps = num_train_steps
    config.batch_size = 4
    config.optim.warmup_steps = 1
    config.train.update(log_every=1, checkpoint_every=2, sample_every=100, keep_checkpoints=5)
    config.export.update(image_size=16, num_calibration=200, min_psnr=10.0)
    if teacher_workdir is not None:
        config = student_config(config, teacher_workdir)
        config.model.stylizer.update(widths=(2, 4, 4), num_res_blocks=1)
    return config


def tiny_style_teacher(out_dir: str) -> str:
    """A tiny style workdir trained for 2 steps (made once)."""
    from lwgen.train.loop import train

    if not os.path.isdir(os.path.join(out_dir, "checkpoints")):
        train(tiny_style_config(2), out_dir)
    return out_dir


def family_config(family: str, scratch_dir: str, num_train_steps: int = 4):
    """The tiny config of ``family``; ``scratch_dir`` holds what it needs (a distillation set).

    Raises:
      KeyError: for a family without a tiny config.
    """
    from tests.toy_family import toy_config

    makers = {
        "dcgan": lambda: tiny_gan_config(num_train_steps),
        "tinygan": lambda: tiny_student_config(
            tiny_distill_set(os.path.join(scratch_dir, "distill_set")), num_train_steps
        ),
        "toy": lambda: toy_config(num_train_steps),
        "diffusion": lambda: tiny_diffusion_config(
            num_train_steps,
            tiny_diffusion_teacher(os.path.join(scratch_dir, "diffusion_teacher")),
        ),
        "style": lambda: tiny_style_config(num_train_steps),  # students: test_style_family
    }
    return makers[family]()


def get_config():
    """Entry point for launchers: ``--config=tests/tiny.py``."""
    return tiny_gan_config()
