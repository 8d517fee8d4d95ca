"""The family registry: a family registered outside lwgen (``tests/toy_family.py``) trains,
samples, evaluates and exports through the generic core; lookups fail clearly."""

import subprocess
import sys

import jax
import numpy as np
import pytest

import tests.toy_family  # noqa: F401  (registers the toy family)
from lwgen.errors import ConfigError
from lwgen.eval.evaluate import evaluate_bundle, evaluate_workdir
from lwgen.export.bundle import export_workdir
from lwgen.export.metadata import load_bundle
from lwgen.families import registry
from lwgen.train.loop import train
from tests.conftest import ROOT
from tests.toy_family import toy_config


def test_unknown_family_names_the_known_ones():
    known = "'cyclegan', 'dcgan', 'diffusion', 'style', 'textgan', 'tinygan', 'toy', 'upscaler'"
    with pytest.raises(ConfigError, match=known):
        registry.get_family("stylegan")


def test_toy_family_trains_samples_evaluates_and_exports_through_the_core(tmp_path):
    workdir, bundle_dir = tmp_path / "toy", tmp_path / "toy_int8"
    config = toy_config(num_train_steps=40)
    config.train.sample_every = 40
    state = train(config, str(workdir))
    assert (workdir / "samples" / "step_000040.png").is_file()
    assert set(state.networks) == {"net"} and set(state.ema) == {"net"} and not state.extras
    assert "features" not in str(jax.tree_util.tree_structure(state)), "frozen nets stay out"
    metrics = evaluate_workdir(str(workdir))
    noisy_mse = 0.25  # sigma² of the input noise: a trained denoiser must beat the identity
    assert metrics["step"] == 40 and metrics["mse"] < noisy_mse
    metadata = export_workdir(str(workdir), str(bundle_dir), quant="int8")
    assert metadata["family"] == "toy" and list(metadata["models"]) == ["net"]
    assert metadata["fields"] == {"image_shape": [16, 16, 1]}
    assert [t["name"] for t in metadata["models"]["net"]["inputs"]] == ["x"]
    int8 = evaluate_bundle(str(bundle_dir), config.data)
    assert int8["mse"] == pytest.approx(metrics["mse"], abs=0.01)
    assert load_bundle(bundle_dir).models["net"].startswith(b"\x1c\x00\x00\x00TFL3")


def test_pi_script_refuses_a_family_it_does_not_know(tmp_path):
    workdir, bundle_dir = tmp_path / "toy", tmp_path / "toy_f32"
    train(toy_config(num_train_steps=2), str(workdir))
    export_workdir(str(workdir), str(bundle_dir), quant="float32")
    result = subprocess.run(
        [sys.executable, "export/pi_infer.py", "--bundle", str(bundle_dir), "--out", "x.png"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "toy" in result.stderr
    assert np.all([not (tmp_path / "x.png").exists()])
