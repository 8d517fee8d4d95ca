"""The end-to-end demo: train → evaluate → export INT8 → run the Pi script → report.

``run_demo`` is what ``make demo`` runs (through ``launch/demo.py``) on scikit-learn's digits: it
trains the class-conditional DCGAN of ``configs/dcgan_digits.py`` (resuming if the workdir has a
checkpoint), judges the EMA generator, exports an INT8 bundle, judges the bundle, runs the
standalone ``export/pi_infer.py`` on it in a subprocess exactly as on a Raspberry Pi, judges the
images that script wrote, and writes ``report.json`` and ``report.md``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Any

import ml_collections
import numpy as np

from lwgen.console import log_to_file
from lwgen.eval.evaluate import evaluate_bundle, evaluate_workdir
from lwgen.eval.judge import load_or_train_judge
from lwgen.eval.metrics import class_accuracy
from lwgen.export.bundle import export_workdir
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.train.loop import LOG_FILE, train

BENCHMARK_LINE = re.compile(r"median ([0-9.]+) ms/image, p90 ([0-9.]+) ms/image")


def run_pi_infer(
    pi_script: str, args: list[str], pattern: re.Pattern | None = None
) -> re.Match | None:
    """Runs ``export/pi_infer.py ARGS`` in a fresh interpreter, as on the device.

    Returns:
      The match of ``pattern`` in the script's stdout (None without a pattern).

    Raises:
      RuntimeError: if the script fails, or prints no line matching ``pattern`` (its stderr is
        included).
    """
    command = [sys.executable, pi_script, *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    match = None if pattern is None else pattern.search(result.stdout)
    if result.returncode != 0 or (pattern is not None and match is None):
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr}")
    return match


def run_pi_script(
    pi_script: str, bundle_dir: str, out_png: str, out_npz: str, labels: list[int], args: dict
) -> dict[str, Any]:
    """Runs ``export/pi_infer.py`` in a fresh interpreter, as on the device.

    Args:
      pi_script: path of ``export/pi_infer.py``.
      bundle_dir: the bundle to run.
      out_png, out_npz: where the script writes the grid and the ``.npz``.
      labels: class ids, one grid row each.
      args: ``num`` (samples per label), ``seed``, ``threads``, ``benchmark`` (invocations).

    Returns:
      ``{"median_ms", "p90_ms", "threads", "invocations"}`` parsed from the script's benchmark
      line (ms per image).

    Raises:
      RuntimeError: if the script fails or prints no benchmark line (its stderr is included).
    """
    match = run_pi_infer(
        pi_script,
        [
            f"--bundle={bundle_dir}",
            f"--labels={','.join(map(str, labels))}",
            f"--num={args['num']}",
            f"--seed={args['seed']}",
            f"--threads={args['threads']}",
            f"--benchmark={args['benchmark']}",
            f"--out={out_png}",
            f"--npy={out_npz}",
        ],
        BENCHMARK_LINE,
    )
    return {
        "median_ms": float(match.group(1)),
        "p90_ms": float(match.group(2)),
        "threads": args["threads"],
        "invocations": args["benchmark"],
    }


def judge_npz(npz_path: str, data_config: ml_collections.ConfigDict) -> float:
    """Class accuracy (judged by the digits judge) of the uint8 images in a ``pi_infer`` npz."""
    with np.load(npz_path) as data:
        images = data["images"].astype(np.float32) / 127.5 - 1.0
        labels = data["labels"]
    judge = load_or_train_judge(data_config)
    return class_accuracy(judge.logits(images), labels)


def quality_cells(metrics: dict[str, Any]) -> str:
    """Class accuracy, Fréchet distance, precision and recall as Markdown table cells."""
    return (
        f"{metrics['class_accuracy']:.4f} | {metrics['frechet_distance']:.3f} | "
        f"{metrics['precision']:.3f} | {metrics['recall']:.3f}"
    )


def format_report(report: dict[str, Any]) -> str:
    """The Markdown version of ``report.json``."""
    train, export, pi = report["train"], report["export"], report["pi_infer"]
    real = report["eval_jax"]
    rows = [
        ("JAX EMA generator (float32)", report["eval_jax"]),
        (f"TFLite {export['quant']} bundle", report["eval_int8"]),
    ]
    lines = [
        "# lwgen demo: class-conditional DCGAN on scikit-learn digits",
        "",
        f"Trained {train['steps']} steps at batch {train['batch_size']} on "
        f"{train['devices']} device(s) in {train['wall_s']:.0f} s. "
        f"Judge held-out accuracy: {report['eval_jax']['judge_heldout_accuracy']:.4f}.",
        "",
        "| model | class accuracy | Fréchet distance (judge features) | precision | recall |",
        "|---|---|---|---|---|",
        *(f"| {n} | {quality_cells(e)} |" for n, e in rows),
        f"| `pi_infer.py` output (uint8 PNG data) | {pi['class_accuracy']:.4f} | – | – | – |",
        f"| real training images (reference) | – | {real['real_frechet_distance']:.3f} | "
        f"{real['real_precision']:.3f} | {real['real_recall']:.3f} |",
        "",
        f"Export: `{export['bundle']}`, {export['model_bytes']} bytes, PSNR vs JAX "
        f"{export['psnr_db']:.2f} dB, max abs error {export['max_abs_error']:.4f}.",
        f"Pi script on this machine: median {pi['median_ms']:.3f} ms/image, p90 "
        f"{pi['p90_ms']:.3f} ms/image (batch 1, {pi['threads']} thread).",
        "",
        "![INT8 samples, one row per class](samples_int8.png)",
        "",
    ]
    return "\n".join(lines)


def run_demo(
    config: ml_collections.ConfigDict, workdir: str, pi_script: str, per_class: int = 100
) -> dict[str, Any]:
    """Trains, evaluates, exports and runs the Pi script; writes the reports.

    Args:
      config: the experiment config (``configs/dcgan_digits.py``).
      workdir: output folder (resumed if it holds checkpoints).
      pi_script: path of ``export/pi_infer.py``.
      per_class: generated samples per class for the metrics.

    Returns:
      The report dict also written to ``WORKDIR/report.json``.

    Raises:
      ValueError, FileNotFoundError, FloatingPointError: from training, evaluation or export.
      LwgenError: from training, evaluation or export (a bad config, a missing file, divergence).
    """
    with log_to_file(os.path.join(workdir, LOG_FILE)):
        return _run_demo(config, workdir, pi_script, per_class)


def _run_demo(config, workdir, pi_script, per_class) -> dict[str, Any]:
    import jax

    start = time.perf_counter()
    train(config, workdir)
    train_s = time.perf_counter() - start
    eval_jax = evaluate_workdir(workdir, per_class=per_class)
    bundle_dir = os.path.join(workdir, f"bundle_{config.export.quant}")
    metadata = export_workdir(
        workdir,
        bundle_dir,
        quant=config.export.quant,
        batch=config.export.batch,
        num_calibration=config.export.num_calibration,
        min_psnr=config.export.min_psnr,
    )
    generator = metadata["models"]["generator"]
    eval_int8 = evaluate_bundle(bundle_dir, config.data, per_class=per_class)
    labels = list(range(config.model.generator.num_classes))
    npz = os.path.join(workdir, "samples_int8.npz")
    pi_args = {"num": 10, "seed": 0, "threads": 1, "benchmark": 200}
    pi = run_pi_script(
        pi_script, bundle_dir, os.path.join(workdir, "samples_int8.png"), npz, labels, pi_args
    )
    pi["class_accuracy"] = judge_npz(npz, config.data)
    report = {
        "train": {
            "steps": int(config.num_train_steps),
            "batch_size": int(config.batch_size),
            "devices": jax.device_count(),
            "wall_s": train_s,
        },
        "eval_jax": eval_jax,
        "eval_int8": eval_int8,
        "export": {
            "bundle": bundle_dir,
            "quant": generator["quant"],
            "model_bytes": generator["size_bytes"],
            "psnr_db": generator["error"]["image"]["psnr_db"],
            "max_abs_error": generator["error"]["image"]["max_abs_error"],
        },
        "pi_infer": pi,
        "total_wall_s": time.perf_counter() - start,
    }
    atomic_write_json(os.path.join(workdir, "report.json"), report)
    atomic_write_text(os.path.join(workdir, "report.md"), format_report(report))
    return report
