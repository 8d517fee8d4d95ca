"""Few-step students of a trained diffusion workdir: progressive-distillation rounds and a narrow
student, each a normal (resumable) run of the one training loop.

Progressive distillation (Salimans & Ho 2022 Alg. 2): round ``k`` trains a student that samples
in ``N_k`` DDIM steps from the teacher of round ``k - 1`` sampled in ``2 N_k`` (``N_0`` comes from
the trained teacher), the student starting from its teacher's weights. The first round distils the
teacher with its classifier-free guidance weight (Meng et al. 2023), so the students sample
without guidance: one denoiser call per step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import ml_collections

from lwgen.errors import ConfigError
from lwgen.train.checkpoint import read_config
from lwgen.train.loop import train


def round_dir(root: str, steps: int) -> str:
    """``ROOT/steps_N``: the workdir of the round whose student samples in ``N`` steps."""
    return os.path.join(root, f"steps_{steps}")


def student_config(
    teacher_workdir: str,
    *,
    mode: str,
    sample_steps: int,
    num_train_steps: int,
    lr: float,
    base_width: int | None = None,
) -> ml_collections.ConfigDict:
    """The config of a student of ``teacher_workdir``: the teacher's config with a ``teacher``
    group, its own step count and learning rate, and (``"predictions"``) a width.

    Args:
      teacher_workdir: a trained diffusion workdir.
      mode: ``"progressive"`` (same architecture, half the teacher's steps) or
        ``"predictions"`` (regresses the teacher's outputs at the timesteps it will sample).
      sample_steps: the student's DDIM steps.
      num_train_steps: training steps of the student.
      lr: its peak learning rate.
      base_width: the student's U-Net ``base_width`` (``"predictions"`` only; None keeps it).

    Raises:
      ConfigError: if the teacher is not a diffusion workdir.
    """
    config = read_config(teacher_workdir)
    if config.model.family != "diffusion":
        raise ConfigError(f"{teacher_workdir!r} is a {config.model.family!r} workdir")
    guided = float(config.diffusion.guidance)
    distilled = "teacher" in config and config.teacher.mode == "progressive"
    with config.unlocked():
        config.teacher = dict(workdir=teacher_workdir, mode=mode, guidance=guided)
        config.diffusion.update(sample_steps=sample_steps)
        if mode == "progressive":
            config.diffusion.update(guidance=0.0, label_dropout=0.0)
        elif distilled:  # the teacher samples unguided: so does its student
            config.diffusion.update(label_dropout=0.0)
        if base_width is not None:
            config.model.denoiser.base_width = base_width
        config.num_train_steps = num_train_steps
        config.optim.update(
            lr=lr, warmup_steps=min(config.optim.warmup_steps, num_train_steps // 10)
        )
    return config


def progressive_rounds(
    teacher_workdir: str,
    root: str,
    student_steps: Sequence[int],
    num_train_steps: int,
    lr: float,
) -> list[str]:
    """Runs (or resumes) one progressive-distillation round per entry of ``student_steps``.

    Args:
      teacher_workdir: the trained teacher.
      root: folder of the rounds' workdirs (`round_dir`).
      student_steps: strictly decreasing step counts, each half the previous one (the first
        round's teacher samples in twice the first entry).
      num_train_steps: training steps per round.
      lr: peak learning rate of each round.

    Returns:
      The rounds' workdirs in order.

    Raises:
      ConfigError: if the steps do not halve from round to round.
    """
    steps = list(student_steps)
    if not steps or any(a != 2 * b for a, b in zip(steps, steps[1:], strict=False)):
        raise ConfigError(f"student steps must halve from round to round, got {steps}")
    workdirs, teacher = [], teacher_workdir
    for n in steps:
        workdir = round_dir(root, n)
        config = student_config(
            teacher, mode="progressive", sample_steps=n, num_train_steps=num_train_steps, lr=lr
        )
        train(config, workdir)
        workdirs.append(workdir)
        teacher = workdir
    return workdirs
