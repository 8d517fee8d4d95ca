"""The diffusion family end to end in miniature: a tiny U-Net trained a few steps, one progressive
distillation round, one narrow student, INT8 and float32 export, and sampling on the Pi path
(``export/pi_infer.py`` with the numpy sampler of ``export/pi_diffusion.py``)."""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from lwgen.compress.finetune import compress_workdir
from lwgen.diffusion import samplers
from lwgen.diffusion.schedules import cosine_schedule, sampling_timesteps
from lwgen.errors import ConfigError
from lwgen.export.bundle import export_workdir
from lwgen.families import diffusion_core as core
from lwgen.families.diffusion import evaluate_bundle
from lwgen.families.diffusion_rounds import progressive_rounds, round_dir
from lwgen.models.unet import timestep_embedding
from lwgen.train.checkpoint import read_config, restore_inference
from lwgen.train.loop import train
from tests.conftest import load_script
from tests.test_pi_infer import run_pi
from tests.tiny import tiny_diffusion_config, tiny_diffusion_teacher

PI_DIFFUSION = Path(__file__).resolve().parents[1] / "export" / "pi_diffusion.py"


def _pi_diffusion():
    return load_script(PI_DIFFUSION, "pi_diffusion_under_test")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tiny_diffusion_teacher(str(tmp_path_factory.mktemp("diffusion") / "teacher"))


@pytest.fixture(scope="module")
def student(tmp_path_factory, teacher):
    workdir = str(tmp_path_factory.mktemp("diffusion") / "student")
    train(tiny_diffusion_config(2, teacher), workdir)
    return workdir


@pytest.mark.parametrize("sampler,eta,guidance", [("ddim", 0.0, 1.5), ("ddpm", 0.0, 0.0)])
def test_numpy_sampler_matches_the_jax_sampler(sampler, eta, guidance):
    """The same numbers in, the same images out: a smooth nonlinear stand-in denoiser written
    once in numpy (the Pi path) and once in jax."""
    pi = _pi_diffusion()
    schedule = cosine_schedule(50)
    timesteps = sampling_timesteps(5, 50)
    weights = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32) * 0.1

    def denoise_np(x, embedding, y):
        return np.tanh(x + (embedding @ weights[:, :1] + y @ weights[:3, 1:2])[:, :, None, None])

    def denoise_jax(x, t, y):
        embedding = timestep_embedding(t, 8)
        return jnp.tanh(x + (embedding @ weights[:, :1] + y @ weights[:3, 1:2])[:, :, None, None])

    x_T, noise = samplers.sampler_noise(3, 5, (3, 4, 4, 1))
    y = np.eye(3, dtype=np.float32)
    settings = dict(parameterization="v", sampler=sampler, eta=eta, guidance=guidance)
    expected = samplers.sample(denoise_jax, x_T, y, timesteps, schedule, noise=noise, **settings)
    actual = pi.sample(
        denoise_np, x_T, y, timesteps, schedule.alpha_bar, embed_dim=8, noise=noise, **settings
    )
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_numpy_timestep_embedding_matches_the_model_s():
    t = np.array([0, 7, 499, 999])
    # float32 sin/cos of angles up to ~1000 rad differ by ~1.5e-5 between numpy and XLA.
    np.testing.assert_allclose(
        _pi_diffusion().timestep_embedding(t, 32), timestep_embedding(t, 32), atol=5e-5
    )


def test_student_starts_from_the_teacher_and_samples_in_its_steps(teacher, student):
    restored = restore_inference(student)
    assert restored.config.diffusion.sample_steps == 2
    assert core.sampler_settings(restored.config)["timesteps"].tolist() == [49, 24]
    teacher_params = restore_inference(teacher).variables["denoiser"]["params"]
    delta = np.abs(
        restored.variables["denoiser"]["params"]["conv_in"]["kernel"]
        - teacher_params["conv_in"]["kernel"]
    ).max()
    assert 0 < delta < 0.1  # moved, but from the teacher's weights, not a fresh init


def test_progressive_student_needs_the_teacher_s_architecture(teacher, tmp_path):
    config = tiny_diffusion_config(2, teacher)
    config.model.denoiser.base_width = 2
    with pytest.raises(ConfigError, match="architecture"):
        train(config, str(tmp_path / "bad"))


