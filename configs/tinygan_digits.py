"""TinyGAN student on the digits: a thin DCGAN distilled from a teacher's samples (Chang & Lu 2020).

  python launch/train.py --config=configs/dcgan_digits_teacher.py --workdir=runs/teacher_digits
  python launch/make_distill_set.py --teacher_workdir=runs/teacher_digits --num=20000 \
      --out=runs/distill_digits
  python launch/train.py --config=configs/tinygan_digits.py --workdir=runs/tinygan_digits \
      --config.data.path=runs/distill_digits
  python export/export_bundle.py --workdir=runs/tinygan_digits --out=runs/tinygan_digits_int8

The student is the teacher's generator (``configs/dcgan_digits_teacher.py``, base width 64) at
base width 10: 57k parameters, 1/12 of the teacher's, built only from Dense, resize-nearest,
3×3 conv, folded BatchNorm, ReLU and tanh, which all convert to INT8 TFLite. The real digits
(``data.real_source``) feed TinyGAN's real-data terms and are the held-out split evaluation uses.
"""

import ml_collections

from lwgen.families.conditional_gan import gan_config
from lwgen.families.objectives import distill_config


def get_config() -> ml_collections.ConfigDict:
    """Student G base width 10, D base width 32, distillation set + real digits, batch 64."""
    config = gan_config("distill", num_classes=10, image_shape=(32, 32, 1), base_width=10)
    config.model.family = "tinygan"
    config.model.discriminator.base_width = 32
    config.data.real_source = "digits"
    config.data.real_path = ml_collections.FieldReference(None, field_type=str)
    config.distill = distill_config(pixel=1.0, adv=0.1, feat=1.0, real_adv=0.02, d_real_adv=0.2)
    config.num_train_steps = 3000
    config.batch_size = 64
    config.train.update(log_every=50, checkpoint_every=250, sample_every=250)
    return config
