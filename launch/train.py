"""Trains a model from an ml_collections config file.

  python launch/train.py --config=configs/dcgan_digits.py --workdir=runs/demo \
      [--config.num_train_steps=N]

Runs unchanged on CPU, GPU, TPU and multi-host pods (``--multihost`` calls
``jax.distributed.initialize()``); an unknown ``--config.KEY`` is an error.
"""

import jax
from absl import flags, logging
from ml_collections import config_flags

from lwgen import cli
from lwgen.train.loop import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (resumed if it has checkpoints).")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first.")
flags.mark_flags_as_required(["config", "workdir"])


def main() -> None:
    if _MULTIHOST.value:
        jax.distributed.initialize()
    logging.info("devices: %d (%d local)", jax.device_count(), jax.local_device_count())
    train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    cli.run("train", main)
