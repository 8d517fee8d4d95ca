"""The CIFAR-10 teacher for black-box distillation (TinyGAN, Chang & Lu 2020): a wide DCGAN.

  python launch/train.py --config=configs/dcgan_cifar10_teacher.py --workdir=runs/teacher_c10 \
      --config.data.data_dir=/path/to/tensorflow_datasets

The generator is ``configs/dcgan_cifar10.py``'s at four times its width (base width 256, 7.1M
parameters); the discriminator keeps that config's width, since it is discarded after training.
"""

import ml_collections

from lwgen.families.conditional_gan import gan_config


def get_config() -> ml_collections.ConfigDict:
    """CIFAR-10, G base width 256, D base width 64, 100k steps at batch 128."""
    config = gan_config("cifar10", num_classes=10, image_shape=(32, 32, 3), base_width=256)
    config.model.discriminator.base_width = 64
    config.num_train_steps = 100_000
    config.batch_size = 128
    config.train.checkpoint_every = 5000
    config.train.sample_every = 2000
    return config
