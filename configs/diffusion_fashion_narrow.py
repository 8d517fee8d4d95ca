"""The narrow knowledge-distillation student of the 4-step Fashion-MNIST diffusion model.

  python launch/train.py --config=configs/diffusion_fashion_narrow.py \
      --workdir=runs/diffusion_narrow [--config.teacher.workdir=runs/diffusion/steps_4]

A width-8 U-Net (half the teacher's width 16, the MobileGen seed's "×0.5 or less") regresses the
predictions of the progressive-distillation round ``runs/diffusion/steps_4`` (``make
demo-diffusion``) at the 4 timesteps it samples (teacher mode ``"predictions"``), unguided like its
teacher. Training checks that the teacher's schedule and parameterization match these.
``bench/diffusion_report.py --narrow_workdir=runs/diffusion_narrow`` scores it as INT8.
"""

import os

import ml_collections

import lwgen

TEACHER_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffusion_fashion.py")


def get_config() -> ml_collections.ConfigDict:
    """Width 8, 4 DDIM steps, no guidance or label dropout, 600 steps at Adam 1e-3."""
    config = lwgen.load_config(TEACHER_CONFIG)
    config.model.denoiser.base_width = 8
    with config.unlocked():
        config.teacher = dict(workdir="runs/diffusion/steps_4", mode="predictions", guidance=0.0)
    config.diffusion.update(sample_steps=4, guidance=0.0, label_dropout=0.0)
    config.num_train_steps = 600
    config.optim.update(lr=1e-3, warmup_steps=50)
    config.train.update(checkpoint_every=300, sample_every=600)
    return config
