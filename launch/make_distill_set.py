"""Samples a trained lwgen teacher into a black-box distillation set (TinyGAN, Chang & Lu 2020).

    python launch/make_distill_set.py --teacher_workdir=DIR --num=N --out=SET_DIR \
        [--batch_size=256] [--shard_size=2048] [--seed=0]

Rerunning the same command after an interruption resumes from the last complete shard. A teacher
from elsewhere is used through ``lwgen.data.distill_set.write_distill_set`` directly.
"""

from __future__ import annotations

import os

import jax
from absl import flags

from lwgen import cli
from lwgen.data.distill_set import write_distill_set
from lwgen.families.conditional_gan import restore_generator

_WORKDIR = flags.DEFINE_string("teacher_workdir", None, "Training workdir of the teacher.")
_NUM = flags.DEFINE_integer("num", None, "Number of (z, y, image) samples to write.")
_OUT = flags.DEFINE_string("out", None, "Output directory of the distillation set.")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Samples per teacher call.")
_SHARD = flags.DEFINE_integer("shard_size", 2048, "Samples per TFRecord shard.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")


def make_set() -> dict:
    """Restores the teacher named by the flags and writes (or resumes) the set."""
    for flag in (_WORKDIR, _NUM, _OUT):
        if flag.value is None:
            raise ValueError(f"--{flag.name} is required")
    teacher = restore_generator(_WORKDIR.value)
    apply = jax.jit(teacher.generator.apply, static_argnames="train")
    params = sum(x.size for x in jax.tree.leaves(teacher.variables["params"]))
    info = {
        "workdir": os.path.abspath(_WORKDIR.value),
        "step": int(teacher.step),
        "params": int(params),
        "config": teacher.config.to_dict(),
    }
    return write_distill_set(
        lambda z, y: apply(teacher.variables, z, y, train=False),
        _OUT.value,
        num=_NUM.value,
        num_classes=teacher.generator.num_classes,
        latent_dim=teacher.generator.latent_dim,
        batch_size=_BATCH.value,
        shard_size=_SHARD.value,
        seed=_SEED.value,
        teacher_info=info,
    )


def main() -> None:
    manifest = make_set()
    print(f"{manifest['count']} samples in {len(manifest['shards'])} shards -> {_OUT.value}")


if __name__ == "__main__":
    cli.run("make_distill_set", main)
