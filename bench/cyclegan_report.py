"""CycleGAN report: teacher and GAN Compression student, float32 and INT8, on one table.

    python bench/cyclegan_report.py --root=runs/cyclegan --out=runs/cyclegan/report \\
        [--latency_runs=50] [--big_size=256] [--big_runs=5] \\
        [--extra="student BN QAT INT8=runs/cyclegan_bn/student_qat:int8_io"]

Reads the workdirs of ``make demo-cyclegan`` (``ROOT/teacher``, ``ROOT/student``,
``ROOT/student_qat``), exports them into ``OUT/bundles`` and measures five rows: teacher float32,
teacher INT8, student float32, student INT8 (post-training quantization) and student QAT INT8
(INT8 rows are full-integer ``int8_io`` bundles, the Edge TPU form), then any ``--extra`` rows.
Columns: params and MACs per image of one generator (``lwgen.eval.profile``); the
``generator_ab`` file bytes; ms per image at batch 1 on one thread with ``export/pi_infer.py``'s
interpreter (XNNPACK) at 32×32 and at ``--big_size``² (the same architectures with random
weights and inputs: latency only); the Fashion-MNIST judge's target-class rate, the Fréchet
distance and the cycle L1 of each direction (``lwgen.families.cyclegan.evaluate_bundle``, every
held-out image); the Edge TPU op coverage of the int8_io models (``lwgen.export.edgetpu``). A
second table compares the student's normalization choices (instance norm vs batch norm, which
folds into the convs) as int8_io graphs: op count, latency and Edge TPU coverage.

Goals (issue 10): student MACs ≤ 1/10 of the teacher's; INT8 student target-class rate ≥ 0.9×
the float teacher's and Fréchet distance ≤ 1.3× the teacher's (each direction); every compute op
of the int8_io student maps to the Edge TPU. Writes ``OUT/cyclegan_report.md`` and ``.json``.
Errors print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import flags

from lwgen import cli
from lwgen.demo_cyclegan import generator_macs
from lwgen.errors import ConfigError
from lwgen.export.bundle import export_bundle, export_workdir
from lwgen.export.edgetpu import edgetpu_report
from lwgen.export.spec import ExportSpec, TensorSpec
from lwgen.families import cyclegan_core as core
from lwgen.families.cyclegan import evaluate_bundle
from lwgen.families.cyclegan_export import generator_fn
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.train.checkpoint import restore_inference

flags.DEFINE_string("root", "runs/cyclegan", "Folder with teacher/, student/, student_qat/.")
flags.DEFINE_string("out", None, "Report folder (bundles/, cyclegan_report.md/.json).")
flags.DEFINE_integer("latency_runs", 50, "Timed invocations per model at 32×32.", lower_bound=1)
flags.DEFINE_integer("big_size", 256, "Side of the latency-only column.", lower_bound=32)
flags.DEFINE_integer("big_runs", 5, "Timed invocations per model at big_size.", lower_bound=1)
flags.DEFINE_list("extra", [], "More rows, each NAME=WORKDIR:QUANT (e.g. a batch-norm student).")
flags.mark_flags_as_required(["out"])
FLAGS = flags.FLAGS

EXPORT_DIR = Path(__file__).resolve().parents[1] / "export"
ROWS = (  # (row name, workdir, quant)
    ("teacher float32", "teacher", "float32"),
    ("teacher INT8", "teacher", "int8_io"),
    ("student float32", "student", "float32"),
    ("student INT8 (PTQ)", "student", "int8_io"),
    ("student QAT INT8", "student_qat", "int8_io"),
)
METRICS = ("target_rate", "frechet", "precision", "recall", "cycle_l1")
DIRECTIONS = ("a2b", "b2a")
MACS_GOAL, RATE_GOAL, FRECHET_GOAL = 0.1, 0.9, 1.3
BIG_CALIBRATION = 200


def pi_infer_module():
    """``export/pi_infer.py`` loaded by path, as on a Pi."""
    spec = importlib.util.spec_from_file_location("pi_infer", EXPORT_DIR / "pi_infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pi_ms(pi_infer, bundle: Path, runs: int) -> float:
    """Median ms per image of the bundle's ``generator_ab`` on ``pi_infer``'s interpreter (1
    thread, XNNPACK), on one random image."""
    args = pi_infer.parse_args(["--bundle", str(bundle), "--out", "unused.png"])
    metadata = pi_infer.read_metadata(str(bundle))
    model = pi_infer.checked_model(metadata, core.G_AB, ["image"])
    interpreter = pi_infer.open_model(args, metadata, core.G_AB, model)
    shape = model["inputs"][0]["shape"][1:]
    x = np.random.default_rng(0).uniform(-1, 1, (1, *shape)).astype(np.float32)
    return pi_infer.benchmark(interpreter, {"image": x}, runs)[0]


def coverage(bundle: Path, quant: str) -> float | None:
    """Edge TPU op coverage of the bundle's ``generator_ab`` (None unless ``int8_io``)."""
    if quant != "int8_io":
        return None
    return float(edgetpu_report(bundle / f"{core.G_AB}.tflite")["coverage"])


