"""The narrow knowledge-distillation student of the 4-step Fashion-MNIST diffusion model.

  python launch/train.py --config=configs/diffusion_fashion_narrow.py \
      --workdir=runs/diffusion_narrow [--config.num_train_steps=N]
  # another teacher: --config=configs/diffusion_fashion_narrow.py:runs/other/steps_4

A width-8 U-Net (half the teacher's width 16, the MobileGen seed's "×0.5 or less") regresses the
predictions of the progressive-distillation round ``runs/diffusion/steps_4`` (``make
demo-diffusion``) at the 4 timesteps it samples (teacher mode ``"predictions"``), unguided, like
its teacher. The config is read from the teacher's workdir
(``lwgen.families.diffusion_rounds.student_config``), so the teacher must exist; pass a different
one as the config argument after ``:`` (it is read when the config is built, so
``--config.teacher.workdir`` alone would keep the default teacher's settings).
``bench/diffusion_report.py --narrow_workdir=runs/diffusion_narrow`` scores it as INT8.
"""

import ml_collections

from lwgen.families.diffusion_rounds import student_config

DEFAULT_TEACHER = "runs/diffusion/steps_4"


def get_config(teacher_workdir: str | None = None) -> ml_collections.ConfigDict:
    """Width 8, 4 DDIM steps, no guidance or label dropout; trained from scratch like the
    teacher of ``configs/diffusion_fashion.py``: 2,400 steps at batch 64, Adam at 2e-3 after
    200 warm-up steps."""
    config = student_config(
        teacher_workdir or DEFAULT_TEACHER,
        mode="predictions",
        sample_steps=4,
        num_train_steps=2400,
        lr=2e-3,
        base_width=8,
    )
    config.diffusion.update(guidance=0.0, label_dropout=0.0)
    config.teacher.guidance = 0.0
    config.optim.warmup_steps = 200
    return config
