"""Evaluation: metrics vs closed forms, the cached digits and Fashion-MNIST judges, scoring samplers
and workdirs."""

import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from lwgen.data import load_source
from lwgen.data.idx import DEFAULT_DIR as FASHION_MNIST_DIR
from lwgen.data.source import to_unit_range
from lwgen.errors import DataError
from lwgen.eval import judge as judge_lib
from lwgen.eval.conditional import evaluate_sampler
from lwgen.eval.evaluate import evaluate_bundle, evaluate_workdir
from lwgen.eval.metrics import class_accuracy, frechet_distance
from lwgen.train.checkpoint import read_config
from lwgen.train.loop import train
from tests.conftest import ROOT
from tests.tiny import tiny_gan_config

EVAL_KEYS = {
    "class_accuracy",
    "frechet_distance",
    "precision",
    "recall",
    "judge_heldout_accuracy",
    "real_frechet_distance",
    "real_precision",
    "real_recall",
    "num_samples",
}


def test_class_accuracy_by_hand():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.1, 0.9], [1.0, 0.0, 0.2]])
    assert class_accuracy(logits, np.array([0, 1, 1, 2])) == 0.5
    assert class_accuracy(logits, np.array([0, 1, 2, 0])) == 1.0
    with pytest.raises(ValueError, match="labels must lie in"):
        class_accuracy(logits, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="logits"):
        class_accuracy(logits, np.array([0, 1]))


def test_frechet_distance_of_identical_sets_is_zero():
    feats = np.random.default_rng(0).normal(size=(500, 16))
    assert abs(frechet_distance(feats, feats)) < 1e-6
    assert frechet_distance(feats, feats + 0.5) == pytest.approx(16 * 0.25, rel=1e-6)


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(1)
    n, mu_a, mu_b = 200_000, np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([2.0, 2.0, 1.5])
    feats_a = mu_a + std_a * rng.standard_normal((n, 3))
    feats_b = mu_b + std_b * rng.standard_normal((n, 3))
    # Diagonal covariances: d² = |μa − μb|² + Σ (σa − σb)².
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((std_a - std_b) ** 2)
    assert expected == pytest.approx(7.0)
    assert frechet_distance(feats_a, feats_b) == pytest.approx(expected, abs=0.05)


def test_frechet_distance_of_correlated_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(2)
    cov_a = np.array([[2.0, 0.8], [0.8, 1.0]])
    scale = 3.0  # Σ_b = 9 Σ_a, so Tr(Σa + Σb − 2 (Σa Σb)^½) = (1 + 9 − 6) Tr Σa
    feats_a = rng.multivariate_normal([0.0, 0.0], cov_a, size=200_000)
    feats_b = scale * rng.multivariate_normal([0.0, 0.0], cov_a, size=200_000)
    assert frechet_distance(feats_a, feats_b) == pytest.approx(4.0 * 3.0, rel=0.02)


