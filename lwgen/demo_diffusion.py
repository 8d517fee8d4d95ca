"""The diffusion demo: train → distil to few steps → export INT8 → sample on the Pi path → report.

``run_diffusion_demo`` is what ``make demo-diffusion`` runs (through ``launch/demo_diffusion.py``)
on Fashion-MNIST: it trains the class-conditional U-Net of ``configs/diffusion_fashion.py``
(``ROOT/teacher``), runs progressive-distillation rounds down to the last entry of ``rounds``
(``ROOT/steps_N``), judges the teacher and the final student, exports the student as an INT8
bundle, judges the bundle, runs ``export/pi_infer.py`` on it in a subprocess as on a Raspberry Pi
(one grid row per class), judges that script's images and writes ``report.json`` and
``report.md``. Every stage resumes: rerunning the command after an interruption continues.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import ml_collections

from lwgen.console import log_to_file
from lwgen.demo import judge_npz, quality_cells, run_pi_script
from lwgen.eval.evaluate import evaluate_bundle
from lwgen.export.bundle import export_workdir
from lwgen.families.diffusion import evaluate
from lwgen.families.diffusion_rounds import progressive_rounds
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.train.checkpoint import restore_inference
from lwgen.train.loop import LOG_FILE, train


def format_report(report: dict[str, Any]) -> str:
    """The Markdown version of ``report.json``."""
    pi, export = report["pi_infer"], report["export"]
    lines = [
        "# lwgen diffusion demo: class-conditional DDIM on Fashion-MNIST",
        "",
        f"Teacher: {report['teacher']['steps']} steps at batch {report['teacher']['batch_size']} "
        f"in {report['teacher']['wall_s']:.0f} s; progressive distillation "
        f"{' → '.join(str(n) for n in report['rounds']['steps'])} steps, "
        f"{report['rounds']['train_steps']} steps per round, {report['rounds']['wall_s']:.0f} s.",
        f"Judge held-out accuracy: {report['teacher_eval']['judge_heldout_accuracy']:.4f}; "
        f"real-data Fréchet distance, precision and recall at this sample count: "
        f"{report['teacher_eval']['real_frechet_distance']:.3f}, "
        f"{report['teacher_eval']['real_precision']:.3f}, "
        f"{report['teacher_eval']['real_recall']:.3f}.",
        "",
        "| sampler | denoiser calls per image | class accuracy | Fréchet distance | precision | "
        "recall |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (
        (f"teacher, DDIM {report['teacher_eval']['sample_steps']} steps, guided (JAX)",
         "teacher_eval"),
        (f"distilled, {report['student_eval']['sample_steps']} steps (JAX float32)",
         "student_eval"),
        (f"distilled, {report['bundle_eval']['sample_steps']} steps (TFLite {export['quant']})",
         "bundle_eval"),
    ):  # fmt: skip
        result = report[key]
        lines.append(f"| {name} | {result['denoiser_calls']} | {quality_cells(result)} |")
    lines += [
        f"| `pi_infer.py` output (uint8 PNG data) | {report['bundle_eval']['denoiser_calls']} | "
        f"{pi['class_accuracy']:.4f} | – | – | – |",
        "",
        f"Export: `{export['bundle']}`, {export['model_bytes']} bytes, PSNR of the denoiser output "
        f"vs JAX {export['psnr_db']:.2f} dB (per timestep: {export['psnr_by_timestep']}).",
        f"Pi script on this machine: median {pi['median_ms']:.3f} ms per image (whole sample, "
        f"batch 1, {pi['threads']} thread).",
        "",
        "![INT8 samples, one row per class](samples_int8.png)",
        "",
    ]
    return "\n".join(lines)


def _calls(metrics: dict[str, Any], guidance: float) -> dict[str, Any]:
    return {**metrics, "denoiser_calls": metrics["sample_steps"] * (2 if guidance else 1)}


def run_diffusion_demo(
    config: ml_collections.ConfigDict,
    root: str,
    pi_script: str,
    rounds: Sequence[int] = (8, 4),
    round_train_steps: int = 300,
    round_lr: float = 3e-4,
    per_class: int = 100,
) -> dict[str, Any]:
    """Runs the whole demo (see the module docstring).

    Args:
      config: the teacher's experiment config (``configs/diffusion_fashion.py``).
      root: output folder: ``teacher/``, ``steps_N/``, ``bundle_int8/``, the grid and reports.
      pi_script: path of ``export/pi_infer.py``.
      rounds: student steps per progressive-distillation round (halving).
      round_train_steps, round_lr: training steps and peak learning rate of each round.
      per_class: samples per class for the metrics.

    Returns:
      The report dict also written to ``ROOT/report.json``.

    Raises:
      LwgenError: from training, distillation, evaluation or export.
      RuntimeError: if the Pi script fails.
    """
    os.makedirs(root, exist_ok=True)
    with log_to_file(os.path.join(root, LOG_FILE)):
        return _run(config, root, pi_script, list(rounds), round_train_steps, round_lr, per_class)


def _run(config, root, pi_script, rounds, round_train_steps, round_lr, per_class):
    start = time.perf_counter()
    teacher_dir = os.path.join(root, "teacher")
    train(config, teacher_dir)
    teacher_s = time.perf_counter() - start
    student_dir = progressive_rounds(teacher_dir, root, rounds, round_train_steps, round_lr)[-1]
    rounds_s = time.perf_counter() - start - teacher_s
    guidance = float(config.diffusion.guidance)
    teacher_eval = evaluate(restore_inference(teacher_dir), per_class, sample_steps=2 * rounds[0])
    student_eval = evaluate(restore_inference(student_dir), per_class)
    bundle_dir = os.path.join(root, f"bundle_{config.export.quant}")
    metadata = export_workdir(student_dir, bundle_dir, quant=config.export.quant)
    denoiser = metadata["models"]["denoiser"]
    bundle_eval = evaluate_bundle(bundle_dir, config.data, per_class=per_class)
    npz = os.path.join(root, "samples_int8.npz")
    labels = list(range(config.model.denoiser.num_classes))
    pi_args = {"num": 10, "seed": 0, "threads": 1, "benchmark": 20}
    pi = run_pi_script(
        pi_script, bundle_dir, os.path.join(root, "samples_int8.png"), npz, labels, pi_args
    )
    pi["class_accuracy"] = judge_npz(npz, config.data)
    error = denoiser["error"]["output"]
    report = {
        "teacher": {
            "steps": int(config.num_train_steps),
            "batch_size": int(config.batch_size),
            "wall_s": teacher_s,
        },
        "rounds": {"steps": rounds, "train_steps": round_train_steps, "wall_s": rounds_s},
        "teacher_eval": _calls(teacher_eval, guidance),
        "student_eval": _calls(student_eval, 0.0),
        "bundle_eval": _calls(bundle_eval, 0.0),
        "export": {
            "bundle": bundle_dir,
            "quant": denoiser["quant"],
            "model_bytes": denoiser["size_bytes"],
            "psnr_db": error["psnr_db"],
            "psnr_by_timestep": {
                t: round(stats["psnr_db"], 2) for t, stats in error["by_timestep"].items()
            },
        },
        "pi_infer": pi,
        "total_wall_s": time.perf_counter() - start,
    }
    atomic_write_json(os.path.join(root, "report.json"), report)
    atomic_write_text(os.path.join(root, "report.md"), format_report(report))
    return report
