"""CycleGAN between two folders of your own photos, ``PATH/A/`` and ``PATH/B/`` (any size).

  python launch/train.py --config=configs/cyclegan_folder.py --workdir=runs/cyclegan_photos \
      --config.data.path=PATH [--config.data.image_size=64] [--config.num_train_steps=N]
  python export/export_bundle.py --workdir=runs/cyclegan_photos --out=runs/cyclegan_photos_int8
  python export/pi_infer.py --bundle=runs/cyclegan_photos_int8 --input=PHOTO_OR_FOLDER \
      --direction=a2b --out=translated/

Images are resized on their shorter side to ``data.load_size`` (9/8 of ``image_size``, as 286 for
256 in Zhu et al. 2017), randomly cropped to ``image_size`` and flipped; 20% of each folder is
held out for evaluation (cycle L1 only: there is no judge for your own domains).
"""

import ml_collections

from lwgen.families.cyclegan import cyclegan_config


def get_config() -> ml_collections.ConfigDict:
    """64×64 RGB crops, a width-16 ResNet generator with 6 blocks, batch 4."""
    config = cyclegan_config("unpaired_folder", (64, 64, 3), base_width=16, num_blocks=6)
    config.data.load_size = 72
    config.data.flip = True
    config.num_train_steps = 4000
    config.batch_size = 4
    config.train.update(log_every=100, checkpoint_every=500, sample_every=500)
    return config
