"""Exports a trained workdir's generator as a verified edge bundle (model.tflite + bundle.json).

    python export/export_bundle.py --workdir=DIR --out=BUNDLE_DIR [--quant=int8] [--batch=1] \\
        [--num_calibration=256] [--min_psnr=20] [--sparsity] [--edgetpu_report]

``--quant`` is one of float32, float16, dynamic, int8 (float IO) and int8_io (int8 IO, as the
Edge TPU wants). Options left out come from the workdir config's ``export`` group. The bundle is
refused (nothing written) if the TFLite model's PSNR against the JAX generator is below
``--min_psnr``. ``--edgetpu_report`` adds ``edgetpu_report.json`` (``lwgen.export.edgetpu``) and,
when ``edgetpu_compiler`` is on PATH, ``edgetpu_compiler.log`` to the bundle before it is moved
into place. Errors print one line on stderr and exit with code 2.
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
flags.DEFINE_integer("batch", None, "Static batch size of the exported model.")
flags.DEFINE_integer("num_calibration", None, "Calibration samples for the int8 modes (>= 200).")
flags.DEFINE_float("min_psnr", None, "Refuse the bundle below this PSNR vs JAX (dB).")
flags.DEFINE_bool("sparsity", False, "Add tf.lite.Optimize.EXPERIMENTAL_SPARSITY.")
flags.DEFINE_bool("edgetpu_report", False, "Write edgetpu_report.json into the bundle.")
flags.mark_flags_as_required(["workdir", "out"])
FLAGS = flags.FLAGS


def _summary(metadata: dict) -> str:
    error = metadata["error"]
    extras = ", ".join(metadata["extra_files"]) or "none"
    return (
        f"wrote {FLAGS.out}: quant={metadata['quant']} batch={metadata['batch']} "
        f"size={metadata['size_bytes']} bytes psnr={error['psnr_db']:.2f} dB "
        f"max_abs_error={error['max_abs_error']:.4f} (step {metadata['source']['step']}; "
        f"extra files: {extras})"
    )


def main() -> None:
    extra_files = None
    if FLAGS.edgetpu_report:
        from lwgen.export.edgetpu import bundle_files as extra_files
    metadata = export_workdir(
        FLAGS.workdir,
        FLAGS.out,
        quant=FLAGS.quant,
        batch=FLAGS.batch,
        num_calibration=FLAGS.num_calibration,
        min_psnr=FLAGS.min_psnr,
        sparsity=FLAGS.sparsity,
        extra_files=extra_files,
    )
    print(_summary(metadata))


if __name__ == "__main__":
    cli.run("export_bundle", main)
