"""Projects a workdir's samples and the real held-out images with PCA and t-SNE (judge features).

  python launch/project.py --workdir=runs/demo [--num=50] [--out=DIR] [--cache_dir=DIR]

Writes TensorBoard projector files (``tensorboard --logdir OUT`` shows them; OUT defaults to the
workdir) and ``OUT/projector/{pca,tsne}.png``; prints the summary (see `lwgen.eval.projector`).
"""

import json

from absl import flags

from lwgen import cli
from lwgen.eval.projector import DEFAULT_PERPLEXITY, project_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir whose generator is projected.")
_NUM = flags.DEFINE_integer("num", 50, "Generated (and at most real held-out) images per class.")
_OUT = flags.DEFINE_string("out", None, "Output folder (default: the workdir).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the samples and the projections.")
_PERPLEXITY = flags.DEFINE_float("perplexity", DEFAULT_PERPLEXITY, "t-SNE perplexity.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Judge cache folder (default $LWGEN_CACHE/judges or ~/.cache/lwgen/judges)."
)
flags.mark_flags_as_required(["workdir"])


def main() -> None:
    summary = project_workdir(
        _WORKDIR.value,
        out_dir=_OUT.value,
        num=_NUM.value,
        seed=_SEED.value,
        cache_dir=_CACHE_DIR.value,
        perplexity=_PERPLEXITY.value,
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    cli.run("project", main)
