"""Diffusion report: the teacher, its few-step students (JAX float and INT8 on the Pi sampler), the
narrow student and the DCGAN, scored by one judge and timed alike.

    python bench/diffusion_report.py --root=runs/diffusion --out=runs/diffusion_report \\
        [--narrow_workdir=runs/diffusion_narrow] [--dcgan_workdir=runs/dcgan_fashion] \\
        [--per_class=100] [--latency_runs=10] [--teacher_steps=100,50,20] [--goal_steps=4]

Rows: the teacher ``ROOT/teacher`` at each of ``--teacher_steps`` DDIM steps with its guidance
(JAX float32); every progressive round ``ROOT/steps_N`` (N = 8, 4, 2, 1) in JAX float32 and as an
INT8 bundle (``OUT/bundles/steps_N``) sampled by ``export/pi_diffusion.py`` with
``export/pi_infer.py``'s ``BundleModel`` as the denoiser, as on a Raspberry Pi; the narrow
knowledge-distillation student (``configs/diffusion_fashion_narrow.py``) as INT8 on the same
path; the DCGAN of ``configs/dcgan_fashion.py`` as INT8 TFLite. Rounds or workdirs that do not
exist are left out with a note. Columns: params and MACs per denoiser (generator) call
(``lwgen.eval.profile``), steps and denoiser calls per image, ms per image (batch 1, 1 thread,
the whole sample; timed round-robin in this process so that load affects every row alike), class
accuracy and Fréchet distance of the teacher's judge (``lwgen.eval.conditional``; every sampler
gets the same latents and step noise), INT8 file bytes. XLA runs on one thread
(``ONE_THREAD_XLA``, set before JAX is imported), LiteRT interpreters with ``num_threads=1``.

Goals (issue 9), each printed as met, not met or not measured: (a) the ``--goal_steps``-step
INT8 sample on the Pi path reaches class accuracy >= 0.80 and (b) a Fréchet distance <= 1.3x the
teacher's at the most steps; (c) INT8 raises the Fréchet distance by at most 10% over JAX float
at every distilled step count; (d) that INT8 sample is >= 25x faster per image than the teacher's
most-steps sample in JAX. Writes ``OUT/diffusion_report.md`` and ``.json``. Errors print one line
on stderr and exit with code 2.
"""

from __future__ import annotations

import os

ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {ONE_THREAD_XLA}".strip()

# ruff: noqa: E402 (JAX must see XLA_FLAGS, so these imports follow the line above)
import argparse
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import flags

from lwgen import cli
from lwgen.errors import ConfigError, LwgenError
from lwgen.eval.profile import profile_generator, profile_model
from lwgen.export.bundle import export_workdir, load_bundle
from lwgen.families import conditional_gan, diffusion
from lwgen.families import diffusion_core as core
from lwgen.families.diffusion_rounds import round_dir
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.models.unet import timestep_embedding
from lwgen.train.checkpoint import restore_inference

flags.DEFINE_string("root", "runs/diffusion", "Folder with teacher/ and the rounds' steps_N/.")
flags.DEFINE_string("narrow_workdir", None, "Narrow KD student workdir (optional).")
flags.DEFINE_string("dcgan_workdir", None, "DCGAN workdir on the same data (optional).")
flags.DEFINE_string("out", None, "Report folder (bundles/, diffusion_report.md/.json).")
flags.DEFINE_integer("per_class", 100, "Judge samples per class.")
flags.DEFINE_integer(
    "latency_runs", 10, "Round-robin timing rounds (one sample each).", lower_bound=1
)
flags.DEFINE_list("teacher_steps", ["100", "50", "20"], "Teacher DDIM step counts.")
flags.register_validator(
    "teacher_steps", lambda v: v and all(n.isdigit() for n in v), "must be positive integers"
)
flags.DEFINE_integer("goal_steps", 4, "Distilled step count that goals (a), (b), (d) check.")
flags.mark_flags_as_required(["out"])
FLAGS = flags.FLAGS

EXPORT_DIR = Path(__file__).resolve().parents[1] / "export"
DISTILLED_STEPS = (8, 4, 2, 1)
JAX_FLOAT, PI_INT8, TFLITE_INT8 = "JAX float32", "INT8, Pi sampler", "INT8 TFLite"
ACCURACY_GOAL, FRECHET_GOAL, INT8_FRECHET_GOAL, SPEEDUP_GOAL = 0.80, 1.3, 1.1, 25.0
Timer = Callable[[], Any]


