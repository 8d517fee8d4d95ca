"""Trains a model from an ml_collections config file.

  python launch/train.py --config=configs/dcgan_digits.py --workdir=runs/demo \
      [--config.num_train_steps=N]

Runs unchanged on CPU, GPU, TPU and multi-host pods: ``--multihost`` calls
``jax.distributed.initialize()``, which detects the coordinator and this process's rank on TPU
pods and under SLURM; elsewhere pass them (the same workdir on a shared filesystem for all):

  python launch/train.py --config=... --workdir=/shared/run --multihost \
      --coordinator_address=HOST:PORT --num_processes=2 --process_id=0   # and =1 on the other

An unknown ``--config.KEY`` is an error.
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
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "With --multihost: HOST:PORT of process 0 (default: detected)."
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "With --multihost: number of processes (default: detected)."
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "With --multihost: this process's rank (default: detected)."
)
flags.mark_flags_as_required(["config", "workdir"])
_PROCESS_FLAGS = ["coordinator_address", "num_processes", "process_id"]
flags.register_multi_flags_validator(
    ["multihost", *_PROCESS_FLAGS],
    lambda given: given["multihost"] or all(given[name] is None for name in _PROCESS_FLAGS),
    "--coordinator_address, --num_processes and --process_id need --multihost",
)


def main() -> None:
    if _MULTIHOST.value:
        # On CPU, cross-process collectives use gloo (jax's default for
        # jax_cpu_collectives_implementation).
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    logging.info("devices: %d (%d local)", jax.device_count(), jax.local_device_count())
    train(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    cli.run("train", main)