def test_frechet_distance_rejects_bad_inputs():
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(np.ones((5, 4)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="feats_b must be"):
        frechet_distance(np.ones((5, 4)), np.ones(5))


def test_frechet_distance_handles_singular_covariances():
    feats = np.random.default_rng(3).normal(size=(50, 8))
    feats[:, 3] = 0.0  # a dead feature: both covariances are singular
    distance = frechet_distance(feats, feats[::-1] + 1.0)
    assert distance == pytest.approx(8.0, abs=1e-3)  # every mean, the dead one's too, moves by 1


def _demo_data_config(image_size=32):
    return ml_collections.ConfigDict(
        dict(source="digits", image_size=image_size, channels=1, data_dir=None, path=None)
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("judges"))


def test_demo_judge_is_accurate_and_cached(cache_dir):
    config = _demo_data_config()
    judge = judge_lib.load_or_train_judge(config, cache_dir)
    assert judge.heldout_accuracy >= 0.97
    params_path, meta_path = (
        os.path.join(cache_dir, f"judge-{judge_lib.cache_key(config)}{ext}")
        for ext in (".msgpack", ".json")
    )
    with open(meta_path) as f:
        metadata = json.load(f)
    assert metadata["heldout_accuracy"] == judge.heldout_accuracy
    assert metadata["data"]["image_size"] == 32 and metadata["num_heldout"] == 360
    heldout = load_source(config, "heldout")
    images = to_unit_range(heldout.images)
    assert class_accuracy(judge.logits(images), heldout.labels) == judge.heldout_accuracy
    mtimes = os.path.getmtime(params_path), os.path.getmtime(meta_path)
    again = judge_lib.load_or_train_judge(dict(config), cache_dir)
    assert (os.path.getmtime(params_path), os.path.getmtime(meta_path)) == mtimes
    assert again.heldout_accuracy == judge.heldout_accuracy
    np.testing.assert_allclose(again.features(images[:300]), judge.features(images[:300]))
    assert again.logits(images[:3]).shape == (3, 10)
    assert again.features(images[:3]).shape == (3, judge_lib.ARCHITECTURE["feature_dim"])


def test_judge_rejects_images_of_the_wrong_shape(cache_dir):
    judge = judge_lib.load_or_train_judge(_demo_data_config(), cache_dir)
    with pytest.raises(DataError, match="judge expects float32 \\[N, 32, 32, 1\\]"):
        judge.logits(np.zeros((2, 16, 16, 1), np.float32))


def test_cache_key_and_directory():
    assert judge_lib.cache_key(_demo_data_config(32)) != judge_lib.cache_key(_demo_data_config(16))
    with_default = _demo_data_config()
    with_default.heldout_fraction = 0.2
    assert judge_lib.cache_key(with_default) == judge_lib.cache_key(_demo_data_config())


def test_large_data_sets_get_the_large_recipe(monkeypatch):
    digits, fashion = _demo_data_config(), _demo_data_config()
    fashion.source = "fashion_mnist_idx"
    assert judge_lib.recipe_for(digits) == judge_lib.RECIPE
    assert judge_lib.recipe_for(fashion) == judge_lib.LARGE_RECIPE != judge_lib.RECIPE
    fashion_key, digits_key = judge_lib.cache_key(fashion), judge_lib.cache_key(digits)
    assert fashion_key != digits_key
    monkeypatch.setitem(judge_lib.LARGE_RECIPE, "steps", 2 * judge_lib.LARGE_RECIPE["steps"])
    assert judge_lib.cache_key(fashion) != fashion_key  # the recipe is part of the cache key
    assert judge_lib.cache_key(digits) == digits_key


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.isdir(FASHION_MNIST_DIR),
    reason=f"no Fashion-MNIST IDX files in {FASHION_MNIST_DIR}",
)
def test_fashion_mnist_judge_reaches_090_on_the_test_split(tmp_path):
    config = _demo_data_config()
    config.source = "fashion_mnist_idx"
    judge = judge_lib.load_or_train_judge(config, str(tmp_path))
    assert judge.metadata["num_heldout"] == 10_000
    assert judge.metadata["recipe"] == judge_lib.LARGE_RECIPE
    assert judge.heldout_accuracy >= 0.90


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(judge_lib.CACHE_ENV, str(tmp_path))
    assert judge_lib.default_cache_dir() == os.path.join(str(tmp_path), "judges")
    monkeypatch.delenv(judge_lib.CACHE_ENV)
    assert judge_lib.default_cache_dir() == os.path.expanduser("~/.cache/lwgen/judges")


@pytest.mark.parametrize("corrupt", ["params", "metadata"])
def test_a_corrupt_cache_is_retrained(cache_dir, tmp_path, monkeypatch, corrupt):
    config = _demo_data_config()
    judge_lib.load_or_train_judge(config, cache_dir)
    for ext in (".msgpack", ".json"):
        name = f"judge-{judge_lib.cache_key(config)}{ext}"
        (tmp_path / name).write_bytes(open(os.path.join(cache_dir, name), "rb").read())
    judge_lib.load_or_train_judge(config, str(tmp_path))  # an intact copy loads
    params_path = tmp_path / f"judge-{judge_lib.cache_key(config)}.msgpack"
    if corrupt == "params":
        params_path.write_bytes(params_path.read_bytes()[:-4] + b"\0\0\0\0")
    else:
        params_path.with_suffix(".json").write_text('{"params_sha256": ')

    def no_training(*args):
        raise RuntimeError("retraining")

    monkeypatch.setattr(judge_lib, "train_judge_params", no_training)
    with pytest.raises(RuntimeError, match="retraining"):
        judge_lib.load_or_train_judge(config, str(tmp_path))


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("tiny_workdir"))
    train(tiny_gan_config(num_train_steps=2), workdir)
    return workdir


def test_evaluate_workdir_writes_eval_json(tiny_workdir, cache_dir):
    metrics = evaluate_workdir(tiny_workdir, per_class=3, cache_dir=cache_dir)
    assert set(metrics) == EVAL_KEYS | {"step"}
    assert metrics["step"] == 2 and metrics["num_samples"] == 30
    assert 0.0 <= metrics["class_accuracy"] <= 1.0 and metrics["frechet_distance"] > 0.0
    with open(os.path.join(tiny_workdir, "eval.json")) as f:
        assert json.load(f) == metrics