def test_narrow_student_learns_the_teacher_s_predictions(teacher, tmp_path):
    config = tiny_diffusion_config(2, teacher)
    config.teacher.mode = "predictions"
    config.model.denoiser.base_width = 2
    config.diffusion.update(sample_steps=4, guidance=1.0)
    train(config, str(tmp_path / "narrow"))
    params = restore_inference(str(tmp_path / "narrow")).variables["denoiser"]["params"]
    assert params["conv_in"]["kernel"].shape[-1] == 2


@pytest.fixture(scope="module")
def float_bundle(tmp_path_factory, student):
    out = tmp_path_factory.mktemp("bundles") / "float32"
    export_workdir(student, out, quant="float32")
    return out


def test_pi_infer_samples_the_float_bundle_like_jax(student, float_bundle, tmp_path):
    result = run_pi("--bundle", float_bundle, "--labels", "0,3", "--num", "2", "--seed", "5",
                    "--out", tmp_path / "grid.png", "--npy", tmp_path / "out.npz")  # fmt: skip
    assert result.returncode == 0, result.stderr
    restored = restore_inference(student)
    labels = np.array([0, 0, 3, 3])
    expected = core.draw_samples(restored.config, restored.variables, labels, seed=5)
    images = np.load(tmp_path / "out.npz")["images"]
    reference = np.clip(np.round((expected + 1) * 127.5), 0, 255)
    assert np.abs(images.astype(np.int64) - reference).max() <= 2
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_int8_bundle_records_per_timestep_error_and_samples_on_the_pi_path(
    student, tmp_path_factory, tmp_path
):
    out = tmp_path_factory.mktemp("bundles") / "int8"
    metadata = export_workdir(student, out, quant="int8")
    fields = metadata["fields"]
    assert fields["timesteps"] == [49, 24] and fields["parameterization"] == "v"
    assert len(fields["schedule"]["alpha_bar"]) == 50
    by_timestep = metadata["models"]["denoiser"]["error"]["output"]["by_timestep"]
    assert set(by_timestep) == {"49", "24"}
    assert "SIN" not in metadata["models"]["denoiser"]["ops"]
    result = run_pi("--bundle", out, "--labels", "1", "--num", "3", "--out", tmp_path / "g.png",
                    "--steps", "1", "--benchmark", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 steps x 1 denoiser call(s)" in result.stdout


def test_bundle_evaluation_runs_the_tflite_denoiser_in_the_jax_sampler(float_bundle, student):
    restored = restore_inference(student)
    metrics = evaluate_bundle(str(float_bundle), restored.config.data, per_class=2)
    assert metrics["num_samples"] == 20 and metrics["sample_steps"] == 2
    assert 0.0 <= metrics["class_accuracy"] <= 1.0
    assert json.dumps(metrics)


def test_rounds_halve_and_resume_as_normal_workdirs(teacher, tmp_path):
    with pytest.raises(ConfigError, match="halve"):
        progressive_rounds(teacher, str(tmp_path), [4, 3], 2, 1e-3)
    (first,) = progressive_rounds(teacher, str(tmp_path), [2], 2, 1e-3)
    assert first == round_dir(str(tmp_path), 2)
    config = read_config(first)
    assert config.teacher.workdir == teacher and config.teacher.guidance == 1.0
    assert config.diffusion.guidance == 0.0  # guidance distilled into the student
    step = restore_inference(first).step
    progressive_rounds(teacher, str(tmp_path), [2], 2, 1e-3)  # finished: nothing more to do
    assert restore_inference(first).step == step == 2


@pytest.mark.parametrize("method", [pytest.param("unstructured", marks=pytest.mark.slow), "qat"])
def test_core_compression_applies_to_the_denoiser(teacher, tmp_path, method):
    out = str(tmp_path / method)
    compress_workdir(teacher, out, method, 0.5, 2, network="denoiser")
    kernel = restore_inference(out).variables["denoiser"]["params"]["conv_out"]["kernel"]
    if method == "unstructured":
        assert float(np.mean(np.asarray(kernel) == 0.0)) >= 0.4
    metadata = export_workdir(out, tmp_path / "bundle", quant="int8")
    assert metadata["models"]["denoiser"]["quant"] == "int8"
