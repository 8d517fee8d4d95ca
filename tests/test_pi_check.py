"""Tests of export/pi_check.py: the pure parts here, the emulated Pi run (slow) on a toy bundle.

The slow test sets up qemu, the arm64 root and the aarch64 wheels in the check's cache
(``PI_CACHE``, else ``~/.cache/lwgen/pi-sysroot``) and is skipped, with the reason, when that
cannot be done on this machine.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lwgen.errors import BundleError
from tests.conftest import load_script
from tests.export_toys import toy_bundle

ROOT = Path(__file__).resolve().parents[1]
PI_CHECK = ROOT / "export" / "pi_check.py"
pi_check = load_script(PI_CHECK, "pi_check_under_test")


def run_check(*args, timeout=1800):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(PI_CHECK), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _row(path, max_diff, cpu="cortex-a72"):
    return pi_check.Row("dcgan", "int8", path, cpu, max_diff, 3 if max_diff else 0, 5120)


@pytest.mark.parametrize(
    "path, max_diff, ok",
    [("XNNPACK", 0, True), ("XNNPACK", 1, False), ("builtin", 8, True), ("builtin", 9, False)],
)
def test_tolerance_per_runtime_path(path, max_diff, ok):
    assert _row(path, max_diff).ok is ok


def test_table_is_aligned_and_gives_a_verdict_per_cpu():
    table = pi_check.format_table([_row("XNNPACK", 0), _row("builtin", 12, "cortex-a76")])
    header, first, second = table.splitlines()
    assert header.split()[:4] == ["family", "quant", "path", "CPU"]
    column = header.index("identical")
    assert first[column:].startswith("yes") and second[column:].startswith("no")
    assert first.endswith("ok (tolerance 0)") and second.endswith("FAIL (tolerance 8)")
    assert "0/5120" in first and "3/5120" in second
    assert header.index("max diff") == first.index(" 0 ") + 1 == second.index(" 12 ") + 1


def test_compare_counts_differences_and_refuses_other_shapes():
    reference = np.zeros((2, 4, 4, 1), np.uint8)
    images = reference.copy()
    images[0, 0, 0, 0], images[1, 2, 3, 0] = 255, 3
    assert pi_check.compare(reference, images) == (255, 2)
    assert pi_check.compare(reference, reference) == (0, 0)
    with pytest.raises(ValueError, match="shape"):
        pi_check.compare(reference, images[:1])


@pytest.mark.parametrize(
    "cpu, part, model", [("cortex-a72", "0xd08", "Pi 4"), ("cortex-a76", "0xd0b", "Pi 5")]
)
def test_cpuinfo_describes_four_cores_of_that_pi(cpu, part, model):
    text = pi_check.cpuinfo_text(pi_check.CPUS[cpu])
    fields = re.findall(r"^([A-Za-z ]+?)\s*: (.*)$", text, flags=re.M)
    assert [v for k, v in fields if k == "processor"] == ["0", "1", "2", "3"]
    assert {v for k, v in fields if k == "CPU part"} == {part}
    assert {v for k, v in fields if k == "CPU implementer"} == {"0x41"}  # Arm Ltd.
    assert f"Raspberry {model} Model B" in dict(fields)["Model"]


def test_platform_tags_cover_bookworm_glibc_and_nothing_newer():
    tags = pi_check.platform_tags()
    assert {"manylinux_2_17_aarch64", "manylinux_2_28_aarch64", "manylinux_2_36_aarch64"} <= set(
        tags
    )
    assert "manylinux2014_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags  # bookworm has glibc 2.36
    assert all(tag.endswith("_aarch64") for tag in tags)


def test_device_requirements_are_the_setup_py_pins():
    setup_text = (ROOT / "setup.py").read_text()
    requirements = pi_check.device_requirements(setup_text)
    assert [r.split("==")[0] for r in requirements] == ["numpy", "Pillow", "ai-edge-litert"]
    assert all(f'"{r}"' in setup_text for r in requirements)
    text = pi_check.device_requirements(setup_text, "textgan")
    assert text[:3] == requirements and text[3].startswith("tokenizers==")
    assert f'"{text[3]}"' in setup_text
    with pytest.raises(pi_check.SetupError, match="Pillow"):
        pi_check.device_requirements('"numpy==2.0", "ai-edge-litert==2.3.0"')


def _bundle_json(tmp_path, **models):
    (tmp_path / "bundle.json").write_text(json.dumps({"family": "dcgan", "models": models}))
    return str(tmp_path)


def test_bundle_summary_picks_the_runtime_path(tmp_path):
    dense = {"quant": "int8", "sparsity": False}
    assert pi_check.bundle_summary(_bundle_json(tmp_path, generator=dense)) == (
        "dcgan",
        "int8",
        "XNNPACK",
    )
    sparse = {"quant": "int8_io", "sparsity": True}
    bundle = _bundle_json(tmp_path, generator=sparse, refiner=dense)
    assert pi_check.bundle_summary(bundle) == ("dcgan", "int8+int8_io", "builtin")


def test_every_pi_infer_family_has_check_inputs():
    pi_infer = load_script(ROOT / "export" / "pi_infer.py", "pi_infer_for_check")
    assert set(pi_infer.FAMILIES) <= set(pi_check.FAMILY_ARGS)


def test_missing_bundle_and_unknown_family_are_one_line_errors(tmp_path):
    with pytest.raises(BundleError, match="no bundle at"):
        pi_check.bundle_summary(str(tmp_path / "nothing"))
    (tmp_path / "bundle.json").write_text(json.dumps({"family": "vae", "models": {}}))
    done = run_check(f"--bundle={tmp_path}", f"--cache={tmp_path / 'cache'}", timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "'vae'" in done.stderr
    assert "FAMILY_ARGS" in done.stderr
    assert not (tmp_path / "cache").exists()  # refused before any setup


def test_missing_qemu_without_apt_says_how_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pi_check.SetupError, match="apt-get install qemu-user-static"):
        pi_check.ensure_qemu()


def test_check_imports_no_jax_or_tensorflow():
    probe = (
        "import runpy, sys\n"
        f"runpy.run_path({str(PI_CHECK)!r}, run_name='probe')\n"
        "print(sorted(m for m in ('jax', 'tensorflow', 'flax') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_toy_bundle_is_identical_on_emulated_pi_4_and_pi_5(tmp_path_factory):
    setup = run_check("--setup_only")
    if setup.returncode != 0:
        reason = (setup.stderr.strip() or setup.stdout.strip() or "no output").splitlines()[-1]
        pytest.skip(f"cannot set up the emulated Pi here: {reason}")
    done = run_check(f"--bundle={toy_bundle(tmp_path_factory, 'int8')}", timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("dcgan")]
    assert [row[3] for row in rows] == ["cortex-a72", "cortex-a76"]
    for row in rows:
        assert row[:3] == ["dcgan", "int8", "XNNPACK"]
        assert row[4:7] == ["0", "0/5120", "yes"]  # 10 classes x 2 samples x 16x16x1


def test_a_sampler_s_tolerance_grows_with_its_sequential_model_calls(tmp_path):
    (tmp_path / "bundle.json").write_text(json.dumps({"fields": {"timesteps": [999, 499]}}))
    calls = pi_check.sequential_calls(str(tmp_path))
    row = pi_check.Row("diffusion", "int8", "builtin", "cortex-a72", 16, 9, 4096, calls)
    assert calls == 2 and row.tolerance == 16 and row.ok
    assert not pi_check.Row("diffusion", "int8", "XNNPACK", "cortex-a72", 1, 1, 9, calls).ok
    (tmp_path / "bundle.json").write_text(json.dumps({"fields": {"latent_dim": 64}}))
    assert pi_check.sequential_calls(str(tmp_path)) == 1


def test_expand_args_fills_the_first_style_and_a_made_photo(tmp_path):
    fields = {"style_names": ["starry_night", "graf1"]}
    (tmp_path / "bundle.json").write_text(json.dumps({"family": "style", "fields": fields}))
    args = pi_check.expand_args(pi_check.FAMILY_ARGS["style"], str(tmp_path), tmp_path)
    assert args[:2] == ["--style", "starry_night"] and args[2] == "--input"
    photo = np.asarray(Image.open(args[3]))
    assert photo.shape == (64, 64, 3) and photo.dtype == np.uint8 and photo[..., 2].min() == 128
