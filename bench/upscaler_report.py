"""Up-scaler report: bicubic vs the up-scaler in float32, INT8 and int8_io, on held-out photos.

    python bench/upscaler_report.py --workdirs=x2:runs/upscaler/x2,x4:runs/upscaler/x4 \\
        --out=runs/upscaler/report [--latency_runs=20]

Each ``NAME:WORKDIR`` (a trained ``upscaler`` workdir) gives four rows: bicubic, and the
up-scaler exported as float32, int8 and int8_io (``OUT/bundles/NAME_QUANT``). Columns: params,
MACs per 64×64 input, file bytes, ms per image (64×64 input, batch 1, 1 thread), PSNR-Y, SSIM,
gain over bicubic, Edge TPU coverage of the int8_io graph; LPIPS is omitted (no LPIPS network on
this branch). Writes ``OUT/upscaler_report.md`` and ``.json`` and ``OUT/crops_NAME.png``
(held-out tiles: low-res input, bicubic, float32, INT8, truth); the goals of issue 13 are
checked on the ``x4`` workdir (``lwgen.eval.sr_report``). Errors print one line on stderr and
exit with code 2.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

# ruff: noqa: E402 (TensorFlow must see the variable above)
from absl import flags

from lwgen import cli
from lwgen.errors import ConfigError
from lwgen.eval.sr_report import format_report, upscaler_report

flags.DEFINE_list("workdirs", None, "NAME:WORKDIR pairs of trained upscaler workdirs.")
flags.DEFINE_string("out", None, "Report folder (bundles/, upscaler_report.md/.json, crops).")
flags.DEFINE_integer("latency_runs", 20, "Timed invocations per row.", lower_bound=1)
flags.mark_flags_as_required(["workdirs", "out"])
FLAGS = flags.FLAGS


def main() -> None:
    pairs = [item.split(":", 1) for item in FLAGS.workdirs]
    if any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise ConfigError(f"--workdirs must be NAME:WORKDIR pairs, got {FLAGS.workdirs}")
    report = upscaler_report(dict(pairs), FLAGS.out, FLAGS.latency_runs)
    print(format_report(report))


if __name__ == "__main__":
    cli.run("upscaler_report", main)
