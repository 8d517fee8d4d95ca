"""Compression report for a trained digits DCGAN: what each method saves and what it costs.

    python bench/compression_report.py --workdir=runs/demo --out=runs/compression \\
        [--steps=200] [--per_class=100] [--latency_runs=30]

Fine-tunes (``lwgen.compress.finetune``; finished runs in ``OUT/workdirs`` are reused), exports
(``lwgen.export.bundle``), evaluates with the digits judge (``lwgen.eval.evaluate``), checks Edge
TPU op coverage (``lwgen.export.edgetpu``) and times every bundle in one process, then writes
``OUT/report.md`` and ``OUT/report.json`` with one row per variant:

float32, INT8 PTQ, unstructured 50% + INT8, unstructured 80% + INT8, structured 50% + INT8,
QAT INT8; columns params, MACs, file bytes, TFLite latency (batch 1, 1 thread, median), class
accuracy, Fréchet distance, Edge TPU op coverage. A second table shows what the converter's
sparsity optimization changes for the pruned models, and the goals of issue 3 are checked:
structured 50% + INT8 at least 1.6x faster than INT8 PTQ with at most 3 points lower class
accuracy, QAT INT8 class accuracy at least that of INT8 PTQ. Latencies are interleaved across
bundles (round-robin) so that load on the machine affects every row alike.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from absl import flags
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from lwgen import cli
from lwgen.compress.finetune import compress_workdir
from lwgen.eval.evaluate import evaluate_bundle
from lwgen.eval.profile import profile_files, profile_generator
from lwgen.export import convert
from lwgen.export.bundle import export_workdir, load_bundle
from lwgen.export.edgetpu import edgetpu_report
from lwgen.export.runtime import GENERATOR
from lwgen.families.conditional_gan import restore_generator
from lwgen.families.registry import get_family
from lwgen.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from lwgen.train.checkpoint import read_config, restore_inference

flags.DEFINE_string("workdir", None, "Trained digits DCGAN workdir (only read).")
flags.DEFINE_string("out", None, "Report folder (workdirs/, bundles/, report.md, report.json).")
flags.DEFINE_integer("steps", 200, "Fine-tuning steps of every compression method.")
flags.DEFINE_integer("per_class", 100, "Judge samples per class.")
flags.DEFINE_integer("num_calibration", 256, "INT8 calibration samples.")
flags.DEFINE_integer("latency_runs", 30, "Round-robin timing rounds (each times 20 invokes).")
flags.mark_flags_as_required(["workdir", "out"])
FLAGS = flags.FLAGS

INVOKES_PER_ROUND = 20
SPEEDUP_GOAL = 1.6
ACCURACY_DROP_GOAL = 0.03


class Variant(NamedTuple):
    """One row: ``method`` None means the source model itself."""

    name: str
    slug: str
    method: str | None
    amount: float
    quant: str


VARIANTS = (
    Variant("float32", "float32", None, 0.0, "float32"),
    Variant("INT8 PTQ", "int8", None, 0.0, "int8"),
    Variant("unstructured 50% + INT8", "unstructured50", "unstructured", 0.5, "int8"),
    Variant("unstructured 80% + INT8", "unstructured80", "unstructured", 0.8, "int8"),
    Variant("structured 50% + INT8", "structured50", "structured", 0.5, "int8"),
    Variant("QAT INT8", "qat", "qat", 0.0, "int8"),
)


def variant_workdir(source: str, out: Path, variant: Variant, steps: int) -> str:
    """The workdir holding the variant's generator (fine-tuned into ``OUT/workdirs/<slug>``)."""
    if variant.method is None:
        return source
    workdir = str(out / "workdirs" / variant.slug)
    compress_workdir(source, workdir, variant.method, variant.amount, steps)
    return workdir


def export(workdir: str, bundle: Path, quant: str) -> Path:
    """Exports the workdir (bundle format 2) and returns the path of its ``generator`` model."""
    metadata = export_workdir(workdir, bundle, quant=quant, num_calibration=FLAGS.num_calibration)
    return bundle / metadata["models"][GENERATOR]["file"]


