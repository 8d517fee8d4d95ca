"""The CycleGAN demo that ``make demo-cyclegan`` runs: teacher, student, QAT, INT8, Pi translation.

  python launch/demo_cyclegan.py --root=runs/cyclegan [--config=configs/cyclegan_fashion.py]
      [--config.num_train_steps=N] [--config.student.num_train_steps=N]

Writes ``ROOT/grid.png`` (held-out inputs, translations and round trips, translated by
``export/pi_infer.py`` from the INT8 bundle of the QAT student), ``ROOT/report.md`` and
``ROOT/report.json``; rerun to resume.
"""

import os

from absl import flags
from ml_collections import config_flags

from lwgen import cli
from lwgen.demo_cyclegan import format_report, run_cyclegan_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(ROOT, "configs", "cyclegan_fashion.py"),
    "The teacher's experiment config file (with a student group).",
    lock_config=True,
)
_ROOT = flags.DEFINE_string("root", "runs/cyclegan", "Output folder (resumed if it exists).")
_COLUMNS = flags.DEFINE_integer("columns", 8, "Held-out images per grid row.")


def main() -> None:
    pi_script = os.path.join(ROOT, "export", "pi_infer.py")
    report = run_cyclegan_demo(_CONFIG.value, _ROOT.value, pi_script, columns=_COLUMNS.value)
    print(format_report(report))


if __name__ == "__main__":
    cli.run("demo_cyclegan", main)
