"""Style-transfer report over the workdirs and bundles of ``make demo-style``.

    python bench/style_report.py --root=runs/style --out=runs/style_report [--gatys_steps=40]
        [--gatys_photos=1] [--no_teacher_int8_384]

Rows: Gatys et al. (per image, ``--gatys_steps`` Adam steps on ``--gatys_photos`` held-out
photos in every style), the Johnson single-style network (``ROOT/single``), the multi-style
teacher (``ROOT/teacher``) in JAX float32 and as INT8 (``ROOT/bundle_teacher_int8``), the
student (``ROOT/student``) float32 and INT8, and the QAT student INT8. Columns: params, MACs at
256², file bytes, ms per image at 256² and 384² (LiteRT, batch 1, 1 thread), content and style
loss on the held-out photos (mean over styles), LPIPS to the float teacher's output and, for
INT8 rows, to the same network's float output (see ``lwgen.eval.style_report``). Prints the
table and the goals; writes ``OUT/style_report.md`` and ``.json``. Errors print one line on
stderr and exit with code 2.
"""

import os

from absl import flags

from lwgen import cli
from lwgen.demo_style import format_table
from lwgen.errors import MissingFileError
from lwgen.eval.style_report import ModelRow, style_report
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.style_transfer import GatysSettings

_ROOT = flags.DEFINE_string("root", "runs/style", "Folder of make demo-style.")
_OUT = flags.DEFINE_string("out", "runs/style_report", "Report folder.")
_GATYS_STEPS = flags.DEFINE_integer("gatys_steps", 40, "Gatys Adam steps (0: no Gatys row).")
_GATYS_PHOTOS = flags.DEFINE_integer("gatys_photos", 1, "Held-out photos Gatys stylizes.")
_TEACHER_384 = flags.DEFINE_bool(
    "teacher_int8_384", True, "Convert the teacher to INT8 at 384² for timing (minutes)."
)


def rows(root: str) -> list[ModelRow]:
    """The report's feed-forward rows under ``root``.

    Raises:
      MissingFileError: naming the first missing workdir or bundle.
    """
    path = {k: os.path.join(root, k) for k in ("teacher", "single", "student", "student_qat")}
    bundle = {k: os.path.join(root, f"bundle_{k}_int8") for k in ("teacher", "student")}
    bundle["student_qat"] = os.path.join(root, "bundle_student_qat_int8")
    for p in [*path.values(), *bundle.values()]:
        if not os.path.isdir(p):
            raise MissingFileError(f"{p} not found: run `make demo-style` first")
    return [
        ModelRow("multi-style teacher", path["teacher"]),
        ModelRow("multi-style teacher INT8", path["teacher"], "int8", bundle["teacher"],
                 _TEACHER_384.value),
        ModelRow("Johnson single-style", path["single"]),
        ModelRow("student", path["student"]),
        ModelRow("student INT8", path["student"], "int8", bundle["student"]),
        ModelRow("student QAT INT8", path["student_qat"], "int8", bundle["student_qat"]),
    ]  # fmt: skip


def main() -> None:
    gatys = GatysSettings(steps=_GATYS_STEPS.value) if _GATYS_STEPS.value else None
    report = style_report(rows(_ROOT.value), gatys, _GATYS_PHOTOS.value)
    report.pop("outputs")
    table = format_table(report["rows"])
    goals = [f"- {k}: {g['measured']} → {'met' if g['met'] else 'NOT met'}"
             for k, g in report["goals"].items()]  # fmt: skip
    print(table, *goals, sep="\n")
    atomic_write_json(os.path.join(_OUT.value, "style_report.json"), report)
    atomic_write_text(os.path.join(_OUT.value, "style_report.md"), "\n".join([table, *goals, ""]))


if __name__ == "__main__":
    cli.run("style_report", main)
