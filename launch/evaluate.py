"""Scores a training workdir's EMA generator with the judge and writes ``WORKDIR/eval.json``.

  python launch/evaluate.py --workdir=runs/demo [--per_class=100] [--cache_dir=DIR]

Prints class accuracy, Fréchet distance, precision and recall and the real-data references (see
`lwgen.eval.conditional`).
"""

import json

import jax
from absl import flags, logging

from lwgen import cli
from lwgen.eval.evaluate import evaluate_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
_PER_CLASS = flags.DEFINE_integer("per_class", 100, "Generated samples per class.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Judge cache folder (default $LWGEN_CACHE/judges or ~/.cache/lwgen/judges)."
)
flags.mark_flags_as_required(["workdir"])


def main() -> None:
    logging.info("devices: %d (%d local)", jax.device_count(), jax.local_device_count())
    metrics = evaluate_workdir(_WORKDIR.value, _PER_CLASS.value, _CACHE_DIR.value)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    cli.run("evaluate", main)
