"""The diffusion demo that ``make demo-diffusion`` runs: train, distil, export INT8, Pi sampler.

  python launch/demo_diffusion.py --root=runs/diffusion [--config=configs/diffusion_fashion.py]
      [--rounds=8,4] [--round_train_steps=300] [--config.num_train_steps=N]

Writes ``ROOT/samples_int8.png`` (one row per class, sampled by ``export/pi_infer.py`` from the
INT8 bundle of the last round), ``ROOT/report.md`` and ``ROOT/report.json``; rerun to resume.
"""

import os

from absl import flags
from ml_collections import config_flags

from lwgen import cli
from lwgen.demo_diffusion import format_report, run_diffusion_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(ROOT, "configs", "diffusion_fashion.py"),
    "The teacher's experiment config file.",
    lock_config=True,
)
_ROOT = flags.DEFINE_string("root", "runs/diffusion", "Output folder (resumed if it exists).")
_ROUNDS = flags.DEFINE_list("rounds", ["8", "4"], "Student steps per distillation round.")
_ROUND_STEPS = flags.DEFINE_integer("round_train_steps", 300, "Training steps per round.")
_PER_CLASS = flags.DEFINE_integer("per_class", 100, "Samples per class for the metrics.")


def main() -> None:
    pi_script = os.path.join(ROOT, "export", "pi_infer.py")
    rounds = [int(n) for n in _ROUNDS.value]
    report = run_diffusion_demo(
        _CONFIG.value,
        _ROOT.value,
        pi_script,
        rounds=rounds,
        round_train_steps=_ROUND_STEPS.value,
        per_class=_PER_CLASS.value,
    )
    print(format_report(report))


if __name__ == "__main__":
    cli.run("demo_diffusion", main)
