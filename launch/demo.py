"""The end-to-end demo that ``make demo`` runs: train, evaluate, export INT8, run the Pi script.

  python launch/demo.py --workdir=runs/demo [--config=configs/dcgan_digits.py]
      [--config.num_train_steps=N]

Writes ``WORKDIR/samples_int8.png`` (one row per class, made by ``export/pi_infer.py`` from the
INT8 bundle), ``WORKDIR/report.md`` and ``WORKDIR/report.json``.
"""

import os

from absl import flags
from ml_collections import config_flags

from lwgen import cli
from lwgen.demo import format_report, run_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(ROOT, "configs", "dcgan_digits.py"),
    "Experiment config file.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Output folder (resumed if it exists).")
_PER_CLASS = flags.DEFINE_integer("per_class", 100, "Generated samples per class for metrics.")


def main() -> None:
    pi_script = os.path.join(ROOT, "export", "pi_infer.py")
    report = run_demo(_CONFIG.value, _WORKDIR.value, pi_script, _PER_CLASS.value)
    print(format_report(report))


if __name__ == "__main__":
    cli.run("demo", main)
