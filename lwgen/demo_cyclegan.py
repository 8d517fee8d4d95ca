"""The CycleGAN demo: teacher → GAN Compression student → QAT → INT8 bundle → Pi translation.

``run_cyclegan_demo`` is what ``make demo-cyclegan`` runs (through ``launch/demo_cyclegan.py``) on
Fashion-MNIST sneakers ↔ ankle boots: it trains the teacher of ``configs/cyclegan_fashion.py``
(``ROOT/teacher``), distils the student of its ``student`` group (``ROOT/student``), fine-tunes
both student generators with QAT (``ROOT/student_qat``), exports them as one bundle
(``ROOT/bundle_<quant>``), translates held-out images of each domain with ``export/pi_infer.py``
in a subprocess as on a Raspberry Pi (and translates the translations back), writes the grid
``ROOT/grid.png`` (rows: A inputs, A → B, back to A, B inputs, B → A, back to B) and scores the
teacher, the student and the bundle (``lwgen.families.cyclegan.evaluate``) into ``report.json``
and ``report.md``. Every stage resumes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import ml_collections
import numpy as np
from PIL import Image

from lwgen import images as image_grid
from lwgen.console import log_to_file
from lwgen.data.source import to_unit_range
from lwgen.demo import BENCHMARK_LINE, run_pi_infer
from lwgen.eval.profile import profile_model
from lwgen.export.bundle import export_workdir
from lwgen.families import cyclegan_core as core
from lwgen.families.cyclegan import evaluate, evaluate_bundle, heldout_images
from lwgen.families.cyclegan_student import qat_workdir, student_config
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.train.checkpoint import restore_inference
from lwgen.train.loop import LOG_FILE, train

METRICS = ("target_rate", "frechet", "precision", "recall", "cycle_l1")


def generator_macs(config: ml_collections.ConfigDict, variables) -> dict[str, int]:
    """``{"params", "macs"}`` of one generator per image (``lwgen.eval.profile``)."""
    module = core.modules(config)[core.G_AB]
    profile = profile_model(module, variables[core.G_AB], core.dummy_image(config), train=False)
    return {"params": profile["params"], "macs": profile["macs"]}


def pi_translate(pi_script: str, bundle: str, direction: str, source: str, out: str) -> float:
    """Runs ``pi_infer.py --direction DIRECTION --input SOURCE --out OUT --benchmark 50`` in a
    fresh interpreter; returns its median ms per image (batch 1, 1 thread).

    Raises:
      RuntimeError: if the script fails (its stderr is included).
    """
    args = [f"--bundle={bundle}", f"--direction={direction}", f"--input={source}",
            f"--out={out}", "--threads=1", "--benchmark=50"]  # fmt: skip
    return float(run_pi_infer(pi_script, args, BENCHMARK_LINE).group(1))


def read_pngs(folder: str) -> np.ndarray:
    """The sorted PNGs of ``folder`` as float32 ``[N, H, W, C]`` in ``[-1, 1]``."""
    files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    images = [np.asarray(Image.open(os.path.join(folder, f))) for f in files]
    return to_unit_range(np.stack([im.reshape(*im.shape[:2], -1) for im in images]))


def write_pngs(folder: str, images: np.ndarray) -> None:
    """float32 ``[N, H, W, C]`` images in ``[-1, 1]`` as ``folder/000.png``, ... (uint8)."""
    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(image_grid.to_uint8(images)):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            os.path.join(folder, f"{i:03d}.png")
        )


def pi_grid(root: str, bundle: str, pi_script: str, data_config, columns: int) -> dict:
    """Translates ``columns`` held-out images of each domain and back with ``pi_infer.py``;
    writes ``ROOT/grid.png``; returns the median ms per image of each direction."""
    pi_dir, rows, timings = os.path.join(root, "pi"), [], {}
    images = heldout_images(data_config)
    for domain, forward, back in (("a", "a2b", "b2a"), ("b", "b2a", "a2b")):
        inputs = os.path.join(pi_dir, f"inputs_{domain}")
        write_pngs(inputs, images[domain][:columns])
        translated, returned = (
            os.path.join(pi_dir, f"{domain}_{name}") for name in (forward, "cycle")
        )
        timings[forward] = pi_translate(pi_script, bundle, forward, inputs, translated)
        pi_translate(pi_script, bundle, back, translated, returned)
        rows += [read_pngs(inputs), read_pngs(translated), read_pngs(returned)]
    grid = image_grid.make_grid(np.concatenate(rows), rows=len(rows), scale=3)
    image_grid.save_png(os.path.join(root, "grid.png"), grid)
    return timings


def format_report(report: dict[str, Any]) -> str:
    """The Markdown version of ``report.json``."""
    domains = report["domains"]
    lines = [
        f"# lwgen CycleGAN demo: {domains['a']} ↔ {domains['b']} (Fashion-MNIST, 32×32)",
        "",
        f"Wall time: teacher {report['wall_s']['teacher']:.0f} s, student "
        f"{report['wall_s']['student']:.0f} s, QAT {report['wall_s']['qat']:.0f} s, total "
        f"{report['wall_s']['total']:.0f} s.",
        "",
        "| model | runtime | MACs/image | a2b target rate | b2a target rate | a2b Fréchet | "
        "b2a Fréchet | a2b precision | b2a precision | a2b recall | b2a recall | a2b cycle L1 | "
        "b2a cycle L1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        m = row["metrics"]
        cells = [f"{m[f'{d}_{k}']:.3f}" for k in METRICS for d in ("a2b", "b2a")]
        lines.append(
            f"| {row['model']} | {row['runtime']} | {row['macs']:,} | {' | '.join(cells)} |"
        )
    real = report["rows"][0]["metrics"]
    lines += [
        "",
        f"Real held-out images: target rate {real['real_b_target_rate']:.3f} ({domains['b']}), "
        f"{real['real_a_target_rate']:.3f} ({domains['a']}); Fréchet floor "
        f"{real['real_frechet_b']:.3f} / {real['real_frechet_a']:.3f}.",
        f"`pi_infer.py` on this machine (batch 1, 1 thread): {report['pi_ms']['a2b']:.3f} ms "
        f"(a2b), {report['pi_ms']['b2a']:.3f} ms (b2a) per image.",
        "",
        "![rows: A, A→B, back to A, B, B→A, back to B](grid.png)",
        "",
    ]
    return "\n".join(lines)


def run_cyclegan_demo(
    config: ml_collections.ConfigDict, root: str, pi_script: str, columns: int = 8
) -> dict[str, Any]:
    """Runs the whole demo (see the module docstring).

    Args:
      config: the teacher's config with a ``student`` group (``configs/cyclegan_fashion.py``).
      root: output folder (resumed).
      pi_script: path of ``export/pi_infer.py``.
      columns: held-out images per grid row.

    Returns:
      The report dict also written to ``ROOT/report.json``.

    Raises:
      LwgenError: from training, distillation, evaluation or export.
      RuntimeError: if the Pi script fails.
    """
    os.makedirs(root, exist_ok=True)
    with log_to_file(os.path.join(root, LOG_FILE)):
        return _run(config, root, pi_script, columns)


def _stages(config, root) -> tuple[dict[str, str], dict[str, float]]:
    """Trains the teacher, the student and the QAT student; their workdirs and wall times."""
    dirs = {name: os.path.join(root, name) for name in ("teacher", "student", "student_qat")}
    wall, start = {}, time.perf_counter()
    train(config, dirs["teacher"])
    wall["teacher"] = time.perf_counter() - start
    plan = config.student
    weights = (plan.recon_weight, plan.distill_weight)
    student_steps = plan.num_train_steps
    student = student_config(config, dirs["teacher"], plan.generator.to_dict(), student_steps,
                             *weights)  # fmt: skip
    train(student, dirs["student"])
    wall["student"] = time.perf_counter() - start - wall["teacher"]
    qat_workdir(dirs["student"], dirs["student_qat"], plan.qat_steps, plan.qat_lr)
    wall["qat"] = time.perf_counter() - start - wall["teacher"] - wall["student"]
    return dirs, wall


def _run(config, root, pi_script, columns) -> dict[str, Any]:
    start = time.perf_counter()
    dirs, wall = _stages(config, root)
    quant = config.export.quant
    bundle = os.path.join(root, f"bundle_{quant}")
    metadata = export_workdir(dirs["student_qat"], bundle, quant=quant)
    rows = []
    for model, key in (("teacher", "teacher"), ("student", "student")):
        restored = restore_inference(dirs[key])
        macs = generator_macs(restored.config, restored.variables)
        rows.append({"model": model, "runtime": "JAX float32", **macs,
                     "metrics": evaluate(restored)})  # fmt: skip
    # the QAT student has the student's architecture: the same MACs
    rows.append({"model": "student QAT", "runtime": f"TFLite {quant}", **macs,
                 "metrics": evaluate_bundle(bundle, config.data)})  # fmt: skip
    report = {
        "domains": metadata["fields"]["domains"],
        "rows": rows,
        "bundle": {
            "path": bundle,
            "bytes": {n: m["size_bytes"] for n, m in metadata["models"].items()},
        },
        "pi_ms": pi_grid(root, bundle, pi_script, config.data, columns),
        "wall_s": {**wall, "total": time.perf_counter() - start},
    }
    atomic_write_json(os.path.join(root, "report.json"), report)
    atomic_write_text(os.path.join(root, "report.md"), format_report(report))
    return report
