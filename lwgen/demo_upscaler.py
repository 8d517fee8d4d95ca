"""The up-scaler demo: train ×2 and ×4 on the offline photos → export → report → crops PNG.

``run_upscaler_demo`` is what ``make demo-upscaler`` runs (through ``launch/demo_upscaler.py``):
it trains ``configs/upscaler_x2.py`` and ``configs/upscaler_x4.py`` briefly (``ROOT/x2``,
``ROOT/x4``), then `lwgen.eval.sr_report.upscaler_report` exports each as float32, int8 and
int8_io bundles (``ROOT/report/bundles``), scores them against bicubic on the held-out photos,
times them and writes ``ROOT/report/upscaler_report.md`` / ``.json`` and the crops PNGs. Every
stage resumes: rerunning the command after an interruption continues.
"""

from __future__ import annotations

import os
import time
from typing import Any

import ml_collections

from lwgen.console import log_to_file
from lwgen.eval.sr_report import upscaler_report
from lwgen.io import atomic_write_json
from lwgen.train.loop import LOG_FILE, train


def run_upscaler_demo(
    configs: dict[str, ml_collections.ConfigDict], root: str, latency_runs: int = 20
) -> dict[str, Any]:
    """Trains each config into ``ROOT/NAME`` and writes the report into ``ROOT/report``.

    Args:
      configs: ``{"x2": config, "x4": config}`` (any names; the goals are checked on ``x4``).
      root: output folder.
      latency_runs: timed invocations per report row.

    Returns:
      The report dict (``ROOT/report/upscaler_report.json``) plus ``train_wall_s`` per config and
      ``total_wall_s``, also written to ``ROOT/demo.json``.

    Raises:
      LwgenError: from training, export or evaluation.
    """
    os.makedirs(root, exist_ok=True)
    start = time.perf_counter()
    with log_to_file(os.path.join(root, LOG_FILE)):
        workdirs, train_s = {}, {}
        for name, config in configs.items():
            tick = time.perf_counter()
            workdirs[name] = os.path.join(root, name)
            train(config, workdirs[name])
            train_s[name] = time.perf_counter() - tick
        report = upscaler_report(workdirs, os.path.join(root, "report"), latency_runs)
    report.update(train_wall_s=train_s, total_wall_s=time.perf_counter() - start)
    atomic_write_json(os.path.join(root, "demo.json"), report)
    return report
