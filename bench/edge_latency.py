"""Batch-1 latency of one exported model as JAX jit (CPU), TFLite float32 and TFLite int8.

    python bench/edge_latency.py --workdir=DIR --out=edge_latency.json [--model=generator] \\
        [--repeats=300] [--threads=1,2]

The workdir's family (``lwgen.families.registry``) supplies the export spec of ``--model`` (the
EMA generator for the GAN families); it is converted in-process to float32 and int8 (float IO)
TFLite (``lwgen.export.convert``, each verified against JAX) and every backend is timed at batch 1
with each thread count: median and p90 wall-clock ms per example over ``--repeats`` calls after a
warm-up, on one example of the spec's verification inputs. JAX runs in a child process per thread
count whose CPU affinity is set to that many cores before JAX starts, since XLA sizes its CPU
thread pool once at start-up. TFLite times ``TFLiteRunner.invoke`` (set inputs, invoke, read
outputs) with ``num_threads``.

Prints a table and writes JSON (atomically) with every timing, both file sizes and the ratios
measured in this one run: int8 speed-up over TFLite float32 and over JAX per thread count, and
the int8 file size as a fraction of float32 (issue goals: >= 4x and <= 27%). Errors print one line
on stderr and exit with code 2.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from absl import flags

from lwgen import cli
from lwgen.errors import ExportError
from lwgen.export.spec import ExportSpec
from lwgen.io import atomic_write_json

flags.DEFINE_string("workdir", None, "Trained workdir (config.json + checkpoints/).")
flags.DEFINE_string("out", None, "JSON file to write.")
flags.DEFINE_string("model", "generator", "Name of the exported model to time.")
flags.DEFINE_integer("repeats", 300, "Timed calls per backend and thread count.")
flags.DEFINE_list("threads", ["1", "2"], "Thread counts to time.")
flags.DEFINE_integer("jax_threads", None, "Internal: time JAX only, on this many cores.")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS

WARMUP = 20
SPEEDUP_GOAL = 4.0
SIZE_GOAL = 0.27


def time_ms(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Median and p90 wall-clock ms of ``call()`` over ``repeats`` calls after a warm-up."""
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "p90_ms": float(np.percentile(times, 90))}


def export_spec(workdir: str, model: str) -> tuple[ExportSpec, dict[str, Any]]:
    """The export spec named ``model`` of the workdir's family, and the workdir's provenance.

    Raises:
      ExportError: if the family exports no model of that name.
    """
    from lwgen.families.registry import get_family
    from lwgen.train.checkpoint import restore_inference

    restored = restore_inference(workdir)
    specs = get_family(restored.config.model.family).export_specs(restored, 1)
    by_name = {spec.name: spec for spec in specs}
    if model not in by_name:
        raise ExportError(f"--model {model!r} is not one of the exported models {sorted(by_name)}")
    source = {"workdir": str(Path(workdir).resolve()), "step": int(restored.step), "model": model}
    return by_name[model], source


def batch1_inputs(spec: ExportSpec) -> dict[str, np.ndarray]:
    """One example of the spec's verification inputs: ``{input name: [1, *shape]}``."""
    from lwgen.export.convert import VERIFICATION_STREAM, sample_inputs

    return sample_inputs(spec, 1, 0, VERIFICATION_STREAM)


def time_jax(workdir: str, model: str, threads: int, repeats: int) -> dict[str, float]:
    """Times the jitted spec function on ``threads`` cores (call before JAX is imported)."""
    cores = sorted(os.sched_getaffinity(0))
    if threads > len(cores):
        raise ExportError(f"--threads {threads} exceeds the {len(cores)} cores available")
    os.sched_setaffinity(0, cores[:threads])
    import jax

    spec, _ = export_spec(workdir, model)
    apply = jax.jit(lambda variables, inputs: spec.fn(variables, **inputs))
    variables, inputs = jax.device_put((spec.variables, batch1_inputs(spec)))
    return time_ms(lambda: jax.block_until_ready(apply(variables, inputs)), repeats)


