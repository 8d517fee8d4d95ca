"""The text-to-image demo that ``make demo-text`` runs: cache, train, evaluate, export, Pi script.

  python launch/demo_text.py --workdir=runs/text/digits [--config=configs/textgan_digits.py]
      [--config.model.generator.fusion=film] [--config.num_train_steps=N]

Writes ``WORKDIR/prompts_heldout.png`` (one row per held-out prompt, made by
``export/pi_infer.py`` from the text bundle), ``WORKDIR/report.md`` and ``WORKDIR/report.json``.
"""

import os

from absl import flags
from ml_collections import config_flags

from lwgen import cli
from lwgen.demo_text import format_report, run_text_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(ROOT, "configs", "textgan_digits.py"),
    "Experiment config file.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/text/digits", "Output folder (resumed).")
_PER_CLASS = flags.DEFINE_integer("per_class", 100, "Generated images per class and prompt split.")


def main() -> None:
    pi_script = os.path.join(ROOT, "export", "pi_infer.py")
    report = run_text_demo(_CONFIG.value, _WORKDIR.value, pi_script, _PER_CLASS.value)
    print(format_report(report))


if __name__ == "__main__":
    cli.run("demo_text", main)
