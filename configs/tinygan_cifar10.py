"""TinyGAN student on CIFAR-10 (TFDS ``cifar10``), distilled from ``dcgan_cifar10_teacher``.

  python launch/train.py --config=configs/dcgan_cifar10_teacher.py --workdir=runs/teacher_c10 \
      --config.data.data_dir=/path/to/tensorflow_datasets
  python launch/make_distill_set.py --teacher_workdir=runs/teacher_c10 --num=500000 \
      --out=runs/distill_c10
  python launch/train.py --config=configs/tinygan_cifar10.py --workdir=runs/tinygan_c10 \
      --config.data.path=runs/distill_c10 --config.data.data_dir=/path/to/tensorflow_datasets

The student generator has base width 48 (437k parameters, 1/16 of the 7.1M-parameter teacher, the
ratio of TinyGAN's BigGAN student). CIFAR-10's train split feeds the real-data terms; its test
split is the held-out split.
"""

import ml_collections

from lwgen.families.conditional_gan import gan_config
from lwgen.families.objectives import distill_config


def get_config() -> ml_collections.ConfigDict:
    """Student G base width 48, D base width 64, batch 128, 100k steps."""
    config = gan_config("distill", num_classes=10, image_shape=(32, 32, 3), base_width=48)
    config.model.family = "tinygan"
    config.model.discriminator.base_width = 64
    config.data.real_source = "cifar10"
    config.data.real_path = ml_collections.FieldReference(None, field_type=str)
    config.distill = distill_config(pixel=1.0, adv=0.1, feat=1.0, real_adv=0.02, d_real_adv=0.2)
    config.num_train_steps = 100_000
    config.batch_size = 128
    config.train.update(checkpoint_every=5000, sample_every=2000)
    return config
