"""×4 super-resolution up-scaler (FSRCNN-like) trained on the offline real photos.

  python launch/train.py --config=configs/upscaler_x4.py --workdir=runs/upscaler/x4 \
      [--config.num_train_steps=N] [--config.data.channels=1] \
      [--config.model.upscaler.upsample=resize]
  python export/export_bundle.py --workdir=runs/upscaler/x4 --out=runs/upscaler/x4_int8
"""

import ml_collections

from lwgen.families.upscaler import upscaler_config


def get_config() -> ml_collections.ConfigDict:
    """128×128 photo crops → 32×32 inputs, batch 16, L1; exported for 32 and 64 px inputs
    (64 → 256 is the timing goal)."""
    return upscaler_config(scale=4)
