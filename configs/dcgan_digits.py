"""Class-conditional DCGAN on scikit-learn's handwritten digits at 32×32×1 (the demo).

  python launch/train.py --config=configs/dcgan_digits.py --workdir=runs/demo \
      [--config.num_train_steps=N]
"""

import ml_collections

from lwgen.families.conditional_gan import gan_config


def get_config() -> ml_collections.ConfigDict:
    """1,797 digits (80% train), hinge loss, spectral-norm projection D, resize-conv G."""
    config = gan_config("digits", num_classes=10, image_shape=(32, 32, 1), base_width=32)
    config.num_train_steps = 1500
    config.batch_size = 64
    return config
