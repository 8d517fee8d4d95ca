"""×2 one-channel up-scaler trained on Fashion-MNIST's own images (no high-resolution originals).

  python launch/train.py --config=configs/upscaler_fashion_x2.py \
      --workdir=runs/upscaler/fashion_x2 [--config.data.hr_data.data_dir=DIR]
  python export/export_bundle.py --workdir=runs/upscaler/fashion_x2 --out=BUNDLE

Fashion-MNIST has no high-resolution originals: the pairs are its 32×32 training images (28×28
resized, as the generators see them) and their 16×16 bicubic reductions; evaluation uses the
10,000 test images. Chained after a 32×32 Fashion-MNIST generator the model then enlarges
32 → 64, one octave above the scale it was trained at.
"""

import ml_collections

from lwgen.families.upscaler import upscaler_config


def get_config() -> ml_collections.ConfigDict:
    """Whole 32×32 images (flipped at random) → 16×16 inputs, batch 32, L1; exported for 16 and
    32 px inputs."""
    config = upscaler_config(scale=2, channels=1)
    config.data.update(hr_source="fashion_mnist_idx", crop_size=32, eval_size=16)
    config.data.hr_data = dict(
        source="fashion_mnist_idx",
        data_dir="/usr/share/datasets/fashion-mnist",
        image_size=32,
        channels=1,
    )
    config.batch_size = 32
    config.num_train_steps = 1500
    config.export.input_sizes = (16, 32)
    return config