def time_jax_in_child(workdir: str, model: str, threads: int, repeats: int) -> dict[str, float]:
    """Runs this script with ``--jax_threads`` in a fresh process and reads its JSON line."""
    command = [sys.executable, __file__, f"--workdir={workdir}", f"--model={model}"]
    done = subprocess.run(
        [*command, f"--repeats={repeats}", f"--jax_threads={threads}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise ExportError(f"JAX timing with {threads} thread(s) failed: {lines[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def convert_models(spec: ExportSpec) -> tuple[dict[str, bytes], dict[str, Any]]:
    """``({quant: tflite bytes}, {quant: error stats vs JAX per output})``, float32 and int8."""
    from lwgen.export import convert

    models = {quant: convert.convert(spec, quant) for quant in ("float32", "int8")}
    errors = {quant: convert.verify(content, spec) for quant, content in models.items()}
    return models, errors


def time_tflite(
    model: bytes, inputs: dict[str, np.ndarray], threads: int, repeats: int
) -> dict[str, float]:
    """Times ``TFLiteRunner.invoke`` at batch 1 with ``threads`` interpreter threads."""
    from lwgen.export.runtime import TFLiteRunner

    runner = TFLiteRunner(model, num_threads=threads)
    return time_ms(lambda: runner.invoke(**inputs), repeats)


def ratios(results: list[dict[str, Any]], sizes: dict[str, int]) -> dict[str, Any]:
    """int8 speed-ups (per thread count) and the int8/float32 file size fraction."""
    median = {(r["backend"], r["threads"]): r["median_ms"] for r in results}
    threads = sorted({r["threads"] for r in results})
    vs_float = {t: median["tflite_float32", t] / median["tflite_int8", t] for t in threads}
    vs_jax = {t: median["jax_jit_cpu", t] / median["tflite_int8", t] for t in threads}
    size_fraction = sizes["int8"] / sizes["float32"]
    return {
        "int8_speedup_vs_tflite_float32": {str(t): v for t, v in vs_float.items()},
        "int8_speedup_vs_jax": {str(t): v for t, v in vs_jax.items()},
        "int8_size_fraction_of_float32": size_fraction,
        "goals": {
            f"int8_speedup_vs_tflite_float32_ge_{SPEEDUP_GOAL:g}x": min(vs_float.values())
            >= SPEEDUP_GOAL,
            f"int8_speedup_vs_jax_ge_{SPEEDUP_GOAL:g}x": min(vs_jax.values()) >= SPEEDUP_GOAL,
            f"int8_size_le_{SIZE_GOAL:.0%}": size_fraction <= SIZE_GOAL,
        },
    }


def run(workdir: str, model: str, thread_counts: list[int], repeats: int) -> dict[str, Any]:
    """Converts, times every backend and thread count, returns the JSON report."""
    spec, source = export_spec(workdir, model)
    models, errors = convert_models(spec)
    inputs = batch1_inputs(spec)
    results = []
    for threads in thread_counts:
        timings = {"jax_jit_cpu": time_jax_in_child(workdir, model, threads, repeats)}
        for quant, content in models.items():
            timings[f"tflite_{quant}"] = time_tflite(content, inputs, threads, repeats)
        results += [{"backend": b, "threads": threads, **t} for b, t in timings.items()]
    sizes = {quant: len(content) for quant, content in models.items()}
    return {
        "source": source,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "batch": 1,
        "repeats": repeats,
        "results": results,
        "sizes_bytes": sizes,
        "error_vs_jax": errors,
        "ratios": ratios(results, sizes),
    }


def table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table plus the ratio lines."""
    lines = [f"{'backend':<16}{'threads':>8}{'median ms/img':>15}{'p90 ms/img':>12}"]
    for r in report["results"]:
        row = f"{r['backend']:<16}{r['threads']:>8}{r['median_ms']:>15.3f}{r['p90_ms']:>12.3f}"
        lines.append(row)
    sizes, ratio = report["sizes_bytes"], report["ratios"]
    lines.append(
        f"size: float32 {sizes['float32']} B, int8 {sizes['int8']} B "
        f"({ratio['int8_size_fraction_of_float32']:.1%} of float32)"
    )
    for key in ("int8_speedup_vs_tflite_float32", "int8_speedup_vs_jax"):
        per_thread = ", ".join(f"{t} thr {v:.2f}x" for t, v in ratio[key].items())
        lines.append(f"{key}: {per_thread}")
    lines.append("goals: " + ", ".join(f"{k}={v}" for k, v in ratio["goals"].items()))
    return "\n".join(lines)


def main() -> None:
    if FLAGS.jax_threads is not None:
        print(json.dumps(time_jax(FLAGS.workdir, FLAGS.model, FLAGS.jax_threads, FLAGS.repeats)))
        return
    if FLAGS.out is None or not Path(FLAGS.out).resolve().parent.is_dir():
        raise ExportError(f"--out must be a JSON path in an existing folder, got {FLAGS.out}")
    thread_counts = [int(t) for t in FLAGS.threads]
    if FLAGS.repeats < 1 or min(thread_counts) < 1:
        raise ExportError("--repeats and every --threads value must be >= 1")
    report = run(FLAGS.workdir, FLAGS.model, thread_counts, FLAGS.repeats)
    atomic_write_json(FLAGS.out, report)
    print(table(report))
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.run("edge_latency", main)
