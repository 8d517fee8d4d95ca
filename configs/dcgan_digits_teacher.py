"""The digits teacher for black-box distillation (TinyGAN, Chang & Lu 2020): a wide DCGAN.

  python launch/train.py --config=configs/dcgan_digits_teacher.py --workdir=runs/teacher_digits
  python launch/make_distill_set.py --teacher_workdir=runs/teacher_digits --num=20000 \
      --out=runs/distill_digits

The generator is the demo DCGAN (``configs/dcgan_digits.py``) at twice its width (base width 64,
673k parameters, ≈2.7× the demo's); the teacher's discriminator is thrown away after training, so
it keeps the demo's width. Twice rather than four times because a 2-core CPU trains the ×4 model
at ≈6 s per step; on an accelerator raise ``model.generator.base_width`` to 128.
"""

import ml_collections

from lwgen.families.conditional_gan import gan_config


def get_config() -> ml_collections.ConfigDict:
    """Digits 32×32×1, G base width 64, D base width 32, batch 32, EMA decay 0.995."""
    config = gan_config("digits", num_classes=10, image_shape=(32, 32, 1), base_width=64)
    config.model.discriminator.base_width = 32
    config.num_train_steps = 3000
    config.batch_size = 32
    config.optim.ema_decay = 0.995
    config.train.update(log_every=50, checkpoint_every=100, sample_every=250)
    return config
