"""Compresses a trained generator and fine-tunes it into a new, normal workdir.

  python launch/compress.py --workdir=runs/demo --method=structured --amount=0.5 \
      --out_workdir=runs/demo_structured50 [--steps=200] [--source_params=ema] [--scope=layer]

``--method``: ``unstructured`` (gradual magnitude pruning to ``--amount`` sparsity),
``structured`` (remove ``--amount`` of every hidden block's channels) or ``qat``
(quantization-aware training; ``--amount`` is ignored). The new workdir resumes with this
command, and ``export/export_bundle.py --workdir=OUT`` exports it (QAT through the normal INT8
path). Prints the compressed generator's profile and writes it to ``OUT/profile.json``. Errors
print one line on stderr and exit with code 2.
"""

import os

from absl import flags

from lwgen import cli
from lwgen.compress.finetune import compress_workdir
from lwgen.compress.pruning import SCOPES
from lwgen.compress.setup import METHODS, SOURCE_PARAMS
from lwgen.eval.profile import format_profile, profile_model, write_profile
from lwgen.families.registry import make_trainer
from lwgen.train.checkpoint import restore_inference

flags.DEFINE_string("workdir", None, "Trained source workdir (only read).")
flags.DEFINE_string("out_workdir", None, "New workdir for the compressed model.")
flags.DEFINE_enum("method", None, METHODS, "Compression method.")
flags.DEFINE_float("amount", 0.5, "Sparsity or fraction of channels removed, in [0, 1).")
flags.DEFINE_integer("steps", 200, "Fine-tuning steps.")
flags.DEFINE_enum("source_params", "ema", SOURCE_PARAMS, "Start from EMA or raw G weights.")
flags.DEFINE_enum("scope", "layer", SCOPES, "Magnitude ranking per layer or global.")
flags.DEFINE_string("network", "generator", "The trained network to compress.")
flags.mark_flags_as_required(["workdir", "out_workdir", "method"])
FLAGS = flags.FLAGS


def main() -> None:
    compress_workdir(
        FLAGS.workdir,
        FLAGS.out_workdir,
        FLAGS.method,
        FLAGS.amount,
        FLAGS.steps,
        source_params=FLAGS.source_params,
        network=FLAGS.network,
        scope=FLAGS.scope,
    )
    restored = restore_inference(FLAGS.out_workdir)
    trainer = make_trainer(restored.config)
    args, kwargs = trainer.example_inputs[FLAGS.network](1, 0)
    module = trainer.modules[FLAGS.network]
    profile = profile_model(module, restored.variables[FLAGS.network], *args, **kwargs)
    write_profile(profile, os.path.join(FLAGS.out_workdir, "profile.json"))
    print(format_profile(profile))


if __name__ == "__main__":
    cli.run("compress", main)