def pi_args(pi_infer, bundle) -> argparse.Namespace:
    """``pi_infer.py``'s defaults (1 thread, XNNPACK, the bundle's sampler) for ``bundle``."""
    return pi_infer.parse_args(["--bundle", str(bundle), "--out", os.devnull])


def open_pi_model(pi_infer, args, metadata, name: str, inputs: list[str]):
    """``pi_infer.py``'s checked ``BundleModel`` of model ``name``."""
    model = pi_infer.checked_model(metadata, name, inputs)
    return pi_infer.open_model(args, metadata, name, model)


def pi_modules() -> tuple[Any, Any]:
    """``export/pi_infer.py`` and its sibling ``pi_diffusion.py``, loaded by path as on a Pi."""
    spec = importlib.util.spec_from_file_location("pi_infer", EXPORT_DIR / "pi_infer.py")
    pi_infer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pi_infer)
    return pi_infer, pi_infer.sibling_module("pi_diffusion")


def timing_inputs(shape: tuple, num_classes: int, num_steps: int):
    """Batch-1 ``(x_T f32 [1, H, W, C], y f32 [1, K] class 0, noise f32 [N, 1, H, W, C])``."""
    rng = np.random.default_rng(0)
    x_T = rng.standard_normal((1, *shape), dtype=np.float32)
    noise = rng.standard_normal((num_steps, 1, *shape), dtype=np.float32)
    return x_T, np.eye(num_classes, dtype=np.float32)[:1], noise


def denoiser_profile(restored) -> dict[str, int]:
    """``{"params", "macs"}`` of one denoiser call at batch 1."""
    module = core.denoiser_module(restored.config)
    x_t = np.zeros((1, *core.image_shape(restored.config)), np.float32)
    embedding = timestep_embedding(np.zeros(1, np.int32), module.embed_dim)
    y = np.eye(module.num_classes, dtype=np.float32)[:1]
    variables = restored.variables[core.DENOISER]
    profile = profile_model(module, variables, x_t, embedding, y, train=False)
    return {"params": profile["params"], "macs_per_call": profile["macs"]}


JUDGE_KEYS = ("judge_heldout_accuracy", "real_frechet_distance", "real_precision", "real_recall")


def row(model: str, runtime: str, steps: int, calls: int, base: dict, metrics: dict) -> dict:
    """One table row (``ms_per_image`` is filled in by the timing)."""
    return {
        "model": model,
        "runtime": runtime,
        **base,
        "steps": steps,
        "denoiser_calls": calls,
        "class_accuracy": float(metrics["class_accuracy"]),
        "frechet_distance": float(metrics["frechet_distance"]),
        "precision": float(metrics["precision"]),
        "recall": float(metrics["recall"]),
        "int8_file_bytes": None,
        "judge": {k: metrics[k] for k in JUDGE_KEYS},
    }


def jax_row(model: str, restored, base: dict, **overrides) -> tuple[dict, Timer]:
    """The JAX float32 row of a restored denoiser with ``overrides`` of its sampler."""
    config = restored.config
    metrics = diffusion.evaluate(restored, FLAGS.per_class, **overrides)
    settings = core.sampler_settings(config, **overrides)
    steps = len(settings["timesteps"])
    calls = steps * (2 if settings["guidance"] else 1)
    run, variables = core.sampler_fn(config, **overrides), restored.variables[core.DENOISER]
    inputs = timing_inputs(core.image_shape(config), config.model.denoiser.num_classes, steps)
    result = row(model, JAX_FLOAT, steps, calls, base, metrics)
    return result, lambda: jax.block_until_ready(run(variables, *inputs))


def int8_bundle(workdir: str, bundle: Path, step: int) -> dict[str, Any]:
    """``bundle.json`` of the INT8 bundle of ``workdir`` at ``bundle``, exported unless a valid
    one of the same checkpoint step is already there."""
    try:
        metadata = load_bundle(bundle).metadata
        source = metadata["source"]
        if (
            source.get("workdir") == str(Path(workdir).resolve())
            and source.get("step") == step
            and all(m["quant"] == "int8" for m in metadata["models"].values())
        ):
            return metadata
    except LwgenError:
        pass
    return export_workdir(workdir, bundle, quant="int8")


