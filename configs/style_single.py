"""Johnson et al. 2016 single-style transfer network for *The Starry Night* (the baseline row of
``bench/style_report.py``).

  python launch/train.py --config=configs/style_single.py --workdir=runs/style/single
"""

import ml_collections

from lwgen.families.style import style_config


def get_config() -> ml_collections.ConfigDict:
    """One style, full width, 64-px crops of photos resized to 192 px, batch 4, 150 steps."""
    config = style_config(("starry_night",), crop_size=64)
    config.data.photo_side = 192
    config.batch_size = 4
    config.num_train_steps = 150
    config.train.update(log_every=50, checkpoint_every=150, sample_every=150)
    return config
