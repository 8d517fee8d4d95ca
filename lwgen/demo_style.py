"""The style-transfer demo: teacher → student → QAT → INT8 bundle → Pi script → grid and report.

``run_style_demo`` is what ``make demo-style`` runs (through ``launch/demo_style.py``): it trains
the multi-style teacher of ``configs/style_multi.py`` (``ROOT/teacher``), the single-style
baseline of ``configs/style_single.py`` (``ROOT/single``), distils the student
(``ROOT/student``), fine-tunes it with quantization-aware training (``ROOT/student_qat``),
exports INT8 bundles of the teacher, the student and the QAT student, stylizes the held-out
photos in every style with ``export/pi_infer.py`` in a subprocess as on a Raspberry Pi, tiles
them into ``ROOT/style_grid_int8.png`` (one row per photo: the photo, then each style) and writes
``report.json`` / ``report.md`` (``lwgen.eval.style_report``). Every stage resumes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import ml_collections
import numpy as np
from PIL import Image

from lwgen import images as image_grid
from lwgen.compress.finetune import compress_workdir
from lwgen.console import log_to_file
from lwgen.demo import run_pi_infer
from lwgen.eval.style_report import ModelRow, style_report
from lwgen.export.bundle import export_workdir
from lwgen.families import style
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.train.loop import LOG_FILE, train

COLUMNS = (
    ("model", "{}"),
    ("quant", "{}"),
    ("params", "{:,}"),
    ("macs", "{:,}"),
    ("file_bytes", "{:,}"),
    ("ms_256", "{:.1f}"),
    ("ms_384", "{:.1f}"),
    ("content_loss", "{:.3f}"),
    ("style_loss", "{:.3f}"),
    ("lpips_vs_teacher", "{:.4f}"),
    ("lpips_vs_float", "{:.4f}"),
)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The report rows as a Markdown table (``–`` where a column does not apply)."""
    lines = ["| " + " | ".join(c for c, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = ["–" if row.get(key) is None else fmt.format(row[key]) for key, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_report(report: dict[str, Any]) -> str:
    """The Markdown version of ``report.json``."""
    goals = [
        f"- {name}: {goal['measured']} → {'met' if goal['met'] else 'NOT met'}"
        for name, goal in report["goals"].items()
    ]
    wall = ", ".join(f"{k} {v:.0f} s" for k, v in report["wall_s"].items())
    return "\n".join(
        [
            "# lwgen style demo: six real styles in one INT8 network",
            "",
            f"Held-out photos ({len(report['heldout_photos'])}, at "
            f"{report['export_size']}²): {', '.join(report['heldout_photos'])}. Losses are means "
            "over photos and the model's styles; ms per image: LiteRT, batch 1, 1 thread "
            "(Gatys: JAX steps × step time on this machine's cores).",
            "",
            format_table(report["rows"]),
            "",
            *goals,
            "",
            format_edgetpu(report["edgetpu"]),
            "",
            f"Wall time: {wall}.",
            "",
            "![INT8 student via pi_infer.py: rows = held-out photos, columns = photo then styles]"
            "(style_grid_int8.png)",
            "",
        ]
    )


def edgetpu_summary(bundle: str) -> dict[str, Any]:
    """The Edge TPU report of a bundle's ``stylizer`` (``lwgen.export.edgetpu``) reduced to op
    counts per placement, e.g. ``{"MEAN": {"edgetpu": 20}}``, plus coverage and fallbacks."""
    from lwgen.export.edgetpu import edgetpu_report

    report = edgetpu_report(os.path.join(bundle, f"{style.core.STYLIZER}.tflite"))
    ops: dict[str, dict[str, int]] = {}
    for op in report["ops"]:
        placement = ops.setdefault(op["op"], {})
        placement[op["placement"]] = placement.get(op["placement"], 0) + 1
    keys = ("coverage", "edgetpu_ops", "cpu_ops", "unsupported", "first_cpu_fallback")
    return {"ops": ops, **{k: report[k] for k in keys}}


def format_edgetpu(summary: dict[str, Any]) -> str:
    """One Markdown line per op type: where it runs on a Coral Edge TPU."""
    lines = [
        f"Edge TPU (documented op support, compiler 16): {summary['edgetpu_ops']} of "
        f"{summary['edgetpu_ops'] + summary['cpu_ops']} ops map "
        f"(coverage {summary['coverage']:.1%}); first CPU fallback: "
        f"{summary['first_cpu_fallback'] or 'none'}.",
        "",
    ]
    for op, placement in sorted(summary["ops"].items()):
        where = ", ".join(f"{n} on {p}" for p, n in sorted(placement.items()))
        lines.append(f"- {op}: {where}")
    return "\n".join(lines)


def _export(workdir: str, bundle: str) -> str:
    if not os.path.isfile(os.path.join(bundle, "bundle.json")):
        export_workdir(workdir, bundle, quant="int8", min_psnr=style.MIN_PSNR_DB)
    return bundle


def pi_grid(root: str, bundle: str, config: ml_collections.ConfigDict, pi_script: str) -> str:
    """Stylizes the held-out photos in every style with ``pi_script`` (a subprocess per style)
    and tiles them, one row per photo (the photo, then each style); returns the PNG path."""
    size = style.export_size(config)
    names, photos = style.heldout_photos(config, size)
    photo_dir = os.path.join(root, "heldout_photos")
    os.makedirs(photo_dir, exist_ok=True)
    files = [f"{i:02d}_{n.split(':')[-1].split('.')[0]}.png" for i, n in enumerate(names)]
    for file, photo in zip(files, photos, strict=True):
        uint8 = np.round((photo + 1.0) * 127.5).astype(np.uint8)
        Image.fromarray(uint8).save(os.path.join(photo_dir, file))
    columns = [photos]
    os.makedirs(os.path.join(root, "pi_outputs"), exist_ok=True)
    for name in config.style.names:
        out = os.path.join(root, "pi_outputs", name)
        args = [f"--bundle={bundle}", f"--input={photo_dir}", f"--style={name}", f"--out={out}"]
        run_pi_infer(pi_script, args)
        stylized = [np.asarray(Image.open(os.path.join(out, f)), np.float32) for f in files]
        columns.append(np.stack(stylized) / 127.5 - 1.0)
    grid = np.stack(columns, axis=1).reshape(-1, size, size, 3)
    path = os.path.join(root, "style_grid_int8.png")
    image_grid.save_png(path, image_grid.make_grid(grid, rows=len(files), scale=1))
    return path


def run_style_demo(
    root: str, pi_script: str, teacher_config, single_config, student_config, qat_steps: int
) -> dict[str, Any]:
    """Runs the whole demo (see the module docstring).

    Args:
      root: output folder.
      pi_script: path of ``export/pi_infer.py``.
      teacher_config, single_config, student_config: configs of ``configs/style_multi.py``
        (teacher and ``:student`` variants) and ``configs/style_single.py``; the student's
        ``teacher.workdir`` is set to ``ROOT/teacher``.
      qat_steps: quantization-aware fine-tuning steps of the student.

    Returns:
      The report dict also written to ``ROOT/report.json``.

    Raises:
      LwgenError: from training, export or evaluation.
      RuntimeError: if the Pi script fails (with its stderr).
    """
    os.makedirs(root, exist_ok=True)
    with log_to_file(os.path.join(root, LOG_FILE)):
        return _run(root, pi_script, teacher_config, single_config, student_config, qat_steps)


def _timed(wall: dict, key: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    wall[key] = time.perf_counter() - start
    return out


def _run(root, pi_script, teacher_config, single_config, student_config, qat_steps):
    wall: dict[str, float] = {}
    path = {k: os.path.join(root, k) for k in ("teacher", "single", "student", "student_qat")}
    _timed(wall, "teacher", train, teacher_config, path["teacher"])
    _timed(wall, "single", train, single_config, path["single"])
    student_config = ml_collections.ConfigDict(student_config.to_dict())
    student_config.teacher.workdir = path["teacher"]
    _timed(wall, "student", train, student_config, path["student"])
    _timed(
        wall, "qat", compress_workdir, path["student"], path["student_qat"], "qat", 0.0,
        qat_steps, network=style.core.STYLIZER,
    )  # fmt: skip
    bundles = {
        k: _timed(wall, f"export_{k}", _export, path[k], os.path.join(root, f"bundle_{k}_int8"))
        for k in ("teacher", "student", "student_qat")
    }
    grid = _timed(wall, "pi_grid", pi_grid, root, bundles["student"], teacher_config, pi_script)
    rows = [
        ModelRow("multi-style teacher", path["teacher"]),
        ModelRow("multi-style teacher INT8", path["teacher"], "int8", bundles["teacher"], False),
        ModelRow("Johnson single-style", path["single"]),
        ModelRow("student", path["student"]),
        ModelRow("student INT8", path["student"], "int8", bundles["student"]),
        # Same graph and ops as "student INT8", so the same latency: no second 384² calibration.
        ModelRow("student QAT INT8", path["student_qat"], "int8", bundles["student_qat"], False),
    ]
    report = _timed(wall, "report", style_report, rows)
    report.pop("outputs")
    report |= {"wall_s": wall, "grid": grid, "bundle": bundles["student"]}
    report["edgetpu"] = edgetpu_summary(bundles["student"])
    report["wall_s"]["total"] = sum(wall.values())
    atomic_write_json(os.path.join(root, "report.json"), report)
    atomic_write_text(os.path.join(root, "report.md"), format_report(report))
    return report
