"""The up-scaler report: bicubic vs the up-scaler in float32, INT8 and int8_io, on held-out photos.

`upscaler_report` takes trained ``upscaler`` workdirs (e.g. ``x2``, ``x4`` and a variant such as
``x4_resize``), exports each as float32, int8 and int8_io bundles (``OUT/bundles/NAME_QUANT``,
reused when they hold the same checkpoint step), and measures per row: parameters and MACs per
64×64 input (``lwgen.eval.profile``), file bytes, ms per 64×64 image at batch 1 on one LiteRT
thread (median of ``latency_runs``; bicubic: Pillow, one thread), PSNR-Y and SSIM on the
held-out tiles (``lwgen.families.upscaler.score_upscaler``), the Edge TPU coverage of the
int8_io graph (``lwgen.export.edgetpu``) and the mean LPIPS (VGG16, ``lwgen.eval.lpips``; gray
tiles repeated to RGB) of each row's enlargement against the truth, when the VGG16 weights are
cached (``make vgg-weights``; otherwise the column is empty and the report says so). It writes
``OUT/upscaler_report.json`` and ``.md`` and ``OUT/crops_NAME.png``: per row a held-out tile (the
three bicubic does worst on) as low-res input (nearest), bicubic, float32, INT8 and the
high-resolution truth.

Goals (issue 13), checked on the ``x4`` workdir: INT8 ≥ +1.0 dB PSNR-Y over bicubic, ≤ 0.3 dB
below float32, 64 → 256 in ≤ 30 ms on one thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from lwgen.data.sr_pairs import bicubic_upsample
from lwgen.errors import LwgenError, MissingFileError
from lwgen.eval.lpips import lpips
from lwgen.eval.profile import profile_model
from lwgen.export.bundle import export_workdir, load_bundle
from lwgen.export.edgetpu import edgetpu_report
from lwgen.export.runtime import TFLiteRunner
from lwgen.families.upscaler import heldout_pairs, score_upscaler, sr_module
from lwgen.families.upscaler_export import model_name
from lwgen.images import make_grid, save_png
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.models.vgg_weights import load_vgg16_weights
from lwgen.train.checkpoint import restore_inference

QUANTS = ("float32", "int8", "int8_io")
PROFILE_SIDE = 64  # MACs and latency per 64×64 input
GAIN_GOAL_DB, INT8_LOSS_GOAL_DB, LATENCY_GOAL_MS = 1.0, 0.3, 30.0
CROP_ROWS = 3


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    """Median wall time of ``fn()`` in ms over ``runs`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def exported(workdir: str, bundle: Path, quant: str, step: int) -> dict[str, Any]:
    """``bundle.json`` of the ``quant`` bundle of ``workdir`` at ``bundle``, exported unless one of
    the same workdir, checkpoint step and quantization is already there."""
    try:
        metadata = load_bundle(bundle).metadata
        source = (metadata["source"].get("workdir"), metadata["source"].get("step"))
        same = source == (str(Path(workdir).resolve()), step)
        if same and all(m["quant"] == quant for m in metadata["models"].values()):
            return metadata
    except LwgenError:
        pass
    return export_workdir(workdir, bundle, quant=quant)


def _bundle_row(name: str, workdir: str, restored, quant: str, out: Path, runs: int) -> dict:
    """One exported row; its predictions on the held-out tiles are kept under ``"_pred"``."""
    data = restored.config.data
    bundle = out / "bundles" / f"{name}_{quant}"
    model = exported(workdir, bundle, quant, int(restored.step))["models"]
    runner = TFLiteRunner.from_bundle(load_bundle(bundle), model_name(int(data.eval_size)), 1)
    timed = TFLiteRunner.from_bundle(load_bundle(bundle), model_name(PROFILE_SIDE), 1)
    lowres = np.zeros((1, PROFILE_SIDE, PROFILE_SIDE, int(data.channels)), np.float32)
    preds = []

    def run(x):
        preds.append(runner(lowres=x)["image"])
        return preds[-1]

    row = {
        "model": name,
        "runtime": f"TFLite {quant}",
        "file_bytes": int(model[model_name(PROFILE_SIDE)]["size_bytes"]),
        "ms_per_image": median_ms(lambda: timed.invoke(lowres=lowres), runs),
        **score_upscaler(run, data, int(data.eval_size)),
        "_pred": np.concatenate(preds),
    }
    if quant == "int8_io":
        report = edgetpu_report(bundle / f"{model_name(PROFILE_SIDE)}.tflite")
        row["edgetpu_coverage"] = float(report["coverage"])
    return row


def _bicubic_row(name: str, data, runs: int) -> dict:
    scale, channels = int(data.scale), int(data.channels)
    lowres = np.zeros((1, PROFILE_SIDE, PROFILE_SIDE, channels), np.float32)
    return {
        "model": name,
        "runtime": "bicubic (Pillow)",
        "params": 0,
        "macs_per_64px_input": None,
        "file_bytes": 0,
        "ms_per_image": median_ms(lambda: bicubic_upsample(lowres, scale), runs),
        **score_upscaler(lambda x: bicubic_upsample(x, scale), data, int(data.eval_size)),
    }


def lpips_weights() -> dict[str, np.ndarray] | None:
    """The cached VGG16 + LPIPS-head weights, or None when they are not fetched."""
    try:
        return load_vgg16_weights()
    except MissingFileError:
        return None


def lpips_to_truth(pred: np.ndarray, truth: np.ndarray, weights) -> float | None:
    """Mean LPIPS (Zhang et al. 2018, VGG16) between enlarged tiles, float32 ``[N, H, W, C]`` in
    ``[-1, 1]``, and the uint8 truth of the same shape; gray tiles are repeated to RGB. None
    without ``weights``."""
    if weights is None:
        return None

    def rgb(x: np.ndarray) -> np.ndarray:
        return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x

    truth = truth.astype(np.float32) / 127.5 - 1.0
    return float(np.mean(lpips(rgb(np.clip(pred, -1.0, 1.0)), rgb(truth), weights)))


def workdir_rows(
    name: str, workdir: str, out: Path, runs: int, weights=None
) -> list[dict[str, Any]]:
    """The bicubic row and the float32, int8 and int8_io rows of one workdir (see the module
    docstring), with LPIPS to the truth when ``weights`` (VGG16 + heads) are given; also writes
    ``OUT/crops_NAME.png``."""
    restored = restore_inference(workdir)
    data = restored.config.data
    module = sr_module(restored.config)
    x = jnp.zeros((1, PROFILE_SIDE, PROFILE_SIDE, module.channels))
    profile = profile_model(module, restored.variables["upscaler"], x)
    base = {"scale": module.scale, "params": profile["params"],
            "macs_per_64px_input": profile["macs"]}  # fmt: skip
    rows = [{**_bicubic_row(f"{name} bicubic", data, runs), "scale": module.scale}]
    rows += [{**base, **_bundle_row(name, workdir, restored, q, out, runs)} for q in QUANTS]
    write_crops(out / f"crops_{name}.png", data, rows[1]["_pred"], rows[2]["_pred"])
    lowres, truth = heldout_pairs(data, int(data.eval_size))
    rows[0]["lpips"] = lpips_to_truth(bicubic_upsample(lowres, int(data.scale)), truth, weights)
    for row in rows[1:]:
        row["lpips"] = lpips_to_truth(row.pop("_pred"), truth, weights)
    return rows


def write_crops(path: Path, data, float_pred: np.ndarray, int8_pred: np.ndarray) -> None:
    """``CROP_ROWS`` held-out tiles (those bicubic enlarges worst), one row each: the low-res input
    enlarged by nearest neighbour, bicubic, float32, INT8, the truth; a PNG at 1:1."""
    scale = int(data.scale)
    lowres, truth = heldout_pairs(data, int(data.eval_size))
    truth = truth.astype(np.float32) / 127.5 - 1.0
    bicubic = bicubic_upsample(lowres, scale)
    worst = np.argsort(-np.mean((bicubic - truth) ** 2, axis=(1, 2, 3)))[:CROP_ROWS]
    nearest = lowres.repeat(scale, 1).repeat(scale, 2)
    columns = [nearest, bicubic, float_pred, int8_pred, truth]
    tiles = np.stack([c[worst] for c in columns], axis=1).reshape(-1, *truth.shape[1:])
    save_png(path, make_grid(tiles, rows=len(worst), gutter=4, scale=1))


def goals(rows: list[dict[str, Any]], name: str = "x4") -> dict[str, Any]:
    """The issue-13 goals on workdir ``name``'s rows (``None`` where that workdir is missing)."""
    by_runtime = {r["runtime"]: r for r in rows if r["model"] in (name, f"{name} bicubic")}
    if "TFLite int8" not in by_runtime:
        return {"workdir": name, "measured": False}
    int8, float32 = by_runtime["TFLite int8"], by_runtime["TFLite float32"]
    gain = int8["psnr_y_db"] - by_runtime["bicubic (Pillow)"]["psnr_y_db"]
    loss = float32["psnr_y_db"] - int8["psnr_y_db"]
    return {
        "workdir": name,
        "measured": True,
        "int8_gain_over_bicubic_db": gain,
        "int8_gain_met": gain >= GAIN_GOAL_DB,
        "int8_loss_vs_float_db": loss,
        "int8_loss_met": loss <= INT8_LOSS_GOAL_DB,
        "int8_ms_64_to_256": int8["ms_per_image"],
        "latency_met": int8["ms_per_image"] <= LATENCY_GOAL_MS,
    }


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def format_report(report: Mapping[str, Any]) -> str:
    """The Markdown version of ``upscaler_report.json``."""
    lines = [
        "# Up-scaler report (held-out photos)",
        "",
        "| model | runtime | scale | params | MACs per 64×64 input | file bytes | ms per image "
        "(1 thread) | PSNR-Y dB | SSIM | LPIPS | gain over bicubic dB | Edge TPU coverage |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        cells = [r["model"], r["runtime"], f"×{r['scale']}", _cell(r["params"], 0),
                 _cell(r["macs_per_64px_input"], 0), _cell(r["file_bytes"], 0),
                 _cell(r["ms_per_image"], 2), _cell(r["psnr_y_db"], 2), _cell(r["ssim"], 4),
                 _cell(r.get("lpips"), 4), _cell(r["gain_db"], 2),
                 _cell(r.get("edgetpu_coverage"), 2)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    g = report["goals"]
    if all(r.get("lpips") is None for r in report["rows"]):
        lines += ["", "LPIPS: not measured (no VGG16 weights cached: run `make vgg-weights`)."]
    lines.append("")
    if g["measured"]:
        lines += [
            f"Goals ({g['workdir']}): INT8 gain over bicubic {g['int8_gain_over_bicubic_db']:+.2f} "
            f"dB (≥ +{GAIN_GOAL_DB} dB: {'met' if g['int8_gain_met'] else 'NOT met'}); INT8 "
            f"below float32 by {g['int8_loss_vs_float_db']:.3f} dB (≤ {INT8_LOSS_GOAL_DB} dB: "
            f"{'met' if g['int8_loss_met'] else 'NOT met'}); 64 → 256 INT8 "
            f"{g['int8_ms_64_to_256']:.2f} ms (≤ {LATENCY_GOAL_MS} ms: "
            f"{'met' if g['latency_met'] else 'NOT met'}).",
        ]
    lines += ["", *[f"![{n}](crops_{n}.png)" for n in report["workdirs"]], ""]
    return "\n".join(lines)


def upscaler_report(workdirs: Mapping[str, str], out: str, latency_runs: int = 20) -> dict:
    """Builds, writes and returns the report (see the module docstring).

    Args:
      workdirs: ``{row name: trained upscaler workdir}``, e.g. ``{"x2": ..., "x4": ...}``.
      out: report folder.
      latency_runs: timed invocations per row.

    Raises:
      LwgenError: from restoring, exporting or scoring a workdir.
    """
    out_dir = Path(out)
    weights = lpips_weights()
    rows = [
        row
        for n, w in workdirs.items()
        for row in workdir_rows(n, w, out_dir, latency_runs, weights)
    ]
    report = {"workdirs": dict(workdirs), "rows": rows, "goals": goals(rows)}
    atomic_write_json(out_dir / "upscaler_report.json", report)
    atomic_write_text(out_dir / "upscaler_report.md", format_report(report))
    return report