def pi_sampler(bundle: Path) -> tuple[Callable, dict]:
    """``(run(x_T, y, noise) -> images, fields)``: ``pi_diffusion.sample`` with the bundle's
    ``denoiser`` in a 1-thread ``BundleModel`` and the sampler of ``bundle.json``."""
    pi_infer, pi_diffusion = pi_modules()
    args = pi_args(pi_infer, bundle)
    metadata = pi_infer.read_metadata(args.bundle)
    denoiser = open_pi_model(pi_infer, args, metadata, "denoiser", ["x_t", "t_embedding", "y"])
    settings = pi_infer.diffusion_settings(args, metadata["fields"], pi_diffusion)

    def denoise(x_t, t_embedding, y):
        return denoiser.run(x_t=x_t, t_embedding=t_embedding, y=y)["output"]

    def run(x_T, y, noise):
        return pi_diffusion.sample(denoise, x_T, y, noise=noise, **settings)

    return run, metadata["fields"]


def pi_row(model: str, workdir: str, restored, base: dict, data_config) -> tuple[dict, Timer]:
    """The INT8 row of a denoiser workdir (bundle ``OUT/bundles/<steps_N or narrow>``), sampled
    on the Pi path."""
    name = "narrow" if model.startswith("narrow") else Path(workdir).name
    bundle = Path(FLAGS.out) / "bundles" / name
    entry = int8_bundle(workdir, bundle, int(restored.step))["models"][core.DENOISER]
    run, fields = pi_sampler(bundle)
    shape, num_classes = tuple(fields["image_shape"]), int(fields["num_classes"])
    steps = len(fields["timesteps"])
    metrics = diffusion.score_sampler(
        run, (shape, num_classes, steps), data_config, FLAGS.per_class
    )
    calls = steps * (2 if fields["guidance"] else 1)
    result = row(model, PI_INT8, steps, calls, base, metrics)
    error = entry["error"]["output"]
    result.update(
        bundle=str(bundle),
        int8_file_bytes=int(entry["size_bytes"]),
        psnr_db=float(error["psnr_db"]),
        psnr_db_by_timestep={t: float(e["psnr_db"]) for t, e in error["by_timestep"].items()},
    )
    inputs = timing_inputs(shape, num_classes, steps)
    return result, lambda: run(*inputs)


def dcgan_row(workdir: str, data_config) -> tuple[dict, Timer]:
    """The DCGAN's INT8 TFLite row: one generator call per image.

    Raises:
      ConfigError: if it was trained on other data than the diffusion teacher.
    """
    restored = conditional_gan.restore_generator(workdir)
    keys = ("source", "image_size", "channels")
    if any(restored.config.data[k] != data_config[k] for k in keys):
        raise ConfigError(f"--dcgan_workdir {workdir!r} was trained on other data than the teacher")
    profile = profile_generator(restored.generator, restored.variables)
    base = {"params": profile["params"], "macs_per_call": profile["macs"]}
    bundle = Path(FLAGS.out) / "bundles" / "dcgan"
    entry = int8_bundle(workdir, bundle, int(restored.step))["models"]["generator"]
    metrics = conditional_gan.evaluate_bundle(str(bundle), data_config, FLAGS.per_class)
    result = row("DCGAN", TFLITE_INT8, 1, 1, base, metrics)
    result.update(bundle=str(bundle), int8_file_bytes=int(entry["size_bytes"]))
    pi_infer, _ = pi_modules()
    args = pi_args(pi_infer, bundle)
    metadata = pi_infer.read_metadata(args.bundle)
    generator = open_pi_model(pi_infer, args, metadata, "generator", ["z", "y"])
    z = np.random.default_rng(0).standard_normal((1, restored.generator.latent_dim), np.float32)
    y = np.eye(restored.generator.num_classes, dtype=np.float32)[:1]
    return result, lambda: generator.run(z=z, y=y)


