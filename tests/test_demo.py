"""End-to-end test of the demo pipeline on the tiny config: train → eval → export → Pi script."""

import json
import os

from lwgen.demo import run_demo
from tests.conftest import ROOT
from tests.tiny import tiny_gan_config


def test_demo_writes_reports_and_pi_script_grid(tmp_path, monkeypatch):
    monkeypatch.setenv("LWGEN_CACHE", str(tmp_path / "cache"))
    workdir = tmp_path / "demo"
    pi_script = os.path.join(ROOT, "export", "pi_infer.py")
    report = run_demo(tiny_gan_config(num_train_steps=2), str(workdir), pi_script, per_class=20)

    assert json.loads((workdir / "report.json").read_text()) == report
    assert report["train"]["steps"] == 2
    assert report["export"]["quant"] == "int8" and report["export"]["psnr_db"] >= 20.0
    assert report["pi_infer"]["median_ms"] > 0 and report["pi_infer"]["invocations"] == 200
    for name in ("eval_jax", "eval_int8"):
        assert 0.0 <= report[name]["class_accuracy"] <= 1.0
        assert 0.0 <= report[name]["precision"] <= 1.0 and 0.0 <= report[name]["recall"] <= 1.0
        assert report[name]["num_samples"] == 200
    assert (workdir / "samples_int8.png").stat().st_size > 0
    markdown = (workdir / "report.md").read_text()
    assert "| TFLite int8 bundle |" in markdown and "| precision | recall |" in markdown
    assert "| real training images (reference) |" in markdown
