"""Sample-quality table of trained workdirs: class accuracy, Fréchet distance, precision, recall.

    python bench/sample_quality.py --workdirs=runs/demo,runs/diffusion/teacher \\
        --out=runs/sample_quality.json [--per_class=100] [--cache_dir=DIR]

Scores each workdir's latest checkpoint with its family's evaluation
(``lwgen.eval.evaluate.score_workdir``; the workdirs are only read) and prints a Markdown table
with the real-data references of each data set (``real_*``: training images against the held-out
images at the same count; improved precision and recall after Kynkäänniemi et al. 2019, k = 3).
Writes the rows and wall times to ``OUT`` (JSON). Errors print one line on stderr and exit 2.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

from lwgen import cli
from lwgen.eval.evaluate import score_workdir
from lwgen.io import atomic_write_json
from lwgen.train.checkpoint import read_config

_WORKDIRS = flags.DEFINE_list("workdirs", None, "Training workdirs to score (only read).")
_OUT = flags.DEFINE_string("out", None, "JSON file of the rows.")
_PER_CLASS = flags.DEFINE_integer("per_class", 100, "Generated samples per class.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Judge cache folder.")
flags.mark_flags_as_required(["workdirs", "out"])
COLUMNS = ("class_accuracy", "frechet_distance", "precision", "recall",
           "real_frechet_distance", "real_precision", "real_recall")  # fmt: skip


def score_row(workdir: str, per_class: int, cache_dir: str | None) -> dict:
    """One table row: the workdir's family, data source, metrics and wall time (s)."""
    config = read_config(workdir)
    start = time.perf_counter()
    metrics = score_workdir(workdir, per_class, cache_dir)
    return {
        "workdir": workdir,
        "family": config.model.family,
        "data": config.data.get("real_source", None) or config.data.source,
        **metrics,
        "wall_s": time.perf_counter() - start,
    }


def format_table(rows: list[dict]) -> str:
    """The Markdown table of ``rows``."""
    lines = [
        "| workdir | family | data | step | " + " | ".join(COLUMNS) + " | wall s |",
        "|" + "---|" * (len(COLUMNS) + 5),
    ]
    for row in rows:
        values = " | ".join(f"{row[c]:.3f}" for c in COLUMNS)
        lines.append(
            f"| {row['workdir']} | {row['family']} | {row['data']} | {row['step']} | {values} | "
            f"{row['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    rows = []
    for workdir in _WORKDIRS.value:
        rows.append(score_row(workdir, _PER_CLASS.value, _CACHE_DIR.value))
        print(json.dumps(rows[-1]), flush=True)
        atomic_write_json(_OUT.value, {"per_class": _PER_CLASS.value, "rows": rows})
    print(format_table(rows))
    print(f"wrote {os.path.abspath(_OUT.value)}")


if __name__ == "__main__":
    cli.run("sample_quality", main)