def measure_rows(root: Path) -> tuple[list[dict], dict[int, Timer], list[str]]:
    """Every row that exists under ``root`` and the optional workdirs, their timers (by row
    index) and notes on the rows left out."""
    teacher = restore_inference(str(root / "teacher"))
    data_config = teacher.config.data
    measured = [
        jax_row("teacher", teacher, denoiser_profile(teacher), sample_steps=int(n))
        for n in FLAGS.teacher_steps
    ]
    notes = []
    for n in DISTILLED_STEPS:
        workdir = round_dir(str(root), n)
        if not os.path.isdir(os.path.join(workdir, "checkpoints")):
            notes.append(f"no {n}-step round: {workdir} has no checkpoints")
            continue
        restored = restore_inference(workdir)
        base = denoiser_profile(restored)
        measured.append(jax_row("distilled", restored, base))
        measured.append(pi_row("distilled", workdir, restored, base, data_config))
    if FLAGS.narrow_workdir:
        narrow = restore_inference(FLAGS.narrow_workdir)
        base = denoiser_profile(narrow)
        measured.append(
            pi_row("narrow KD student", FLAGS.narrow_workdir, narrow, base, data_config)
        )
    else:
        notes.append("no narrow KD student row: --narrow_workdir not given")
    if FLAGS.dcgan_workdir:
        measured.append(dcgan_row(FLAGS.dcgan_workdir, data_config))
    else:
        notes.append("no DCGAN row: --dcgan_workdir not given")
    rows = [r for r, _ in measured]
    return rows, {i: timer for i, (_, timer) in enumerate(measured)}, notes


def median_ms(timers: dict[int, Timer], rounds: int) -> dict[int, float]:
    """Median wall time (ms) of one call of each timer: ``rounds`` rounds, each calling every
    timer once to warm up after the switch, then once timed."""
    times: dict[int, list[float]] = {key: [] for key in timers}
    for _ in range(rounds):
        for key, timer in timers.items():
            timer()
            start = time.perf_counter()
            timer()
            times[key].append((time.perf_counter() - start) * 1e3)
    return {key: float(np.median(values)) for key, values in times.items()}


def find(rows: list[dict], model: str, runtime: str, steps: int) -> dict | None:
    return next(
        (r for r in rows if (r["model"], r["runtime"], r["steps"]) == (model, runtime, steps)),
        None,
    )


def goal(text: str, measured: str | None, met: bool | None) -> dict[str, Any]:
    """A goal entry; ``met`` None (and ``measured`` "rows missing") if its rows do not exist."""
    return {"goal": text, "measured": measured or "rows missing", "met": met}


def check_goals(rows: list[dict], goal_steps: int, teacher_steps: int) -> dict[str, dict]:
    """Goals (a)-(d) of the module docstring on the measured rows."""
    teacher = find(rows, "teacher", JAX_FLOAT, teacher_steps)
    int8 = find(rows, "distilled", PI_INT8, goal_steps)
    where = f"{goal_steps}-step distilled INT8 (Pi sampler)"
    versus = f"the teacher's at {teacher_steps} steps"
    ok = int8 is not None and teacher is not None
    goals = {
        "a_class_accuracy": goal(f"{where} class accuracy >= {ACCURACY_GOAL}", None, None),
        "b_frechet": goal(f"{where} Fréchet distance <= {FRECHET_GOAL}x {versus}", None, None),
        "b_frechet_best_teacher": goal(
            f"{where} Fréchet distance <= {FRECHET_GOAL}x the teacher's best row (fewer DDIM "
            "steps can score better than more)",
            None,
            None,
        ),
        "c_int8_frechet": int8_frechet_goal(rows),
        "d_speedup": goal(
            f"{where} >= {SPEEDUP_GOAL:g}x faster per image than {versus}", None, None
        ),
    }
    if int8 is not None:
        accuracy = int8["class_accuracy"]
        goals["a_class_accuracy"].update(measured=f"{accuracy:.3f}", met=accuracy >= ACCURACY_GOAL)
    if ok:
        ratio = int8["frechet_distance"] / max(teacher["frechet_distance"], 1e-12)
        goals["b_frechet"].update(
            measured=f"{ratio:.3f}x ({int8['frechet_distance']:.2f} / "
            f"{teacher['frechet_distance']:.2f})",
            met=ratio <= FRECHET_GOAL,
        )
        best = min(
            (r for r in rows if r["model"] == "teacher"), key=lambda r: r["frechet_distance"]
        )
        ratio = int8["frechet_distance"] / max(best["frechet_distance"], 1e-12)
        goals["b_frechet_best_teacher"].update(
            measured=f"{ratio:.3f}x ({int8['frechet_distance']:.2f} / "
            f"{best['frechet_distance']:.2f} at {best['steps']} steps)",
            met=ratio <= FRECHET_GOAL,
        )
        speedup = teacher["ms_per_image"] / int8["ms_per_image"]
        goals["d_speedup"].update(
            measured=f"{speedup:.1f}x faster ({int8['ms_per_image']:.2f} vs "
            f"{teacher['ms_per_image']:.1f} ms)",
            met=speedup >= SPEEDUP_GOAL,
        )
    return goals


