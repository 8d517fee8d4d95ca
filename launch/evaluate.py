"""Scores a training workdir's EMA generator with the judge and writes ``WORKDIR/eval.json``.

  python launch/evaluate.py --workdir=runs/demo [--per_class=100] [--cache_dir=DIR]

Prints class accuracy, Fréchet distance and the real-data references (see `lwgen.eval.evaluate`).
"""

import json
import sys

import jax
from absl import app, flags, logging

from lwgen.eval.evaluate import evaluate_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
_PER_CLASS = flags.DEFINE_integer("per_class", 100, "Generated samples per class.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Judge cache folder (default $LWGEN_CACHE/judges or ~/.cache/lwgen/judges)."
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.info("devices: %d (%d local)", jax.device_count(), jax.local_device_count())
    try:
        metrics = evaluate_workdir(_WORKDIR.value, _PER_CLASS.value, _CACHE_DIR.value)
    except (ValueError, FileNotFoundError) as e:
        print(f"evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    app.run(main)