def measure_row(name: str, workdir: Path, quant: str, bundles: Path, pi_infer) -> dict:
    """One row's bundle, profile, file size, 32×32 latency, metrics and coverage."""
    bundle = bundles / f"{workdir.parent.name}_{workdir.name}_{quant}"
    metadata = export_workdir(workdir, bundle, quant=quant)
    restored = restore_inference(str(workdir))
    return {
        "model": name,
        "workdir": str(workdir),
        "quant": quant,
        **generator_macs(restored.config, restored.variables),
        "file_bytes": metadata["models"][core.G_AB]["size_bytes"],
        "psnr_db": metadata["models"][core.G_AB]["error"]["image"]["psnr_db"],
        "ms_32": pi_ms(pi_infer, bundle, FLAGS.latency_runs),
        "metrics": evaluate_bundle(str(bundle), restored.config.data),
        "edgetpu_coverage": coverage(bundle, quant),
        "config": restored.config,
    }


def _random_images(shape, num: int, seed: int, stream: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, stream])
    return {"image": rng.uniform(-1, 1, (num, *shape)).astype(np.float32)}


def random_bundle(config, size: int, quant: str, out: Path, **generator) -> Path:
    """``config``'s generator (``generator`` overriding its fields) at ``size``² with random
    weights, exported alone through the generic export path (random calibration inputs, no PSNR
    floor: the weights are untrained)."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.data.image_size = size
    config.model.generator.update(generator)
    module = core.modules(config)[core.G_AB]
    variables = module.init(jax.random.PRNGKey(0), core.dummy_image(config))
    shape = core.image_shape(config)
    spec = ExportSpec(
        name=core.G_AB,
        fn=functools.partial(generator_fn, module),
        variables=variables,
        inputs=(TensorSpec("image", shape),),
        outputs=("image",),
        sample_inputs=functools.partial(_random_images, shape),
        min_psnr=0.0,
    )
    fields = {"image_shape": list(shape), "directions": {"a2b": core.G_AB}}
    num = BIG_CALIBRATION if quant.startswith("int8") else 8
    export_bundle([spec], out, family="cyclegan", quant=quant, num_calibration=num,
                  family_fields=fields)  # fmt: skip
    return out


def big_latency(rows: list[dict], bundles: Path, pi_infer) -> None:
    """Adds ``ms_big`` to every row: the row's architecture at ``--big_size``² (the QAT row has
    the PTQ student's graph, so it reuses that measurement)."""
    measured: dict[tuple, float] = {}
    for row in rows:
        generator = row["config"].model.generator
        key = (*(generator[k] for k in ("base_width", "num_blocks", "separable", "norm")),
               row["quant"])  # fmt: skip
        if key not in measured:
            out = bundles / f"big_{len(measured)}"
            random_bundle(row["config"], FLAGS.big_size, row["quant"], out)
            measured[key] = pi_ms(pi_infer, out, FLAGS.big_runs)
        row["ms_big"] = measured[key]


def norm_choices(config, bundles: Path, pi_infer) -> list[dict]:
    """The student architecture as int8_io graphs with each normalization: op count, ms per
    image at 32×32 and Edge TPU coverage (random weights)."""
    out = []
    for norm in ("instance", "batch"):
        bundle = random_bundle(config, 32, "int8_io", bundles / f"norm_{norm}", norm=norm)
        report = edgetpu_report(bundle / f"{core.G_AB}.tflite")
        out.append({"norm": norm, "ops": report["num_ops"], "coverage": report["coverage"],
                    "ms_32": pi_ms(pi_infer, bundle, FLAGS.latency_runs)})  # fmt: skip
    return out


def goal(text: str, measured: str, met: bool) -> dict[str, Any]:
    return {"goal": text, "measured": measured, "met": bool(met)}


