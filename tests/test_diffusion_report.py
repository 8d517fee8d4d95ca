"""Smoke tests of ``bench/diffusion_report.py``: it runs in a subprocess on tiny workdirs (a
teacher, one progressive round, a narrow student, a DCGAN) and writes its table, JSON and goals."""

import json
import math
import subprocess
import sys

import pytest

from lwgen.families.diffusion_rounds import round_dir
from lwgen.train.loop import train
from tests.conftest import ROOT
from tests.tiny import tiny_diffusion_config, tiny_diffusion_teacher, tiny_gan_config

COLUMNS = {"params", "macs_per_call", "steps", "denoiser_calls", "ms_per_image", "class_accuracy",
           "frechet_distance", "precision", "recall", "int8_file_bytes"}  # fmt: skip
GOALS = {"a_class_accuracy", "b_frechet", "b_frechet_best_teacher", "c_int8_frechet", "d_speedup"}


def run_report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/diffusion_report.py", "--per_class=2", "--latency_runs=1", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory) -> dict[str, str]:
    """``root`` (teacher/ and steps_2/), ``narrow`` (a width-2 student of steps_2 trained on its
    predictions) and ``dcgan``, each trained 2 steps on 16×16 digits."""
    scratch = tmp_path_factory.mktemp("diffusion_report")
    root = scratch / "root"
    teacher = tiny_diffusion_teacher(str(root / "teacher"))
    train(tiny_diffusion_config(2, teacher), round_dir(str(root), 2))
    narrow = tiny_diffusion_config(2, round_dir(str(root), 2))
    narrow.teacher.update(mode="predictions", guidance=0.0)
    narrow.model.denoiser.base_width = 2
    train(narrow, str(scratch / "narrow"))
    train(tiny_gan_config(2), str(scratch / "dcgan"))
    return {"root": str(root), "narrow": str(scratch / "narrow"), "dcgan": str(scratch / "dcgan")}


@pytest.mark.slow
def test_diffusion_report_writes_every_row_and_goal(workdirs, tmp_path):
    out = tmp_path / "report"
    result = run_report(f"--root={workdirs['root']}", f"--narrow_workdir={workdirs['narrow']}",
                        f"--dcgan_workdir={workdirs['dcgan']}", f"--out={out}",
                        "--teacher_steps=10,5", "--goal_steps=2")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| model | runtime | params | MACs per denoiser call |" in result.stdout
    assert "no 4-step round" in result.stdout
    report = json.loads((out / "diffusion_report.json").read_text())
    keys = [(r["model"], r["runtime"], r["steps"]) for r in report["rows"]]
    assert keys == [
        ("teacher", "JAX float32", 10),
        ("teacher", "JAX float32", 5),
        ("distilled", "JAX float32", 2),
        ("distilled", "INT8, Pi sampler", 2),
        ("narrow KD student", "INT8, Pi sampler", 2),
        ("DCGAN", "INT8 TFLite", 1),
    ]
    for row in report["rows"]:
        assert COLUMNS <= set(row)
        numbers = [v for k, v in row.items() if k in COLUMNS and v is not None]
        assert all(math.isfinite(v) for v in numbers) and row["ms_per_image"] > 0
        assert (row["int8_file_bytes"] is None) == (row["runtime"] == "JAX float32")
    teacher, _, distilled, int8, narrow, _ = report["rows"]
    assert teacher["denoiser_calls"] == 20 and distilled["denoiser_calls"] == 2  # guided teacher
    assert narrow["params"] < int8["params"] == distilled["params"]
    assert set(int8["psnr_db_by_timestep"]) == {"49", "24"}
    assert set(report["goals"]) == GOALS
    assert all(goal["met"] in (True, False) for goal in report["goals"].values())
    assert "XLA_FLAGS" in (out / "diffusion_report.md").read_text()
    assert "intra_op_parallelism_threads=1" in report["xla_flags"]


def test_diffusion_report_without_a_teacher_fails_in_one_line(tmp_path):
    result = run_report(f"--root={tmp_path}", f"--out={tmp_path / 'out'}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("diffusion_report: error:") and "teacher" in lines[-1]
