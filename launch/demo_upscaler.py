"""The up-scaler demo that ``make demo-upscaler`` runs: train ×2 and ×4, export, report.

  python launch/demo_upscaler.py --root=runs/upscaler [--x2_steps=N] [--x4_steps=N] \
      [--latency_runs=20] [--opencv_doc_dir=DIR] [--upsample=depth_to_space|resize]

Writes ``ROOT/report/upscaler_report.md`` (bicubic vs float32 / INT8 / int8_io at ×2 and ×4 on
the held-out photos, with the issue-13 goals), ``ROOT/report/crops_x2.png`` and ``crops_x4.png``,
and ``ROOT/demo.json`` with the wall times; rerun to resume.
"""

import os

from absl import flags

from lwgen import cli
from lwgen.config_files import load_config
from lwgen.demo_upscaler import run_upscaler_demo
from lwgen.eval.sr_report import format_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_ROOT = flags.DEFINE_string("root", "runs/upscaler", "Output folder (resumed if it exists).")
_STEPS = {
    name: flags.DEFINE_integer(f"{name}_steps", steps, f"Training steps of the {name} model.")
    for name, steps in (("x2", 2000), ("x4", 3500))
}
_LATENCY_RUNS = flags.DEFINE_integer("latency_runs", 20, "Timed invocations per report row.")
_OPENCV_DOC = flags.DEFINE_string(
    "opencv_doc_dir", None, "opencv-doc examples data (default: lwgen.data.photos')."
)
_UPSAMPLE = flags.DEFINE_string("upsample", "depth_to_space", "model.upscaler.upsample.")


def main() -> None:
    configs = {
        name: load_config(
            os.path.join(ROOT, "configs", f"upscaler_{name}.py"),
            {
                "num_train_steps": steps.value,
                "data.opencv_doc_dir": _OPENCV_DOC.value,
                "model.upscaler.upsample": _UPSAMPLE.value,
            },
        )
        for name, steps in _STEPS.items()
    }
    report = run_upscaler_demo(configs, _ROOT.value, _LATENCY_RUNS.value)
    print(format_report(report))
    print(f"total wall time: {report['total_wall_s']:.0f} s")


if __name__ == "__main__":
    cli.run("demo_upscaler", main)