def check_goals(rows: list[dict]) -> list[dict]:
    """The issue's goals, measured (see the module docstring)."""
    teacher, student = rows[0], rows[2]
    goals = [goal("student MACs <= 1/10 of the teacher's",
                  f"{student['macs']:,} vs {teacher['macs']:,} "
                  f"({teacher['macs'] / student['macs']:.1f}x fewer)",
                  student["macs"] <= MACS_GOAL * teacher["macs"])]  # fmt: skip
    for row in [r for r in rows[3:] if r["quant"].startswith("int8")]:
        for d in DIRECTIONS:
            t, s = teacher["metrics"], row["metrics"]
            goals.append(
                goal(
                    f"{row['model']} {d} target rate >= 0.9x teacher float",
                    f"{s[f'{d}_target_rate']:.3f} vs {t[f'{d}_target_rate']:.3f}",
                    s[f"{d}_target_rate"] >= RATE_GOAL * t[f"{d}_target_rate"],
                )
            )
            goals.append(goal(f"{row['model']} {d} Fréchet <= 1.3x teacher float",
                              f"{s[f'{d}_frechet']:.2f} vs {t[f'{d}_frechet']:.2f}",
                              s[f"{d}_frechet"] <= FRECHET_GOAL * t[f"{d}_frechet"]))  # fmt: skip
        goals.append(goal(f"every op of the {row['model']} int8_io graph maps to the Edge TPU",
                          f"coverage {row['edgetpu_coverage']:.3f}",
                          row["edgetpu_coverage"] == 1.0))  # fmt: skip
    return goals


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    big = result["big_size"]
    lines = [
        "# CycleGAN report: Fashion-MNIST sneaker ↔ ankle boot (32×32)",
        "",
        f"| model | params | MACs/image | file bytes | ms/image 32² | ms/image {big}² | "
        "target rate a2b / b2a | Fréchet a2b / b2a | precision a2b / b2a | recall a2b / b2a | "
        "cycle L1 a2b / b2a | Edge TPU coverage |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        m = row["metrics"]
        pairs = [" / ".join(f"{m[f'{d}_{k}']:.3f}" for d in DIRECTIONS) for k in METRICS]
        tpu = "–" if row["edgetpu_coverage"] is None else f"{row['edgetpu_coverage']:.3f}"
        lines.append(f"| {row['model']} | {row['params']:,} | {row['macs']:,} | "
                     f"{row['file_bytes']:,} | {row['ms_32']:.3f} | {row['ms_big']:.1f} | "
                     f"{' | '.join(pairs)} | {tpu} |")  # fmt: skip
    real = result["rows"][0]["metrics"]
    lines += [
        "",
        f"Real held-out images: judge target rate {real['real_b_target_rate']:.3f} (B) / "
        f"{real['real_a_target_rate']:.3f} (A); Fréchet floor (train vs test, same count) "
        f"{real['real_frechet_b']:.3f} (B) / {real['real_frechet_a']:.3f} (A). "
        f"ms/image: batch 1, 1 thread, pi_infer's interpreter; the {big}² column uses random "
        "weights (latency only).",
        "",
        "Student normalization as int8_io graphs (random weights):",
        "",
        "| norm | ops | ms/image 32² | Edge TPU coverage |",
        "|---|---|---|---|",
        *(
            f"| {n['norm']} | {n['ops']} | {n['ms_32']:.3f} | {n['coverage']:.3f} |"
            for n in result["norms"]
        ),  # fmt: skip
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *(
            f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else 'no'} |"
            for g in result["goals"]
        ),  # fmt: skip
    ]
    return "\n".join(lines)


def row_plan(root: Path, extra: list[str]) -> list[tuple[str, Path, str]]:
    """``ROWS`` under ``root``, then the ``--extra`` rows ``NAME=WORKDIR:QUANT``.

    Raises:
      ConfigError: on an extra row that does not have that form.
    """
    plan = [(name, root / workdir, quant) for name, workdir, quant in ROWS]
    for item in extra:
        name, _, rest = item.partition("=")
        workdir, _, quant = rest.rpartition(":")
        if not (name and workdir and quant):
            raise ConfigError(f"--extra {item!r} is not NAME=WORKDIR:QUANT")
        plan.append((name, Path(workdir), quant))
    return plan


def report(root: Path, out: Path) -> dict[str, Any]:
    """Measures every row and writes ``cyclegan_report.md`` and ``.json``."""
    pi_infer, bundles = pi_infer_module(), out / "bundles"
    bundles.mkdir(parents=True, exist_ok=True)
    rows = [measure_row(name, workdir, quant, bundles, pi_infer)
            for name, workdir, quant in row_plan(root, FLAGS.extra)]  # fmt: skip
    big_latency(rows, bundles, pi_infer)
    result = {
        "root": str(root),
        "big_size": FLAGS.big_size,
        "rows": rows,
        "norms": norm_choices(rows[2]["config"], bundles, pi_infer),
        "goals": check_goals(rows),
    }
    for row in rows:
        row["config"] = row["config"].to_dict()
    atomic_write_json(out / "cyclegan_report.json", result)
    atomic_write_text(out / "cyclegan_report.md", markdown(result) + "\n")
    return result


def main() -> None:
    result = report(Path(FLAGS.root), Path(FLAGS.out))
    print(markdown(result))


if __name__ == "__main__":
    cli.run("cyclegan_report", main)
