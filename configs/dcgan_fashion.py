"""Class-conditional DCGAN on Fashion-MNIST (IDX files, ``fashion_mnist_idx``) at 32×32×1.

  make fashion-mnist    # installs the Debian package dataset-fashion-mnist if the files are missing
  python launch/train.py --config=configs/dcgan_fashion.py --workdir=runs/dcgan_fashion \
      [--config.num_train_steps=N] [--config.data.data_dir=/usr/share/datasets/fashion-mnist]
  python launch/evaluate.py --workdir=runs/dcgan_fashion

The GAN baseline of the class-conditional diffusion model (``configs/diffusion_fashion.py``):
both are scored by the same Fashion-MNIST judge against the 10,000 test images.
"""

import ml_collections

from lwgen.data.idx import CLASS_NAMES
from lwgen.families.conditional_gan import gan_config


def get_config() -> ml_collections.ConfigDict:
    """60,000 train images (28×28 resized to 32×32), the demo's widths, 10,000 steps at batch 64."""
    config = gan_config("fashion_mnist_idx", num_classes=10, image_shape=(32, 32, 1), base_width=32)
    config.data.class_names = CLASS_NAMES
    config.num_train_steps = 10_000
    config.batch_size = 64
    config.train.checkpoint_every = 1000
    config.train.sample_every = 1000
    return config
