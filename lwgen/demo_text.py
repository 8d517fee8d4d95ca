"""The text-to-image demo and the measurements the text report shares with it.

``run_text_demo`` is what ``make demo-text`` runs (through ``launch/demo_text.py``): cache the
caption embeddings, train the ``textgan`` config (resuming), evaluate the EMA generator on
held-out and training prompts, export the text bundle (INT8 generator, TFLite text encoder,
``tokenizer.json``), evaluate the bundle through that Pi path, run ``export/pi_infer.py`` in a
fresh interpreter on one held-out prompt per class (a grid with each row's prompt), and write
``report.json`` / ``report.md``.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import ml_collections
import numpy as np

from lwgen.console import log_to_file
from lwgen.data.captions import prompt_rows
from lwgen.demo import run_pi_infer
from lwgen.eval.evaluate import evaluate_bundle, evaluate_workdir
from lwgen.export.bundle import export_workdir, load_bundle
from lwgen.families.textgan_export import bundle_encode
from lwgen.families.textgan_prompts import cached_table, ensure_caption_cache
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.train.loop import LOG_FILE, train

_BENCHMARK = re.compile(r"encoder ([0-9.]+) ms/prompt, generator ([0-9.]+) ms/image")
BENCHMARK_RUNS = 50


def heldout_prompts(data_config: ml_collections.ConfigDict) -> list[str]:
    """One held-out paraphrase per class (the demo grid's rows): class k's (k mod n)-th, so the
    rows show every paraphrase template."""
    table = cached_table(data_config)
    per_class = prompt_rows(table, "heldout", 10)
    return [str(table.captions[rows[k % len(rows)]]) for k, rows in enumerate(per_class) if rows]


def encoder_cosine(bundle_dir: str, data_config: ml_collections.ConfigDict) -> dict[str, float]:
    """Cosine similarity of the bundle's (TFLite) prompt embeddings to the float encoder's cached
    ones, over every held-out prompt: ``{"mean", "min"}``."""
    table = cached_table(data_config)
    rows = table.select("heldout")
    tflite = bundle_encode(load_bundle(bundle_dir))(table.captions[rows].tolist())["text"]
    reference = table.embeddings[rows]
    cosine = np.sum(tflite * reference, -1) / (
        np.linalg.norm(tflite, axis=-1) * np.linalg.norm(reference, axis=-1)
    )
    return {"mean": float(np.mean(cosine)), "min": float(np.min(cosine))}


def nearest_caption_accuracy(data_config: ml_collections.ConfigDict) -> float | None:
    """``CaptionTable.nearest_caption_accuracy`` of a labelled captioned source (None for JSONL
    captions, which have no classes)."""
    if data_config.captions.base == "jsonl":
        return None
    return cached_table(data_config).nearest_caption_accuracy()


def run_pi_prompts(pi_script: str, bundle_dir: str, prompts: list[str], out_png: str) -> dict:
    """Runs ``pi_infer.py --prompt ...`` in a fresh interpreter (batch 1, 1 thread).

    Returns:
      ``{"encoder_ms_per_prompt", "generator_ms_per_image", "wall_s"}``.

    Raises:
      RuntimeError: if the script fails or prints no benchmark line (stderr included).
    """
    args = [f"--bundle={bundle_dir}", "--num=8", "--seed=0", *(f"--prompt={p}" for p in prompts)]
    args += ["--threads=1", f"--benchmark={BENCHMARK_RUNS}", f"--out={out_png}"]
    start = time.perf_counter()
    match = run_pi_infer(pi_script, args, _BENCHMARK)
    return {
        "encoder_ms_per_prompt": float(match.group(1)),
        "generator_ms_per_image": float(match.group(2)),
        "wall_s": time.perf_counter() - start,
    }


def format_report(report: dict[str, Any]) -> str:
    """The Markdown version of the demo's ``report.json``."""
    rows = [("JAX float32 (cached embeddings)", report["eval_float"])]
    rows.append(("Pi path: TFLite encoder + INT8 generator", report["eval_pi"]))
    pi, cos = report["pi_infer"], report["encoder_cosine"]
    nearest = report.get("nearest_caption_accuracy")
    ceiling = [] if nearest is None else [
        f"Held-out prompts whose nearest training caption (cosine) is of their class: "
        f"{nearest:.4f} (how far the encoder alone carries them)."
    ]  # fmt: skip
    lines = [
        f"# lwgen text demo: {report['fusion']} fusion on {report['data']}",
        "",
        f"Trained {report['steps']} steps in {report['train_s']:.0f} s; caption cache "
        f"{'reused' if report['cache_reused'] else 'built'} in {report['cache_s']:.1f} s.",
        "",
        "| model | held-out prompt acc. | training prompt acc. | gap | Fréchet (held-out) | "
        "precision / recall (held-out) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {n} | {e['heldout_class_accuracy']:.4f} | {e['train_class_accuracy']:.4f} | "
            f"{e['generalisation_gap']:+.4f} | {e['heldout_frechet_distance']:.2f} | "
            f"{e['heldout_precision']:.3f} / {e['heldout_recall']:.3f} |"
            for n, e in rows
        ),
        "",
        *ceiling,
        f"TFLite encoder ({report['encoder_quant']}) cosine to float on held-out prompts: mean "
        f"{cos['mean']:.5f}, min {cos['min']:.5f}.",
        f"`pi_infer.py` (batch 1, 1 thread): encoder {pi['encoder_ms_per_prompt']:.2f} ms/prompt, "
        f"generator {pi['generator_ms_per_image']:.3f} ms/image.",
        "",
        "![held-out prompts, one row each](prompts_heldout.png)",
        "",
    ]
    return "\n".join(lines)


