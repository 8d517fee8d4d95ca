"""The style family end to end in miniature: teacher → student → INT8 bundle → pi_infer; the
style catalogue, photo crops, per-sample style assignment and Gatys optimisation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from lwgen.data import load_source
from lwgen.data.styles import load_style
from lwgen.errors import ConfigError
from lwgen.export.bundle import export_workdir
from lwgen.families import style
from lwgen.families import style_core as core
from lwgen.losses import perceptual
from lwgen.models.vgg import made_vgg_weights
from lwgen.style_transfer import DEFAULT_WEIGHTS, GatysSettings, stylize
from lwgen.train.checkpoint import restore_inference
from lwgen.train.config import validate_config
from lwgen.train.loop import train
from tests.conftest import ROOT
from tests.tiny import tiny_style_config, tiny_style_teacher

PI_INFER = os.path.join(ROOT, "export", "pi_infer.py")


def test_styles_and_photo_crops_are_real_images_of_the_asked_size():
    brick = load_style("brick", 48)
    assert brick.dtype == np.uint8 and brick.shape == (48, 48, 3) and brick.std() > 10
    with pytest.raises(ConfigError, match="not one of"):
        load_style("mona_lisa", 48)
    source = load_source(tiny_style_config().data, "train")
    a, b = source.batch(3, 4, 0)["image"], source.batch(3, 4, 0)["image"]
    assert a.shape == (4, 16, 16, 3) and a.min() >= -1 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, source.batch(4, 4, 0)["image"])


def test_samples_cycle_through_the_styles():
    one_hot = np.asarray(core.style_one_hot(5, 4, 3))
    np.testing.assert_array_equal(one_hot.argmax(-1), [2, 0, 1, 2])


def test_config_checks_name_the_bad_entry():
    config = tiny_style_config()
    config.model.stylizer.num_styles = 3
    with pytest.raises(ConfigError, match="style.names"):
        validate_config(config)
    config = tiny_style_config()
    config.loss.content_layer = "relu7_1"
    with pytest.raises(ConfigError, match="relu7_1"):
        validate_config(config)


def test_gatys_lowers_the_style_loss_from_the_content_image():
    weights = made_vgg_weights((4, 4, 8, 8, 8))
    rng = np.random.default_rng(0)
    content = rng.uniform(-0.5, 0.5, (16, 16, 3)).astype(np.float32)
    painting = np.tile(np.linspace(-1, 1, 16, dtype=np.float32)[:, None, None], (1, 16, 3))
    settings = GatysSettings(steps=1, lr=0.05, weights=DEFAULT_WEIGHTS)
    _, first = stylize(content, painting, settings, weights, progress=False)
    out, last = stylize(content, painting, GatysSettings(steps=30), weights, progress=False)
    assert out.shape == content.shape and np.abs(out).max() <= 1.0
    assert last["style_loss"] < 0.5 * first["style_loss"]


def test_teacher_student_int8_bundle_and_pi_infer(tmp_path):
    teacher = tiny_style_teacher(str(tmp_path / "teacher"))
    assert isinstance(core.make_trainer(tiny_style_config()).frozen[core.GRAMS], tuple)
    student = tiny_style_config(3, teacher)
    train(student, str(tmp_path / "student"))
    restored = restore_inference(str(tmp_path / "student"))
    metrics = style.evaluate(restored)
    assert (
        metrics["num_photos"] >= 3 and metrics["content_loss"] > 0
    )  # 3 without opencv-doc and metrics["style_loss"] > 0
    bundle = tmp_path / "bundle"
    metadata = export_workdir(str(tmp_path / "student"), str(bundle), quant="int8")
    assert metadata["fields"]["style_names"] == ["brick", "grass"]
    model = metadata["models"]["stylizer"]
    # The student's norm-input clips fuse into its convs (RELU_N1_TO_1): no op of their own.
    assert restored.config.model.stylizer.norm_input_clip > 0
    assert not {"MINIMUM", "MAXIMUM", "RELU_N1_TO_1"} & set(model["ops"])
    assert sorted(t["name"] for t in model["inputs"]) == ["image", "style"]
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = Image.fromarray(skimage.data.chelsea()).resize((30, 40))  # INT8 is calibrated on photos
    for name in ("a.png", "b.jpg"):
        photo.save(photos / name)
    run = [sys.executable, PI_INFER, "--bundle", str(bundle), "--input", str(photos)]
    done = subprocess.run([*run, "--style", "grass", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert out.shape == (16, 16, 3)
    bad = subprocess.run([*run, "--style", "starry", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "valid styles: brick, grass" in bad.stderr
    jax_out = style.jax_stylize(restored.config, restored.variables[core.STYLIZER])
    fitted = np.asarray(Image.open(photos / "a.png").resize((16, 21)).crop((0, 2, 16, 18)))
    reference = np.asarray(
        jax_out(fitted[None].astype(np.float32) / 127.5 - 1.0, np.eye(2, dtype=np.float32)[1:])
    )
    reference = np.round((reference[0] + 1.0) * 127.5)
    assert np.abs(reference - out.astype(np.float64)).mean() < 12  # INT8 vs JAX, uint8 levels
    assert json.loads((bundle / "bundle.json").read_text())["family"] == "style"


def test_distillation_loss_is_zero_when_student_equals_teacher():
    images = np.zeros((2, 8, 8, 3), np.float32)
    features = {"relu1_2": np.ones((2, 8, 8, 4), np.float32)}
    weights = perceptual.DistillWeights(1.0, 1.0, ("relu1_2",))
    loss, aux = perceptual.distillation_loss(images, features, images, features, weights)
    assert float(loss) == 0.0 and set(aux) == {"pixel_loss", "feature_loss"}
    loss, _ = perceptual.distillation_loss(images + 1.0, features, images, features, weights)
    assert float(loss) == pytest.approx(1.0)
