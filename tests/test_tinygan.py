"""Tests for the TinyGAN workflow: the distillation objective, its configs and an end-to-end
miniature (tiny teacher → make_distill_set → student training → INT8 export → pi_infer)."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import lwgen
from lwgen.data import load_source, shard_batch
from lwgen.data.distill_set import DistillSource, write_distill_set
from lwgen.families.objectives import DistillationObjective, distill_config
from lwgen.families.registry import make_trainer
from lwgen.families.tinygan import make_objective
from lwgen.losses.distillation import DistillWeights
from lwgen.models.dcgan import Generator
from lwgen.train.config import validate_config
from lwgen.train.loop import compile_step, train
from lwgen.train.steps import AXIS
from tests.tiny import tiny_gan_config, tiny_student_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SET_SIZE = 48


def load_config(name: str) -> ml_collections.ConfigDict:
    return lwgen.load_config(os.path.join(REPO, "configs", name))


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=REPO
    )


@pytest.fixture(scope="module")
def distill_set(tmp_path_factory):
    """A tiny teacher trained 2 steps and a 48-sample set of it made by the launcher."""
    root = tmp_path_factory.mktemp("tinygan")
    teacher, out = str(root / "teacher"), str(root / "set")
    train(tiny_gan_config(num_train_steps=2), teacher)
    made = run_tool(
        "launch/make_distill_set.py", f"--teacher_workdir={teacher}", f"--out={out}",
        f"--num={SET_SIZE}", "--shard_size=32", "--batch_size=16",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    assert f"{SET_SIZE} samples in 2 shards" in made.stdout
    return out


def test_objective_splits_teacher_and_real_halves():
    weights = DistillWeights(pixel=1.0, adv=1.0, feat=1.0, real_adv=0.5, d_real_adv=0.25)
    objective = DistillationObjective(weights)
    batch = {
        "z": jnp.ones((2, 3)),
        "label": jnp.array([1, 2], jnp.int32),
        "image": jnp.zeros((2, 2, 2, 1)),
        "real_image": jnp.ones((2, 2, 2, 1)),
        "real_label": jnp.array([0, 4], jnp.int32),
    }
    z, labels, real = objective.inputs(batch, jax.random.split(jax.random.key(0), 2), 3)
    np.testing.assert_array_equal(labels, [1, 2, 0, 4])
    np.testing.assert_array_equal(z[:2], 1.0)
    assert not np.allclose(z[2:], 1.0) and real.shape == (4, 2, 2, 1)
    np.testing.assert_array_equal(real[:2], 0.0)
    np.testing.assert_array_equal(real[2:], 1.0)
    # D logits on [teacher, real] and [student(teacher z), student(real labels)].
    loss, aux = objective.d_loss(jnp.array([2.0, 0.0, 0.5, 3.0]), jnp.array([-2.0, 0.5, -1, 2]))
    np.testing.assert_allclose([aux["kd_d"], aux["gan_d"]], [1.25, 1.75])
    np.testing.assert_allclose(loss, 1.25 + 0.25 * 1.75)
    fake = jnp.concatenate([jnp.full((2, 2, 2, 1), 0.5), jnp.full((2, 2, 2, 1), 9.0)])
    features = [jnp.concatenate([jnp.ones((2, 1, 1, 2)), jnp.full((2, 1, 1, 2), 7.0)])]
    real_features = [jnp.zeros((4, 1, 1, 2))]
    loss, aux = objective.g_loss(jnp.array([1.0, 3, -2, -4]), features, real_features, fake, real)
    # feat |1 - 0| = 1 (one block, alpha 1); pixel |0.5 - 0| = 0.5; KD_S -2; GAN_S 3.
    np.testing.assert_allclose([aux["kd_feat"], aux["kd_pix"], aux["kd_s"]], [1.0, 0.5, -2.0])
    np.testing.assert_allclose(loss, 1.0 + 0.5 - 2.0 + 0.5 * 3.0)


def test_objective_without_real_data_uses_the_batch_as_is():
    objective = DistillationObjective(DistillWeights())
    batch = {"z": jnp.ones((2, 3)), "label": jnp.array([1, 2]), "image": jnp.zeros((2, 2, 2, 1))}
    z, labels, real = objective.inputs(batch, jax.random.split(jax.random.key(0), 2), 3)
    assert z is batch["z"] and labels is batch["label"] and real is batch["image"]
    with pytest.raises(ValueError, match="z has 3 dimensions.*latent_dim is 4"):
        objective.inputs(batch, jax.random.split(jax.random.key(0), 2), 4)
    with pytest.raises(ValueError, match="needs data.real_source"):
        DistillationObjective(DistillWeights(real_adv=1.0)).inputs(batch, None, 3)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda c: c.__delattr__("distill"), "needs a config.distill group"),
        (lambda c: c.train.update(loss="non_saturating"), "uses hinge losses"),
        (lambda c: c.data.update(source="digits"), "data.source='distill'"),
        (lambda c: c.distill.update(feature_layer_weights=(1.0,)), "num_blocks=2"),
        (lambda c: c.data.update(real_source=None), "needs data.real_source"),
        (lambda c: c.distill.update(pixel=-1.0), "pixel must be a finite number"),
        (lambda c: c.model.update(family="stylegan"), "'dcgan', 'diffusion', 'style', 'textgan'"),
    ],
)
def test_bad_student_configs_are_rejected(change, match):
    config = tiny_student_config("unused", 3, real_adv=0.1)
    change(config)
    with pytest.raises(ValueError, match=match):
        validate_config(config)


def test_distill_config_groups():
    assert distill_config().to_dict() == {
        "pixel": 1.0, "adv": 1.0, "feat": 1.0, "real_adv": 0.0, "d_real_adv": 0.0,
        "feature_layer_weights": None,
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown distillation weights"):
        distill_config(lambda_gan=1.0)


def generator_params(config: ml_collections.ConfigDict) -> int:
    generator = Generator(**config.model.generator.to_dict())
    z = jnp.zeros((1, generator.latent_dim))
    y = jnp.zeros((1, generator.num_classes))
    shapes = jax.eval_shape(generator.init, jax.random.key(0), z, y)["params"]
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


@pytest.mark.parametrize(
    "student, teacher",
    [
        ("tinygan_digits.py", "dcgan_digits_teacher.py"),
        ("tinygan_cifar10.py", "dcgan_cifar10_teacher.py"),
    ],
)
def test_configs_pair_a_student_with_a_ten_times_larger_teacher(student, teacher):
    student, teacher = load_config(student), load_config(teacher)
    for config in (student, teacher):
        validate_config(config)
    assert isinstance(make_objective(student), DistillationObjective)
    gen_s, gen_t = student.model.generator, teacher.model.generator
    assert (gen_s.latent_dim, gen_s.num_classes, tuple(gen_s.image_shape)) == (
        gen_t.latent_dim, gen_t.num_classes, tuple(gen_t.image_shape)
    )  # fmt: skip
    assert generator_params(student) * 10 <= generator_params(teacher)


def test_cifar10_config_reads_a_set_and_mock_cifar10(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = load_config("tinygan_cifar10.py")
    rng = np.random.default_rng(0)
    teacher = lambda z, y: np.tanh(rng.normal(size=(len(z), 32, 32, 3)))  # noqa: E731
    write_distill_set(teacher, str(tmp_path), num=20, num_classes=10, latent_dim=64)
    config.data.path = str(tmp_path)
    with tfds.testing.mock_data(num_examples=12):
        source = load_source(config.data, "train")
        heldout = load_source(config.data, "heldout")
    assert isinstance(source, DistillSource) and len(source) == 20 and len(source.real) == 12
    assert heldout.images.shape == (12, 32, 32, 3)
    batch = source.batch(0, 8, config.seed)
    assert batch["z"].shape == (8, 64) and batch["real_image"].shape == (8, 32, 32, 3)
    z, labels, real = make_objective(config).inputs(
        batch, jax.random.split(jax.random.key(0), 8), 64
    )
    assert (z.shape, labels.shape, real.shape) == ((16, 64), (16,), (16, 32, 32, 3))


def test_student_steps_reduce_the_pixel_loss_on_a_fixed_batch(distill_set):
    config = tiny_student_config(distill_set, 3, pixel=1.0, adv=0.0, feat=0.0, d_real_adv=0.1)
    config.optim.g_lr = 1e-2
    trainer = make_trainer(config)
    mesh = jax.make_mesh((1,), (AXIS,))
    step = compile_step(trainer, mesh)
    batch = shard_batch(load_source(config.data, "train").batch(0, 8, 0), mesh)
    state, losses = trainer.init_state(), []
    for _ in range(8):
        state, metrics = step(state, batch)
        losses.append(float(metrics["kd_pix"]))
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses


def test_end_to_end_student_exports_and_runs_on_litert(distill_set, tmp_path):
    workdir, bundle, grid = tmp_path / "student", tmp_path / "bundle", tmp_path / "grid.png"
    config = tiny_student_config(distill_set, 3, real_adv=0.1, d_real_adv=0.1)
    state = train(config, str(workdir))
    assert int(state.step) == 3 and (workdir / "samples" / "step_000003.png").is_file()
    export = run_tool(
        "export/export_bundle.py", f"--workdir={workdir}", f"--out={bundle}", "--quant=int8",
        "--min_psnr=0",
    )  # fmt: skip
    assert export.returncode == 0, export.stderr[-2000:]
    infer = run_tool(
        "export/pi_infer.py", "--bundle", str(bundle), "--num", "2", "--out", str(grid)
    )
    assert infer.returncode == 0, infer.stderr[-2000:]
    assert grid.stat().st_size > 0
    from lwgen.export.runtime import TFLiteGenerator

    generator = TFLiteGenerator(bundle)
    assert generator.metadata["family"] == "tinygan" and generator.image_shape == (16, 16, 1)
    images = generator(np.zeros((1, 8), np.float32), np.eye(10, dtype=np.float32)[:1])
    assert images.shape == (1, 16, 16, 1) and np.all(np.abs(images) <= 1.0)
