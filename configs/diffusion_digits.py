"""Class-conditional diffusion on scikit-learn's digits at 32×32×1: a quick run (a few minutes).

python launch/train.py --config=configs/diffusion_digits.py --workdir=runs/diffusion_digits
"""

import ml_collections

from lwgen.families.diffusion import diffusion_config


def get_config() -> ml_collections.ConfigDict:
    """1,797 digits (80% train), width-16 U-Net, 1,000 steps, DDIM in 16 steps."""
    config = diffusion_config("digits", num_classes=10, image_shape=(32, 32, 1), base_width=16)
    config.num_train_steps = 1000
    config.batch_size = 64
    config.diffusion.sample_steps = 16
    config.train.update(log_every=100, checkpoint_every=500, sample_every=500)
    return config