def interpreter(model_content: bytes, default_delegates: bool = True) -> Interpreter:
    """A 1-thread LiteRT interpreter with allocated, zero-filled inputs.

    Args:
      model_content: the ``.tflite`` flatbuffer.
      default_delegates: use LiteRT's default CPU delegate (XNNPACK); False runs the builtin
        kernels only.

    Raises:
      RuntimeError: if the interpreter cannot prepare the model.
    """
    resolver = (
        OpResolverType.AUTO
        if default_delegates
        else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    runner = Interpreter(
        model_content=model_content, num_threads=1, experimental_op_resolver_type=resolver
    )
    runner.allocate_tensors()
    for detail in runner.get_input_details():
        runner.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    return runner


def median_latencies_ms(interpreters: dict[str, Interpreter], rounds: int) -> dict[str, float]:
    """Median per-invoke latency (ms, batch 1) of each interpreter, timed round-robin."""
    times: dict[str, list[float]] = {key: [] for key in interpreters}
    for _ in range(rounds):
        for key, runner in interpreters.items():
            runner.invoke()  # warm-up after switching models
            for _ in range(INVOKES_PER_ROUND):
                start = time.perf_counter()
                runner.invoke()
                times[key].append((time.perf_counter() - start) * 1e3)
    return {key: float(np.median(values)) for key, values in times.items()}


def sparsity_comparison(row: dict[str, Any], out: Path) -> dict[str, Any]:
    """The row's INT8 model against an INT8 conversion with the converter's sparsity
    optimization: file bytes, op counts, and whether XNNPACK can prepare each.

    The sparse model is converted from the family's ``generator`` export spec with the dense
    model's batch and calibration (samples, seed), so the two differ only in that optimization.
    """
    bundle = load_bundle(row["bundle"])
    dense = bundle.metadata["models"][GENERATOR]
    restored = restore_inference(row["workdir"])
    specs = get_family(restored.config.model.family).export_specs(restored, dense["batch"])
    (spec,) = (s for s in specs if s.name == GENERATOR)
    calibration = dense["calibration"]
    sparse = convert.convert(
        spec, "int8", dense["batch"], calibration["num_samples"], seed=calibration["seed"],
        sparsity=True,
    )  # fmt: skip
    result = {}
    for key, content in (("dense", bundle.models[GENERATOR]), ("sparse", sparse)):
        path = out / "sparsity" / f"{Path(row['workdir']).name}_{key}.tflite"
        atomic_write_bytes(path, content)
        try:
            interpreter(content)
            xnnpack = "ok"
        except RuntimeError as e:
            xnnpack = f"fails to prepare: {str(e).splitlines()[0][:120]}"
        result[key] = {
            "path": str(path),
            "file_bytes": len(content),
            "ops": convert.op_counts(content),
            "xnnpack": xnnpack,
        }
    return result


def measure_variant(source: str, out: Path, variant: Variant, data_config) -> dict[str, Any]:
    """Fine-tunes, exports, profiles, evaluates and Edge-TPU-checks one variant."""
    workdir = variant_workdir(source, out, variant, FLAGS.steps)
    restored = restore_generator(workdir)
    profile = profile_generator(restored.generator, restored.variables)
    bundle = out / "bundles" / variant.slug
    model = export(workdir, bundle, variant.quant)
    metrics = evaluate_bundle(str(bundle), data_config, per_class=FLAGS.per_class)
    row = {
        "variant": variant.name,
        "workdir": workdir,
        "bundle": str(bundle),
        "params": profile["params"],
        "nonzero_params": profile["nonzero_params"],
        "macs": profile["macs"],
        "nonzero_macs": profile["nonzero_macs"],
        "file_bytes": profile_files([str(model)])[str(model)],
        "class_accuracy": float(metrics["class_accuracy"]),
        "frechet_distance": float(metrics["frechet_distance"]),
        "edgetpu_coverage": float(edgetpu_report(model)["coverage"]),
        "energy_estimate_uj": profile["energy"],
    }
    if variant.method == "unstructured":
        row["sparsity_optimization"] = sparsity_comparison(row, out)
    return row


def _count(total: int, nonzero: int) -> str:
    return f"{total:,}" if nonzero == total else f"{total:,} ({nonzero:,} nonzero)"


def markdown(rows: list[dict[str, Any]], goals: dict[str, Any]) -> str:
    """The report tables and goal checks as Markdown."""
    lines = [
        "| variant | params | MACs | file bytes | TFLite latency ms (batch 1, 1 thread, median) "
        "| class accuracy | Fréchet distance | Edge TPU op coverage |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {_count(r['params'], r['nonzero_params'])} | "
            f"{_count(r['macs'], r['nonzero_macs'])} | {r['file_bytes']:,} | "
            f"{r['latency_ms']:.3f} | {r['class_accuracy']:.3f} | {r['frechet_distance']:.2f} | "
            f"{r['edgetpu_coverage']:.0%} |"
        )
    lines += [
        "",
        "INT8 conversion with the converter's sparsity optimization "
        "(`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`); latencies with LiteRT's builtin kernels "
        "(no XNNPACK delegate) for both, since XNNPACK may refuse the sparse model:",
        "",
        "| variant | file bytes | with sparsity | latency ms | with sparsity | DENSIFY ops "
        "| XNNPACK on the sparse model |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "sparsity_optimization" in r:
            dense, sparse = (
                r["sparsity_optimization"]["dense"],
                r["sparsity_optimization"]["sparse"],
            )
            lines.append(
                f"| {r['variant']} | {dense['file_bytes']:,} | {sparse['file_bytes']:,} | "
                f"{dense['latency_ms_builtin_kernels']:.3f} | "
                f"{sparse['latency_ms_builtin_kernels']:.3f} | {sparse['ops'].get('DENSIFY', 0)} | "
                f"{sparse['xnnpack']} |"
            )
    lines += ["", "Goals (issue 3):", ""]
    lines += [
        f"- {g['goal']}: measured {g['measured']} — **{'met' if g['met'] else 'missed'}**"
        for g in goals.values()
    ]
    lines += ["", "The float32 row's latency is the float32 model's; every other row is INT8."]
    return "\n".join(lines)


def check_goals(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals, measured on ``rows`` keyed by variant name."""
    ptq, structured, qat = rows["INT8 PTQ"], rows["structured 50% + INT8"], rows["QAT INT8"]
    speedup = ptq["latency_ms"] / structured["latency_ms"]
    drop = ptq["class_accuracy"] - structured["class_accuracy"]
    return {
        "structured_speedup": {
            "goal": f"structured 50% + INT8 >= {SPEEDUP_GOAL}x faster than INT8 PTQ",
            "measured": f"{speedup:.2f}x",
            "met": speedup >= SPEEDUP_GOAL,
        },
        "structured_accuracy": {
            "goal": "structured 50% + INT8 class accuracy at most 3 points below INT8 PTQ",
            "measured": f"{structured['class_accuracy']:.3f} vs {ptq['class_accuracy']:.3f}",
            "met": drop <= ACCURACY_DROP_GOAL,
        },
        "qat_accuracy": {
            "goal": "QAT INT8 class accuracy >= INT8 PTQ",
            "measured": f"{qat['class_accuracy']:.3f} vs {ptq['class_accuracy']:.3f}",
            "met": qat["class_accuracy"] >= ptq["class_accuracy"],
        },
    }


def report(source: str, out: Path) -> dict[str, Any]:
    """Measures every variant and writes ``report.md`` and ``report.json``; returns the JSON."""
    data_config = read_config(source).data
    rows = [measure_variant(source, out, v, data_config) for v in VARIANTS]
    interpreters = {
        r["variant"]: interpreter(load_bundle(r["bundle"]).models[GENERATOR]) for r in rows
    }
    for r in rows:
        for key, info in r.get("sparsity_optimization", {}).items():
            content = Path(info["path"]).read_bytes()
            interpreters[f"{r['variant']} {key}"] = interpreter(content, default_delegates=False)
    latencies = median_latencies_ms(interpreters, FLAGS.latency_runs)
    for r in rows:
        r["latency_ms"] = latencies[r["variant"]]
        for key, info in r.get("sparsity_optimization", {}).items():
            info["latency_ms_builtin_kernels"] = latencies[f"{r['variant']} {key}"]
    goals = check_goals({r["variant"]: r for r in rows})
    result = {
        "source_workdir": os.path.abspath(source),
        "steps": FLAGS.steps,
        "per_class": FLAGS.per_class,
        "rows": rows,
        "goals": goals,
    }
    atomic_write_json(out / "report.json", result)
    atomic_write_text(out / "report.md", markdown(rows, goals) + "\n")
    return result


def main() -> None:
    out = Path(FLAGS.out)
    result = report(FLAGS.workdir, out)
    print(markdown(result["rows"], result["goals"]))


if __name__ == "__main__":
    cli.run("compression_report", main)
