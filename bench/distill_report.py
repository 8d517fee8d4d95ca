"""Distillation report: a TinyGAN student against its teacher, float32 and INT8 TFLite.

    python bench/distill_report.py --teacher_workdir=runs/teacher_digits \\
        --student_workdir=runs/tinygan_digits --out=runs/distill_report \\
        [--per_class=100] [--num_calibration=256] [--latency_runs=30] [--min_psnr=20]

Exports both EMA generators as float32 and INT8 bundles (``lwgen.export.bundle``) into
``OUT/bundles``, profiles them (``lwgen.eval.profile``), scores every bundle with the judge of the
teacher's real data (``lwgen.eval.evaluate.evaluate_bundle``; the student is scored on the same
real held-out split, not on its distillation set) and times every bundle at batch 1 on one
interpreter thread, round-robin so that load on the machine affects every row alike. Writes
``OUT/distill_report.md`` and ``OUT/distill_report.json`` and prints the Markdown.

Goals (issue 4, TinyGAN, Chang & Lu 2020): student at most 1/10 of the teacher's parameters; INT8
student class accuracy at least 95% of the float teacher's; INT8 student Fréchet distance at most
1.3× the float teacher's. Errors print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from absl import flags

from lwgen import cli
from lwgen.data.distill_set import real_data_config
from lwgen.eval.evaluate import evaluate_bundle
from lwgen.eval.profile import profile_files, profile_generator
from lwgen.export.bundle import export_workdir, load_bundle
from lwgen.export.runtime import GENERATOR, TFLiteRunner
from lwgen.families.conditional_gan import restore_generator
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.train.checkpoint import read_config

flags.DEFINE_string("teacher_workdir", None, "Teacher training workdir (only read).")
flags.DEFINE_string("student_workdir", None, "Student (tinygan) training workdir (only read).")
flags.DEFINE_string("out", None, "Report folder (bundles/, distill_report.md/.json).")
flags.DEFINE_integer("per_class", 100, "Judge samples per class.")
flags.DEFINE_integer("num_calibration", 256, "INT8 calibration samples.")
flags.DEFINE_integer("latency_runs", 30, "Round-robin timing rounds (each times 20 invokes).")
flags.DEFINE_float("min_psnr", 20.0, "Refuse a bundle below this PSNR against JAX (dB).")
flags.mark_flags_as_required(["teacher_workdir", "student_workdir", "out"])
FLAGS = flags.FLAGS

ROLES = ("teacher", "student")
IMAGE = "image"  # the generator model's output
QUANTS = ("float32", "int8")
INVOKES_PER_ROUND = 20
PARAMS_GOAL = 0.1
ACCURACY_GOAL = 0.95
FRECHET_GOAL = 1.3
SAMPLE_METRICS = ("class_accuracy", "frechet_distance", "precision", "recall")
JUDGE_KEYS = ("judge_heldout_accuracy", "real_frechet_distance", "real_precision", "real_recall")


def judge_data_config(teacher_workdir: str):
    """The real data the judge scores on: the teacher's ``data`` group (its real data set if
    the teacher was itself distilled)."""
    data = read_config(teacher_workdir).data
    return real_data_config(data) if data.source == "distill" else data


def measure(role: str, workdir: str, quant: str, out: Path, data_config) -> dict[str, Any]:
    """Exports, profiles and evaluates one (model, quantization) row."""
    restored = restore_generator(workdir)
    profile = profile_generator(restored.generator, restored.variables)
    bundle = out / "bundles" / f"{role}_{quant}"
    metadata = export_workdir(
        workdir, bundle, quant=quant, num_calibration=FLAGS.num_calibration,
        min_psnr=FLAGS.min_psnr,
    )  # fmt: skip
    entry = metadata["models"][GENERATOR]
    model = str(bundle / entry["file"])
    metrics = evaluate_bundle(str(bundle), data_config, per_class=FLAGS.per_class)
    return {
        "model": role,
        "quant": quant,
        "workdir": os.path.abspath(workdir),
        "step": int(restored.step),
        "bundle": str(bundle),
        "params": profile["params"],
        "macs": profile["macs"],
        "file_bytes": profile_files([model])[model],
        "psnr_vs_jax_db": float(entry["error"][IMAGE]["psnr_db"]),
        **{key: metrics[key] for key in SAMPLE_METRICS},
        "judge": {k: metrics[k] for k in JUDGE_KEYS},
    }


def generator_inputs(runner: TFLiteRunner) -> dict[str, np.ndarray]:
    """One batch for a ``generator`` runner: ``z`` f32 ``[B, latent_dim]`` from ``N(0, I)``
    (seed 0) and ``y`` f32 ``[B, num_classes]`` one-hot of class 0."""
    batch, latent_dim = (int(d) for d in runner.inputs["z"]["shape"])
    num_classes = int(runner.inputs["y"]["shape"][1])
    z = np.random.default_rng(0).standard_normal((batch, latent_dim), dtype=np.float32)
    y = np.zeros((batch, num_classes), np.float32)
    y[:, 0] = 1.0
    return {"z": z, "y": y}


def median_latencies_ms(bundles: dict[str, str], rounds: int) -> dict[str, float]:
    """Median per-image latency (ms, batch 1, 1 thread) of each bundle's generator, timed
    round-robin on one input: ``z ~ N(0, I)`` (seed 0) and class 0 one-hot."""
    runners = {
        key: TFLiteRunner.from_bundle(load_bundle(path), GENERATOR, 1)
        for key, path in bundles.items()
    }
    inputs = {key: generator_inputs(runner) for key, runner in runners.items()}
    times: dict[str, list[float]] = {key: [] for key in runners}
    for _ in range(rounds):
        for key, runner in runners.items():
            runner.invoke(**inputs[key])  # warm-up after switching models
            for _ in range(INVOKES_PER_ROUND):
                start = time.perf_counter()
                runner.invoke(**inputs[key])
                times[key].append((time.perf_counter() - start) * 1e3)
    return {key: float(np.median(values)) for key, values in times.items()}


def check_goals(rows: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals, measured on ``rows`` keyed by ``(model, quant)``."""
    teacher, student = rows["teacher", "float32"], rows["student", "int8"]
    params = student["params"] / teacher["params"]
    accuracy = student["class_accuracy"] / max(teacher["class_accuracy"], 1e-12)
    frechet = student["frechet_distance"] / max(teacher["frechet_distance"], 1e-12)
    return {
        "params": {
            "goal": f"student params <= {PARAMS_GOAL} x teacher params",
            "measured": f"{params:.3f} ({student['params']:,} / {teacher['params']:,})",
            "met": params <= PARAMS_GOAL,
        },
        "class_accuracy": {
            "goal": f"INT8 student class accuracy >= {ACCURACY_GOAL} x float teacher's",
            "measured": f"{accuracy:.3f} ({student['class_accuracy']:.3f} / "
            f"{teacher['class_accuracy']:.3f})",
            "met": accuracy >= ACCURACY_GOAL,
        },
        "frechet_distance": {
            "goal": f"INT8 student Fréchet distance <= {FRECHET_GOAL} x float teacher's",
            "measured": f"{frechet:.3f} ({student['frechet_distance']:.2f} / "
            f"{teacher['frechet_distance']:.2f})",
            "met": frechet <= FRECHET_GOAL,
        },
    }


