"""``lwgen.eval.sr_report`` / ``bench/upscaler_report.py`` end to end on a tiny up-scaler."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lwgen.eval.sr_report import QUANTS, format_report, goals, upscaler_report
from lwgen.train.loop import train
from tests.conftest import ROOT
from tests.tiny import tiny_upscaler_config


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("sr_report")
    config = tiny_upscaler_config(num_train_steps=2, scale=4)
    config.export.input_sizes = (16, 64)  # 64: the report times 64 → 256
    train(config, str(root / "x4"))
    return root, upscaler_report({"x4": str(root / "x4")}, str(root / "out"), latency_runs=2)


@pytest.mark.slow  # three exports and four scorings: about 45 s
def test_rows_columns_goals_and_files(report):
    root, result = report
    rows = result["rows"]
    assert [r["runtime"] for r in rows] == ["bicubic (Pillow)"] + [f"TFLite {q}" for q in QUANTS]
    bicubic, float32, int8, int8_io = rows
    assert bicubic["gain_db"] == 0.0 and bicubic["params"] == 0
    assert float32["params"] > 0 and float32["macs_per_64px_input"] > float32["params"]
    assert int8["file_bytes"] < float32["file_bytes"] and int8_io["edgetpu_coverage"] == 1.0
    assert all(r["ms_per_image"] > 0 and 0 < r["ssim"] <= 1 for r in rows)
    assert abs(int8["psnr_y_db"] - float32["psnr_y_db"]) < 1.0
    g = result["goals"]
    assert g["int8_gain_over_bicubic_db"] == pytest.approx(int8["gain_db"])
    assert g["latency_met"] == (int8["ms_per_image"] <= 30.0)
    assert goals(rows, "x2") == {"workdir": "x2", "measured": False}
    saved = json.loads((root / "out" / "upscaler_report.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows))
    assert (root / "out" / "upscaler_report.md").read_text() == format_report(result)
    crops = np.asarray(Image.open(root / "out" / "crops_x4.png"))
    assert crops.shape == (3 * (64 + 4), 5 * (64 + 4), 3)  # 3 tiles x 5 columns, 64 px each


@pytest.mark.slow
def test_rerun_reuses_the_bundles(report):
    root, _ = report
    bundle = root / "out" / "bundles" / "x4_int8" / "bundle.json"
    before = bundle.stat().st_mtime_ns
    upscaler_report({"x4": str(root / "x4")}, str(root / "out"), latency_runs=1)
    assert bundle.stat().st_mtime_ns == before


def test_cli_rejects_bad_workdir_pairs(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/upscaler_report.py", "--workdirs=x4", f"--out={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "NAME:WORKDIR" in done.stderr