def run_text_demo(
    config: ml_collections.ConfigDict, workdir: str, pi_script: str, per_class: int = 100
) -> dict[str, Any]:
    """Caches, trains, evaluates, exports, runs the Pi script; writes the reports.

    Args:
      config: a ``textgan`` config (``configs/textgan_digits.py``).
      workdir: output folder (resumed if it holds checkpoints).
      pi_script: path of ``export/pi_infer.py``.
      per_class: generated images per class and prompt split for the metrics.

    Returns:
      The report dict also written to ``WORKDIR/report.json``.

    Raises:
      LwgenError: from any stage (a bad config, a missing encoder or file, divergence).
      RuntimeError: if ``pi_infer.py`` fails.
    """
    os.makedirs(workdir, exist_ok=True)
    with log_to_file(os.path.join(workdir, LOG_FILE)):
        start = time.perf_counter()
        reused = ensure_caption_cache(config.data)[1]
        cache_s = time.perf_counter() - start
        train(config, workdir)
        train_s = time.perf_counter() - start - cache_s
        eval_float = evaluate_workdir(workdir, per_class=per_class)
        bundle_dir = os.path.join(workdir, "bundle")
        export_workdir(workdir, bundle_dir)
        report = {
            "data": config.data.captions.base,
            "fusion": config.model.generator.fusion,
            "steps": int(config.num_train_steps),
            "cache_reused": reused,
            "cache_s": cache_s,
            "train_s": train_s,
            "eval_float": eval_float,
            "eval_pi": evaluate_bundle(bundle_dir, config.data, per_class=per_class),
            "encoder_quant": config.export.encoder_quant,
            "encoder_cosine": encoder_cosine(bundle_dir, config.data),
            "heldout_prompts": heldout_prompts(config.data),
            "nearest_caption_accuracy": nearest_caption_accuracy(config.data),
        }
        out_png = os.path.join(workdir, "prompts_heldout.png")
        report["pi_infer"] = run_pi_prompts(
            pi_script, bundle_dir, report["heldout_prompts"], out_png
        )
        report["total_wall_s"] = time.perf_counter() - start
    atomic_write_json(os.path.join(workdir, "report.json"), report)
    atomic_write_text(os.path.join(workdir, "report.md"), format_report(report))
    return report