def markdown(rows: list[dict[str, Any]], goals: dict[str, Any]) -> str:
    """The table, the judge's reference values and the goal checks as Markdown."""
    lines = [
        "| model | quant | step | params | MACs | file bytes | TFLite latency ms (batch 1, "
        "1 thread, median) | class accuracy | Fréchet distance | precision | recall | PSNR vs "
        "JAX dB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['quant']} | {r['step']} | {r['params']:,} | {r['macs']:,} | "
            f"{r['file_bytes']:,} | {r['latency_ms']:.3f} | {r['class_accuracy']:.3f} | "
            f"{r['frechet_distance']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['psnr_vs_jax_db']:.1f} |"
        )
    judge = rows[0]["judge"]
    lines += [
        "",
        f"Judge: held-out accuracy {judge['judge_heldout_accuracy']:.3f} (the ceiling for class "
        f"accuracy); real-vs-held-out Fréchet distance {judge['real_frechet_distance']:.2f} "
        f"(the floor at this sample count), precision {judge['real_precision']:.3f} and recall "
        f"{judge['real_recall']:.3f} (Kynkäänniemi et al. 2019, k = 3).",
        "",
        "Goals (issue 4):",
        "",
    ]
    lines += [
        f"- {g['goal']}: measured {g['measured']} — **{'met' if g['met'] else 'missed'}**"
        for g in goals.values()
    ]
    return "\n".join(lines)


def report(teacher_workdir: str, student_workdir: str, out: Path) -> dict[str, Any]:
    """Measures the four rows and writes ``distill_report.md`` and ``.json``; returns the JSON."""
    data_config = judge_data_config(teacher_workdir)
    workdirs = {"teacher": teacher_workdir, "student": student_workdir}
    rows = [measure(role, workdirs[role], q, out, data_config) for role in ROLES for q in QUANTS]
    latencies = median_latencies_ms({r["bundle"]: r["bundle"] for r in rows}, FLAGS.latency_runs)
    for r in rows:
        r["latency_ms"] = latencies[r["bundle"]]
    goals = check_goals({(r["model"], r["quant"]): r for r in rows})
    result = {"per_class": FLAGS.per_class, "rows": rows, "goals": goals}
    atomic_write_json(out / "distill_report.json", result)
    atomic_write_text(out / "distill_report.md", markdown(rows, goals) + "\n")
    return result


def main() -> None:
    result = report(FLAGS.teacher_workdir, FLAGS.student_workdir, Path(FLAGS.out))
    print(markdown(result["rows"], result["goals"]))


if __name__ == "__main__":
    cli.run("distill_report", main)
