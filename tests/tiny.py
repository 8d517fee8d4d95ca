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


def tiny_unpaired_folder(out_dir: str) -> str:
    """``out_dir/A`` and ``out_dir/B``: six random PNGs each of varying sizes (made once)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for domain, shift in (("A", 0), ("B", 128)):
        os.makedirs(os.path.join(out_dir, domain), exist_ok=True)
        for i in range(6):
            path = os.path.join(out_dir, domain, f"{i}.png")
            if not os.path.isfile(path):
                size = (18 + 2 * i, 20)
                pixels = rng.integers(shift, shift + 128, (*size, 1), dtype=np.uint8)
                Image.fromarray(pixels[..., 0]).save(path)
    return out_dir


def tiny_cyclegan_config(folder: str, num_train_steps: int = 4, teacher_workdir=None):
    """Width-4 ResNet generators (one block) and one-layer PatchGANs on 16×16 crops of a tiny
    unpaired folder, batch 8, a pool of 4 (full after one step); with ``teacher_workdir``, a
    width-2 student of it, depthwise-separable throughout."""
    from lwgen.families.cyclegan import cyclegan_config
    from lwgen.families.cyclegan_student import student_config

    config = cyclegan_config("unpaired_folder", (16, 16, 1), base_width=4, num_blocks=1)
    config.data.update(path=folder, load_size=18, flip=True, heldout_fraction=0.34)
    config.model.discriminator.num_layers = 1
    config.cycle.pool_size = 4
    config.num_train_steps = num_train_steps
    config.train.update(log_every=1, checkpoint_every=2, sample_every=100, keep_checkpoints=5)
    config.export.update(min_psnr=10.0, num_calibration=200)
    if teacher_workdir is not None:
        student = dict(base_width=2, separable=True, separable_sampling=True)
        config = student_config(config, teacher_workdir, student, num_train_steps)
    return config


def tiny_cyclegan_teacher(out_dir: str, folder: str) -> str:
    """A tiny CycleGAN workdir trained for 2 steps (made once)."""
    from lwgen.train.loop import train

    if not os.path.isdir(os.path.join(out_dir, "checkpoints")):
        train(tiny_cyclegan_config(folder, 2), out_dir)
    return out_dir


def tiny_upscaler_config(num_train_steps: int = 4, scale: int = 2, channels: int = 3):
    """A width-4 up-scaler on 16×16 photo crops (×2, or ×4 on 32×32), batch 4; exported for
    16×16 inputs, evaluated on held-out tiles of 16 px low-resolution side."""
    from lwgen.families.upscaler import upscaler_config

    config = upscaler_config(scale, channels)
    config.model.upscaler.update(features=4, shrink=4, num_maps=1)
    config.data.update(crop_size=8 * scale, eval_size=16)
    config.num_train_steps = num_train_steps
    config.batch_size = 4
    config.optim.warmup_steps = 1
    config.train.update(log_every=1, checkpoint_every=2, sample_every=100, keep_checkpoints=5)
    config.export.update(input_sizes=(16,), min_psnr=20.0)
    return config


def tiny_bert_dir(out_dir: str, hidden: int = 16) -> str:
    """A made BERT folder in the all-MiniLM-L6-v2 layout (made once): 2 layers of width
    ``hidden``, random weights with Hugging Face tensor names, the real ``tokenizer.json``."""
    import json
    import zipfile

    import numpy as np
    from safetensors.numpy import save_file

    from lwgen.models.text import minilm_zip_path

    if os.path.isfile(os.path.join(out_dir, "model.safetensors")):
        return out_dir
    os.makedirs(out_dir, exist_ok=True)
    config = dict(vocab_size=30522, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=2 * hidden, max_position_embeddings=64, type_vocab_size=2,
                  layer_norm_eps=1e-12)  # fmt: skip
    rng = np.random.default_rng(0)
    shapes = {"embeddings.word_embeddings.weight": (30522, hidden),
              "embeddings.position_embeddings.weight": (64, hidden),
              "embeddings.token_type_embeddings.weight": (2, hidden)}  # fmt: skip
    dense = {"attention.self.query": hidden, "attention.self.key": hidden,
             "attention.self.value": hidden, "attention.output.dense": hidden,
             "intermediate.dense": 2 * hidden, "output.dense": hidden}  # fmt: skip
    for i in range(2):
        for name, out in dense.items():
            fan_in = 2 * hidden if name == "output.dense" else hidden
            shapes[f"encoder.layer.{i}.{name}.weight"] = (out, fan_in)
            shapes[f"encoder.layer.{i}.{name}.bias"] = (out,)
    norms = ["embeddings.LayerNorm"] + [
        f"encoder.layer.{i}.{n}.LayerNorm" for i in range(2) for n in ("attention.output", "output")
    ]
    tensors = {k: (0.2 * rng.standard_normal(v)).astype(np.float32) for k, v in shapes.items()}
    for norm in norms:
        tensors[norm + ".weight"] = np.ones(hidden, np.float32)
        tensors[norm + ".bias"] = np.zeros(hidden, np.float32)
    save_file(tensors, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f)
    with zipfile.ZipFile(minilm_zip_path()) as archive:
        tokenizer = archive.read("tokenizer.json")
    with open(os.path.join(out_dir, "tokenizer.json"), "wb") as f:
        f.write(tokenizer)
    return out_dir


def tiny_textgan_config(scratch_dir: str, num_train_steps: int = 4, fusion: str = "film"):
    """Width-4 text G and D on 16×16 captioned digits with the made 16-d BERT, batch 8."""
    from lwgen.families.textgan import textgan_config

    config = textgan_config("digits", (16, 16, 1), fusion=fusion)
    config.model.generator.update(text_dim=16, latent_dim=8, cond_dim=8, base_width=4,
                                  attention_dim=8)  # fmt: skip
    config.model.discriminator.update(cond_dim=8, base_width=4, num_blocks=2)
    config.data.captions.update(
        encoder_path=tiny_bert_dir(os.path.join(scratch_dir, "tiny_bert")),
        max_tokens=12,
        cache_dir=os.path.join(scratch_dir, "captions"),
        interpolate=False,
    )
    config.num_train_steps = num_train_steps
    config.batch_size = 8
    config.train.update(log_every=1, checkpoint_every=2, sample_every=100, keep_checkpoints=5)
    config.export.update(num_calibration=200, min_psnr=10.0)
    return config


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
        "cyclegan": lambda: tiny_cyclegan_config(
            tiny_unpaired_folder(os.path.join(scratch_dir, "unpaired")), num_train_steps
        ),
        "upscaler": lambda: tiny_upscaler_config(num_train_steps),
        "textgan": lambda: tiny_textgan_config(scratch_dir, num_train_steps),
        "style": lambda: tiny_style_config(num_train_steps),  # students: test_style_family
        "diffusion": lambda: tiny_diffusion_config(
            num_train_steps,
            tiny_diffusion_teacher(os.path.join(scratch_dir, "diffusion_teacher")),
        ),
    }
    return makers[family]()


def get_config():
    """Entry point for launchers: ``--config=tests/tiny.py``."""
    return tiny_gan_config()
