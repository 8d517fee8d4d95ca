"""×2 super-resolution up-scaler (FSRCNN-like) trained on the offline real photos.

  python launch/train.py --config=configs/upscaler_x2.py --workdir=runs/upscaler/x2 \
      [--config.num_train_steps=N] [--config.data.channels=1] \
      [--config.model.upscaler.upsample=resize]
  python export/export_bundle.py --workdir=runs/upscaler/x2 --out=runs/upscaler/x2_int8
"""

import ml_collections

from lwgen.families.upscaler import upscaler_config


def get_config() -> ml_collections.ConfigDict:
    """96×96 photo crops → 48×48 inputs, batch 16, L1; exported for 32 and 64 px inputs."""
    return upscaler_config(scale=2)
