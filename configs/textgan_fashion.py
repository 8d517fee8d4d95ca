"""Text-conditioned DCGAN on Fashion-MNIST (IDX files) at 32×32×1, prompted in English.

Captions: per class 36–48 framed names ("a photo of a pair of trainers", ...) and six
descriptions ("footwear for running and sports", ...), written without sight of the three held-out
paraphrases per class that training never sees ("a sporty running shoe", ...); all-MiniLM-L6-v2
sentence embeddings cached once. Judged against the 10,000 test images.

  make fashion-mnist
  python launch/train.py --config=configs/textgan_fashion.py --workdir=runs/textgan_fashion \
      [--config.model.generator.fusion=cross_attention] \
      [--config.data.data_dir=/usr/share/datasets/fashion-mnist]
  python launch/evaluate.py --workdir=runs/textgan_fashion
  python export/export_bundle.py --workdir=runs/textgan_fashion --out=runs/textgan_fashion/bundle
  python export/pi_infer.py --bundle=runs/textgan_fashion/bundle \
      --prompt "a sporty running shoe" --num 8 --out grid.png
"""

import ml_collections

from lwgen.data.idx import CLASS_NAMES
from lwgen.families.textgan import textgan_config


def get_config() -> ml_collections.ConfigDict:
    """60,000 training images, concatenation fusion (see ``configs/textgan_digits.py``), 5,000
    steps at batch 64."""
    config = textgan_config("fashion_mnist_idx", (32, 32, 1), fusion="concat")
    config.data.class_names = CLASS_NAMES
    config.num_train_steps = 5000
    config.batch_size = 64
    config.train.checkpoint_every = 1000
    config.train.sample_every = 1000
    return config
