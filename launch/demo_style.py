"""The style-transfer demo that ``make demo-style`` runs: teacher, student, QAT, INT8, Pi script.

  python launch/demo_style.py --root=runs/style [--config=configs/style_multi.py]
      [--student_config=configs/style_multi.py:student] [--single_config=configs/style_single.py]
      [--qat_steps=60] [--config.num_train_steps=N]

Writes ``ROOT/style_grid_int8.png`` (held-out photos stylized in every style by
``export/pi_infer.py`` from the student's INT8 bundle), ``ROOT/report.md`` and
``ROOT/report.json``; rerun to resume.
"""

import os

from absl import flags
from ml_collections import config_flags

from lwgen import cli
from lwgen.demo_style import format_report, run_style_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(CONFIGS, "style_multi.py"), "The multi-style teacher's config."
)
_STUDENT = config_flags.DEFINE_config_file(
    "student_config", os.path.join(CONFIGS, "style_multi.py:student"), "The student's config."
)
_SINGLE = config_flags.DEFINE_config_file(
    "single_config", os.path.join(CONFIGS, "style_single.py"), "The single-style config."
)
_ROOT = flags.DEFINE_string("root", "runs/style", "Output folder (resumed if it exists).")
_QAT_STEPS = flags.DEFINE_integer("qat_steps", 60, "Quantization-aware fine-tuning steps.")


def main() -> None:
    pi_script = os.path.join(ROOT, "export", "pi_infer.py")
    report = run_style_demo(
        _ROOT.value, pi_script, _CONFIG.value, _SINGLE.value, _STUDENT.value, _QAT_STEPS.value
    )
    print(format_report(report))


if __name__ == "__main__":
    cli.run("demo_style", main)
