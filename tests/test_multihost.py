"""Multi-host training: two real JAX processes on 127.0.0.1 (CPU, gloo collectives, one device
each, one shared workdir) train like one process on one device, only process 0 writes the
workdir's files other than checkpoints, and the run resumes.

The fast test runs the toy family (``tests/toy_family.py``: per-sample noise keyed by global
sample index, an EMA) through ``lwgen.train.loop.train``; the slow one runs ``launch/train.py
--multihost`` on the tiny GAN (BatchNorm statistics averaged across the processes). Each child
records the paths it opens for writing or renames onto (``sys.addaudithook``); TensorFlow's C++
event writer is told apart by the pid in its file name.
"""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from lwgen.families.registry import make_trainer
from lwgen.train import checkpoint
from lwgen.train.loop import train
from tests.conftest import ROOT
from tests.tiny import tiny_gan_config
from tests.toy_family import toy_config

TIMEOUT_S = 300


CHILD = textwrap.dedent(
    """
    import os, sys
    record, kind, *args = sys.argv[1:]
    writes, writing = [], os.O_WRONLY | os.O_RDWR

    def audit(event, event_args):
        if event == "open" and isinstance(event_args[0], (str, bytes)):
            path, mode, flags = event_args
            if mode and set(mode) & set("wax+") or mode is None and flags & writing:
                writes.append(os.path.abspath(os.fsdecode(path)))
        elif event == "os.rename":
            writes.append(os.path.abspath(os.fsdecode(event_args[1])))

    sys.addaudithook(audit)
    try:
        if kind == "launcher":
            import runpy
            sys.argv = ["launch/train.py", *args]
            runpy.run_path("launch/train.py", run_name="__main__")
        else:
            import jax
            coordinator, num_processes, process_id, workdir, steps = args
            jax.distributed.initialize(coordinator, int(num_processes), int(process_id))
            from lwgen.train.loop import train
            from tests.toy_family import toy_config
            for num_train_steps in steps.split(","):  # the later runs resume
                train(toy_config(int(num_train_steps)), workdir)
    finally:
        with open(record, "w") as f:
            f.write("\\n".join(writes))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(tmp_path, kind: str, workdir, steps: str) -> list[dict]:
    """Runs two children to ``steps`` steps in ``workdir`` (the toy: to each of several
    comma-separated step counts in turn); returns each one's pid and the workdir paths
    (relative) it wrote."""
    coordinator = f"127.0.0.1:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    children = []
    for i in range(2):
        if kind == "launcher":
            args = [
                "--config=tests/tiny.py",
                f"--config.num_train_steps={steps}",
                f"--workdir={workdir}",
                "--multihost",
                f"--coordinator_address={coordinator}",
                "--num_processes=2",
                f"--process_id={i}",
            ]
        else:
            args = [coordinator, "2", str(i), str(workdir), steps]
        record = tmp_path / f"writes_{kind}_{steps}_{i}.txt"
        log = open(tmp_path / f"output_{kind}_{steps}_{i}.txt", "w+")
        command = [sys.executable, "-c", CHILD, str(record), kind, *args]
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        children.append((child, record, log))
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for child, _, _ in children:
            child.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:  # a hang fails the test (the killed child's rc is -9)
        for child, _, _ in children:
            child.kill()
            child.wait()
    outputs = []
    for i, (child, record, log) in enumerate(children):
        with log:
            log.seek(0)
            assert child.returncode == 0, (
                f"process {i} (rc {child.returncode}):\n{log.read()[-3000:]}"
            )
        written = record.read_text().split("\n")
        root = os.path.abspath(workdir) + os.sep
        mine = sorted({p[len(root) :] for p in written if p.startswith(root)})
        outputs.append({"pid": child.pid, "writes": mine})
    return outputs


def _assert_close(actual, expected):
    actual_leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(actual))
    expected_leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(expected))
    assert len(actual_leaves) == len(expected_leaves)
    for (path, a), (_, b) in zip(actual_leaves, expected_leaves, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5, err_msg=jax.tree_util.keystr(path))


def _check_two_process_run(tmp_path, kind, runs, config):
    """Two processes train to 2 steps, then resume to 4 (``runs``: the step counts of each
    launch); compared with one process training to 4 straight."""
    workdir = tmp_path / "two"
    launches = [_two_processes(tmp_path, kind, workdir, steps) for steps in runs]
    reference = train(config, str(tmp_path / "one"))

    manager = checkpoint.checkpoint_manager(str(workdir))
    assert manager.all_steps() == [2, 4]
    _assert_close(checkpoint.restore_state(manager, make_trainer(config).init_state()), reference)
    _assert_close(
        checkpoint.restore_inference(str(workdir)).variables,
        checkpoint.restore_inference(str(tmp_path / "one")).variables,
    )
    # Only process 0 writes files other than checkpoints; process 1 writes checkpoint files.
    for chief, other in launches:
        chief_files = [p for p in chief["writes"] if not p.startswith("checkpoints")]
        assert {"config.json", "train.log"} <= set(chief_files)
        assert all(p.startswith("checkpoints" + os.sep) for p in other["writes"]), other
        assert any(p.startswith("checkpoints" + os.sep) for p in other["writes"])
    assert sorted(os.listdir(workdir / "samples")) == ["step_000002.png", "step_000004.png"]
    chief_pids = {f".{chief['pid']}." for chief, _ in launches}
    events = [f for f in os.listdir(workdir) if f.startswith("events.out.tfevents")]
    assert len(events) == 2 and all(any(pid in f for pid in chief_pids) for f in events), events
    assert json.loads((workdir / "config.json").read_text())["num_train_steps"] == 4
    # Each step's metrics are logged once: the second run resumed at step 2, one writer.
    logged = re.findall(r"absl: \[(\d+)\] ", (workdir / "train.log").read_text())
    assert logged == ["1", "2", "3", "4"]


def test_two_processes_train_like_one_and_resume(tmp_path):
    _check_two_process_run(tmp_path, "toy", ["2,4"], toy_config(4))


@pytest.mark.slow
def test_multihost_launcher_trains_gan_like_one_process_and_resumes(tmp_path):
    _check_two_process_run(tmp_path, "launcher", ["2", "4"], tiny_gan_config(4))


def test_process_flags_without_multihost_fail_before_any_work(tmp_path):
    workdir = tmp_path / "w"
    command = [sys.executable, "launch/train.py", "--config=tests/tiny.py", f"--workdir={workdir}"]
    result = subprocess.run(
        [*command, "--process_id=0"], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "need --multihost" in result.stderr
    assert not workdir.exists()
