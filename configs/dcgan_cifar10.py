"""Class-conditional DCGAN on CIFAR-10 (TFDS ``cifar10``) at 32×32×3.

  python launch/train.py --config=configs/dcgan_cifar10.py --workdir=runs/cifar10 \
      --config.data.data_dir=/path/to/tensorflow_datasets

The data set must already be in ``data_dir`` (or downloadable): TFDS prepares it on first use.
"""

import ml_collections

from lwgen.families.conditional_gan import gan_config


def get_config() -> ml_collections.ConfigDict:
    """CIFAR-10, 50k train / 10k test (held-out), width 64, 100k steps at batch 128."""
    config = gan_config("cifar10", num_classes=10, image_shape=(32, 32, 3), base_width=64)
    config.num_train_steps = 100_000
    config.batch_size = 128
    config.train.checkpoint_every = 5000
    config.train.sample_every = 2000
    return config
