"""Exports a trained workdir's models as one verified edge bundle (NAME.tflite + bundle.json).

    python export/export_bundle.py --workdir=DIR --out=BUNDLE_DIR [--quant=int8] [--batch=1] \\
        [--num_calibration=256] [--min_psnr=20] [--sparsity] [--edgetpu_report]

The workdir's family (``config.model.family``) names the models and their inputs
(``lwgen.export.bundle.export_workdir``). ``--quant`` is one of float32, float16, dynamic, int8
(float IO) and int8_io (int8 IO, as the Edge TPU wants). Options left out come from the workdir
config's ``export`` group. The bundle is refused (nothing written) if any model output's PSNR
against JAX is below ``--min_psnr`` (default: the config's, else each model's own). With
``--edgetpu_report`` each model NAME gets ``NAME_edgetpu_report.json`` (``lwgen.export.edgetpu``)
and, when ``edgetpu_compiler`` is on PATH, ``NAME_edgetpu_compiler.log`` and
``NAME_edgetpu.tflite``, before the bundle is moved into place. Errors print one line on stderr
and exit with code 2.
"""

from __future__ import annotations

import os

from absl import flags

from lwgen import cli
from lwgen.export.bundle import QUANT_MODES, export_workdir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints/).")
flags.DEFINE_string("out", None, "Bundle directory to write (replaced atomically).")
flags.DEFINE_enum("quant", None, QUANT_MODES, "Quantization mode (default: config.export).")
flags.DEFINE_integer("batch", None, "Static batch size of the exported models.")
flags.DEFINE_integer("num_calibration", None, "Calibration samples for the int8 modes (>= 200).")
flags.DEFINE_float("min_psnr", None, "Refuse the bundle below this PSNR vs JAX (dB).")
flags.DEFINE_bool("sparsity", False, "Add tf.lite.Optimize.EXPERIMENTAL_SPARSITY.")
flags.DEFINE_bool("edgetpu_report", False, "Write each model's Edge TPU report into the bundle.")
flags.mark_flags_as_required(["workdir", "out"])
FLAGS = flags.FLAGS


def summary(metadata: dict) -> str:
    """One line per model: quantization, batch, size, worst output PSNR and error, extra files."""
    lines = [f"wrote {FLAGS.out}: family={metadata['family']} step={metadata['source']['step']}"]
    for name, model in metadata["models"].items():
        worst = min(model["error"].values(), key=lambda stats: stats["psnr_db"])
        extras = ", ".join(model["extra_files"]) or "none"
        lines.append(
            f"  {name}: quant={model['quant']} batch={model['batch']} "
            f"size={model['size_bytes']} bytes psnr={worst['psnr_db']:.2f} dB "
            f"max_abs_error={worst['max_abs_error']:.4f} (extra files: {extras})"
        )
    return "\n".join(lines)


def main() -> None:
    metadata = export_workdir(
        FLAGS.workdir,
        FLAGS.out,
        quant=FLAGS.quant,
        batch=FLAGS.batch,
        num_calibration=FLAGS.num_calibration,
        min_psnr=FLAGS.min_psnr,
        sparsity=FLAGS.sparsity,
        edgetpu_report=FLAGS.edgetpu_report,
    )
    print(summary(metadata))


if __name__ == "__main__":
    cli.run("export_bundle", main)