def int8_frechet_goal(rows: list[dict]) -> dict[str, Any]:
    """Goal (c): INT8 / float Fréchet distance at every distilled step count with both rows."""
    ratios = {}
    for n in DISTILLED_STEPS:
        pair = find(rows, "distilled", JAX_FLOAT, n), find(rows, "distilled", PI_INT8, n)
        if all(pair):
            ratios[n] = pair[1]["frechet_distance"] / max(pair[0]["frechet_distance"], 1e-12)
    text = f"INT8 Fréchet distance <= {INT8_FRECHET_GOAL}x JAX float's at each distilled step count"
    measured = ", ".join(f"{n} steps {r:.3f}x" for n, r in ratios.items()) or None
    met = all(r <= INT8_FRECHET_GOAL for r in ratios.values()) if ratios else None
    return goal(text, measured, met)


def markdown(result: dict[str, Any]) -> str:
    """The table, the INT8 PSNR per timestep, the judge's references, notes and goals."""
    lines = [
        "| model | runtime | params | MACs per denoiser call | steps | denoiser calls | ms per "
        "image (batch 1, 1 thread) | class accuracy | Fréchet distance | precision | recall | "
        "INT8 file bytes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        size = r["int8_file_bytes"]
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['params']:,} | {r['macs_per_call']:,} | "
            f"{r['steps']} | {r['denoiser_calls']} | {r['ms_per_image']:.2f} | "
            f"{r['class_accuracy']:.3f} | {r['frechet_distance']:.2f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {'–' if size is None else format(size, ',')} |"
        )
    lines.append("")
    for r in result["rows"]:
        if "psnr_db_by_timestep" in r:
            by_t = ", ".join(f"t={t}: {v:.1f}" for t, v in r["psnr_db_by_timestep"].items())
            lines.append(f"- {r['model']} {r['steps']} steps INT8 PSNR vs JAX dB: {by_t}")
    judge = result["judge"]
    lines += [
        "",
        f"Judge: held-out accuracy {judge['judge_heldout_accuracy']:.3f} (the ceiling for class "
        f"accuracy); real-vs-held-out Fréchet distance {judge['real_frechet_distance']:.2f} "
        f"(the floor at {result['per_class']} per class); real-vs-held-out precision "
        f"{judge['real_precision']:.3f} and recall {judge['real_recall']:.3f} (Kynkäänniemi et "
        f"al. 2019, k = 3). XLA_FLAGS: `{result['xla_flags']}`.",
        *(f"Note: {note}." for note in result["notes"]),
        "",
        "Goals (issue 9):",
        "",
    ]
    verdict = {True: "met", False: "not met", None: "not measured"}
    lines += [
        f"- {g['goal']}: measured {g['measured']} — **{verdict[g['met']]}**"
        for g in result["goals"].values()
    ]
    return "\n".join(lines)


def report(root: Path, out: Path) -> dict[str, Any]:
    """Measures the rows, times them and writes ``diffusion_report.md`` and ``.json``."""
    rows, timers, notes = measure_rows(root)
    for index, ms in median_ms(timers, FLAGS.latency_runs).items():
        rows[index]["ms_per_image"] = ms
    result = {
        "root": str(root),
        "per_class": FLAGS.per_class,
        "latency_runs": FLAGS.latency_runs,
        "xla_flags": os.environ["XLA_FLAGS"],
        "tflite_threads": 1,
        "rows": rows,
        "notes": notes,
        "judge": rows[0]["judge"],
        "goals": check_goals(rows, FLAGS.goal_steps, max(map(int, FLAGS.teacher_steps))),
    }
    atomic_write_json(out / "diffusion_report.json", result)
    atomic_write_text(out / "diffusion_report.md", markdown(result) + "\n")
    return result


def main() -> None:
    result = report(Path(FLAGS.root), Path(FLAGS.out))
    print(markdown(result))


if __name__ == "__main__":
    cli.run("diffusion_report", main)
