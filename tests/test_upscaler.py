"""The up-scaler: model, family (train → evaluate → export → bundle evaluation), Edge TPU graph,
and the device-side chaining of ``export/pi_infer.py --upscale`` after generator bundles."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from lwgen.data.sr_pairs import bicubic_upsample
from lwgen.eval.evaluate import evaluate_bundle, evaluate_workdir
from lwgen.export import edgetpu
from lwgen.export.bundle import export_workdir
from lwgen.export.metadata import load_bundle
from lwgen.export.runtime import TFLiteGenerator, TFLiteRunner
from lwgen.images import to_uint8
from lwgen.models.layers import depth_to_space
from lwgen.models.sr import SuperResolution, depth_to_space_sliced, upsample_nearest
from lwgen.train.loop import train
from tests.conftest import load_script
from tests.export_toys import toy_bundle
from tests.test_pi_infer import run_pi
from tests.tiny import tiny_diffusion_teacher, tiny_upscaler_config

PI_UPSCALE = Path(__file__).resolve().parents[1] / "export" / "pi_upscale.py"
PI_IMAGES = PI_UPSCALE.with_name("pi_images.py")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    out = tmp_path_factory.mktemp("upscaler") / "x2"
    config = tiny_upscaler_config(num_train_steps=6)
    config.export.input_sizes = (8, 16)  # 16: the toy generator's and tiny diffusion's images
    train(config, str(out))
    return out


@pytest.fixture(scope="module")
def bundle(workdir):
    out = workdir.parent / "bundle_int8"
    export_workdir(workdir, out, quant="int8", num_calibration=200)
    return out


def test_sliced_pixel_shuffle_equals_the_transpose_form_and_nearest_repeats():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 3 * 16))
    np.testing.assert_array_equal(depth_to_space_sliced(x, 4), depth_to_space(x, 4))
    small = x[..., :3]
    expected = np.asarray(small).repeat(4, axis=1).repeat(4, axis=2)
    np.testing.assert_array_equal(upsample_nearest(small, 4), expected)
    with pytest.raises(ValueError, match="multiple"):
        depth_to_space_sliced(x[..., :7], 2)


@pytest.mark.parametrize("upsample", ["depth_to_space", "resize"])
@pytest.mark.parametrize("scale", [2, 4])
def test_untrained_model_is_pillow_s_bicubic_enlargement_inside_the_borders(upsample, scale):
    module = SuperResolution(scale, 3, features=4, shrink=4, num_maps=1, upsample=upsample)
    x = np.random.default_rng(1).uniform(-0.8, 0.8, (2, 12, 13, 3)).astype(np.float32)
    out = module.apply(module.init(jax.random.PRNGKey(0), x), x)
    assert out.shape == (2, 12 * scale, 13 * scale, 3)
    border = 2 * scale  # zero padding there, edge replication in Pillow
    inside = (slice(None), slice(border, -border), slice(border, -border))
    np.testing.assert_allclose(out[inside], bicubic_upsample(x, scale)[inside], atol=1e-5)
    with pytest.raises(ValueError, match="channels"):
        module.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 1)))


def test_bundle_records_its_models_and_scores_like_jax(workdir, bundle):
    metrics = evaluate_workdir(str(workdir))
    assert metrics["num_tiles"] > 0 and metrics["lowres_size"] == 16
    assert metrics["gain_db"] == pytest.approx(metrics["psnr_y_db"] - metrics["bicubic_psnr_y_db"])
    fields = load_bundle(bundle).metadata["fields"]
    assert fields["scale"] == 2 and fields["channels"] == 3
    assert fields["models_by_size"] == {"8": "upscaler_8", "16": "upscaler_16"}
    config = tiny_upscaler_config()
    scores = evaluate_bundle(str(bundle), config.data)
    assert scores["bicubic_psnr_y_db"] == metrics["bicubic_psnr_y_db"]
    # A 6-step INT8 model: its loss to float depends on the held-out tiles (1.5 dB on the three
    # library photos alone, 0.3 dB with opencv-doc's); same tiles, so bicubic matches exactly.
    assert scores["psnr_y_db"] == pytest.approx(metrics["psnr_y_db"], abs=3.0)
    assert (Path(workdir) / "samples" / "step_000006.png").is_file()


def test_int8_io_graph_runs_wholly_on_the_edge_tpu(workdir, tmp_path):
    metadata = export_workdir(workdir, tmp_path / "b", quant="int8_io", num_calibration=200)
    assert set(metadata["models"]["upscaler_16"]["ops"]) <= set(edgetpu.SUPPORTED_OPS)
    report = edgetpu.edgetpu_report(tmp_path / "b" / "upscaler_16.tflite")
    assert report["coverage"] == 1.0 and report["first_cpu_fallback"] is None


def _fake_upscaler(x):
    return 0.5 * x.repeat(2, axis=1).repeat(2, axis=2)


def test_pi_upscale_converts_gray_and_rgb_and_picks_the_model_by_size():
    pi_upscale = load_script(PI_UPSCALE, "pi_upscale")
    rng = np.random.default_rng(0)
    gray = rng.uniform(-1, 1, (2, 4, 4, 1)).astype(np.float32)
    out = pi_upscale.upscale(_fake_upscaler, gray, 3)  # RGB model: equal channels, luma back
    np.testing.assert_allclose(out, _fake_upscaler(gray), atol=1e-6)
    rgb = rng.uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
    calls = []
    out = pi_upscale.upscale(lambda x: calls.append(x.shape) or _fake_upscaler(x), rgb, 1)
    assert calls == [(6, 4, 4, 1)]  # one-channel model: channels as images
    np.testing.assert_allclose(out, _fake_upscaler(rgb), atol=1e-6)
    fields = {"models_by_size": {"32": "upscaler_32", "64": "upscaler_64"}}
    assert pi_upscale.model_for(fields, 64, 64) == "upscaler_64"
    with pytest.raises(ValueError, match="32x32, 64x64 inputs, not 28x28"):
        pi_upscale.model_for(fields, 28, 28)


def _chained(generator_bundle, upscaler, tmp_path, *args):
    npz = tmp_path / "chained.npz"
    done = run_pi("--bundle", generator_bundle, "--upscale", upscaler, "--out",
                  tmp_path / "g.png", "--npy", npz, "--scale", 1, *args)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return np.load(npz)["images"]


def test_pi_infer_upscales_dcgan_samples(tmp_path_factory, tmp_path, bundle):
    generator = toy_bundle(tmp_path_factory, "int8")
    images = _chained(generator, bundle, tmp_path, "--labels", "0,3", "--num", 2, "--seed", 4)
    assert images.shape == (4, 32, 32, 1)
    z = np.random.default_rng(4).standard_normal((4, 8), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[[0, 0, 3, 3]]
    samples = TFLiteGenerator(generator)(z, y)
    runner = TFLiteRunner.from_bundle(load_bundle(bundle), "upscaler_16")
    run = lambda x: runner(lowres=x)["image"]  # noqa: E731
    expected = load_script(PI_UPSCALE, "pi_upscale").upscale(run, samples, 3)
    np.testing.assert_array_equal(images, to_uint8(expected))


@pytest.mark.slow  # trains and exports a tiny diffusion model (about 25 s)
def test_pi_infer_upscales_diffusion_samples_and_refuses_a_wrong_size(
    tmp_path_factory, tmp_path, bundle
):
    teacher = tiny_diffusion_teacher(str(tmp_path_factory.mktemp("diffusion") / "teacher"))
    diffusion = tmp_path / "diffusion_bundle"
    export_workdir(teacher, diffusion, quant="float32")
    plain = run_pi("--bundle", diffusion, "--labels", "1", "--num", 2, "--out",
                   tmp_path / "p.png", "--npy", tmp_path / "p.npz")  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    images = _chained(diffusion, bundle, tmp_path, "--labels", "1", "--num", 2)
    assert images.shape == (2, 32, 32, 1)
    samples = np.load(tmp_path / "p.npz")["images"].astype(np.float32)
    coarse = images.reshape(2, 16, 2, 16, 2, 1).astype(np.float32).mean(axis=(2, 4))
    assert np.abs(coarse - samples).mean() < 20  # the enlargement of the same samples
    wrong = run_pi("--bundle", toy_bundle(tmp_path_factory, "int8"), "--upscale", diffusion,
                   "--out", tmp_path / "w.png")  # fmt: skip
    assert wrong.returncode == 2 and "not upscaler" in wrong.stderr


def test_pi_infer_enlarges_input_photos_with_an_upscaler_bundle(tmp_path, bundle):
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(photo)
    done = run_pi("--bundle", bundle, "--input", photo, "--out", tmp_path / "big.png",
                  "--npy", tmp_path / "big.npz", "--benchmark", 2)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "median" in done.stdout
    images = np.load(tmp_path / "big.npz")["images"]
    assert images.shape == (1, 32, 32, 3)  # fitted to the largest side, 16, then ×2
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "big.png")), images[0])
    pixels, _ = load_script(PI_IMAGES, "pi_images").read_images(str(photo), 16, 16, 3)
    runner = TFLiteRunner.from_bundle(load_bundle(bundle), "upscaler_16")
    expected = runner(lowres=pixels.astype(np.float32) / 127.5 - 1.0)["image"]
    np.testing.assert_array_equal(images, to_uint8(expected))
    missing = run_pi("--bundle", bundle, "--out", tmp_path / "x.png")
    assert missing.returncode == 2 and "--input" in missing.stderr