def test_score_workdir_scores_without_writing(tiny_workdir, cache_dir):
    from lwgen.eval.evaluate import score_workdir

    before = {p: os.path.getmtime(os.path.join(tiny_workdir, p)) for p in os.listdir(tiny_workdir)}
    metrics = score_workdir(tiny_workdir, per_class=3, cache_dir=cache_dir)
    after = {p: os.path.getmtime(os.path.join(tiny_workdir, p)) for p in os.listdir(tiny_workdir)}
    assert set(metrics) == EVAL_KEYS | {"step"} and after == before


def test_evaluate_bundle_scores_the_int8_model_like_the_workdir(tiny_workdir, cache_dir, tmp_path):
    from lwgen.export.bundle import export_workdir

    bundle_dir = str(tmp_path / "bundle")
    export_workdir(tiny_workdir, bundle_dir, quant="int8", num_calibration=200, min_psnr=0.0)
    data_config = read_config(tiny_workdir).data
    int8 = evaluate_bundle(bundle_dir, data_config, per_class=3, cache_dir=cache_dir)
    jax_metrics = evaluate_workdir(tiny_workdir, per_class=3, cache_dir=cache_dir)
    assert set(int8) == EVAL_KEYS and int8["num_samples"] == 30
    assert int8["real_frechet_distance"] == jax_metrics["real_frechet_distance"]
    assert int8["frechet_distance"] == pytest.approx(jax_metrics["frechet_distance"], rel=0.05)


def _real_image_sampler(data_config):
    """A 'generator' that returns real training images of the requested classes."""
    source = load_source(data_config, "train")
    by_class = [to_unit_range(source.images[source.labels == k]) for k in range(10)]

    def sample_fn(z, y_onehot):
        labels = np.argmax(y_onehot, axis=1)
        picks = (np.abs(z[:, 0]) * 1000).astype(int)
        pairs = zip(labels, picks, strict=True)
        return np.stack([by_class[k][i % len(by_class[k])] for k, i in pairs])

    return sample_fn


def test_evaluate_sampler_scores_real_images_near_the_reference(cache_dir):
    config = _demo_data_config(16)
    real = evaluate_sampler(_real_image_sampler(config), 10, 4, config, 30, cache_dir=cache_dir)
    noise = evaluate_sampler(
        lambda z, y: np.tanh(np.repeat(z[:, :, None, None], 64, axis=2).reshape(-1, 16, 16, 1)),
        10,
        4,
        config,
        30,
        cache_dir=cache_dir,
    )
    assert set(real) == EVAL_KEYS and real["num_samples"] == 300
    assert real["class_accuracy"] >= 0.95 and noise["class_accuracy"] < 0.5
    assert real["frechet_distance"] < 1.5 * real["real_frechet_distance"]
    assert noise["frechet_distance"] > 10 * real["frechet_distance"]
    assert real["precision"] > 0.8 and real["recall"] > 0.8 * real["real_recall"]
    assert noise["precision"] < 0.25 * real["precision"] and noise["recall"] < 0.05


def _ones(z, y_onehot):
    return np.ones((len(z), 16, 16, 1), np.float32)


@pytest.mark.parametrize(
    "sample_fn, num_classes, per_class, message",
    [
        (_ones, 7, 3, "sampler has 7 classes but the data has 10"),
        (lambda z, y: 2 * _ones(z, y), 10, 3, "must lie in \\[-1, 1\\]"),
        (lambda z, y: _ones(z, y)[:, :8], 10, 3, "the data has \\(16, 16, 1\\)"),
        (lambda z, y: _ones(z, y)[:5], 10, 3, "must return \\[250, H, W, C\\]"),
        (_ones, 10, 1, "per_class must be an integer >= 2"),
    ],
)
def test_evaluate_sampler_rejects_bad_samplers(
    cache_dir, sample_fn, num_classes, per_class, message
):
    config = _demo_data_config(16)
    with pytest.raises(ValueError, match=message):
        evaluate_sampler(sample_fn, num_classes, 4, config, per_class, cache_dir=cache_dir)


def test_launcher_missing_workdir_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "launch/evaluate.py", f"--workdir={tmp_path / 'missing'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("evaluate: error:")
    assert "config.json" in result.stderr and "Traceback" not in result.stderr


def test_distillation_workdirs_are_judged_against_their_real_data():
    import ml_collections

    from lwgen.eval.conditional import judged_data_config

    data = ml_collections.ConfigDict(
        {"source": "distill", "path": "/sets/s", "real_source": "digits", "real_path": None}
    )
    assert judged_data_config(data).source == "digits"
    assert judged_data_config(data).path is None
    data.real_source = None
    with pytest.raises(ValueError, match="data.real_source"):
        judged_data_config(data)
    plain = ml_collections.ConfigDict({"source": "digits"})
    assert judged_data_config(plain) is plain
