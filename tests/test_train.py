"""Training core: every registered family trains data-parallel and resumes bit-identically; the
GAN step's update order; non-finite stop; config errors; the launcher."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tests.toy_family  # noqa: F401  (registers the toy family)
from lwgen.data import load_source, shard_batch
from lwgen.families import registry
from lwgen.families.conditional_gan import restore_generator
from lwgen.losses.gan import gan_losses
from lwgen.train import checkpoint
from lwgen.train.config import validate_config
from lwgen.train.loop import compile_step, train
from lwgen.train.state import TrainState
from lwgen.train.steps import AXIS
from tests.conftest import ROOT
from tests.tiny import family_config, tiny_gan_config

FAMILIES = registry.names()


def _leaves(state):
    return jax.tree_util.tree_leaves_with_path(jax.device_get(state))


def test_every_registered_family_has_a_tiny_config(tmp_path):
    assert {"dcgan", "tinygan", "toy"} <= set(FAMILIES)
    for family in FAMILIES:
        assert family_config(family, str(tmp_path)).model.family == family


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_is_bit_identical(family, tmp_path):
    config = family_config(family, str(tmp_path))
    straight = train(config, str(tmp_path / "straight"))
    interrupted = config.copy_and_resolve_references()
    interrupted.num_train_steps = 2
    train(interrupted, str(tmp_path / "resumed"))
    resumed = train(config, str(tmp_path / "resumed"))
    assert isinstance(resumed, TrainState) and int(resumed.step) == int(straight.step) == 4
    for (path, a), (_, b) in zip(_leaves(straight), _leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))


DATA_PARALLEL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import tests.toy_family
    from lwgen.data import load_source, shard_batch
    from lwgen.families import registry
    from lwgen.train.loop import compile_step
    from tests.tiny import family_config

    assert jax.device_count() == 4
    for family in registry.names():
        config = family_config(family, sys.argv[1])
        trainer = registry.make_trainer(config)
        source = load_source(config.data, "train")

        def run(devices):
            mesh = Mesh(np.array(devices), ("batch",))
            step = compile_step(trainer, mesh)
            state = jax.device_put(trainer.init_state(), NamedSharding(mesh, P()))
            for k in range(3):
                state, metrics = step(state, shard_batch(source.batch(k, 8, 0), mesh))
            return jax.device_get(state), jax.device_get(metrics)

        (s4, m4), (s1, m1) = run(jax.devices()), run(jax.devices()[:1])
        for (path, a), (_, b) in zip(jax.tree_util.tree_leaves_with_path(s4),
                                     jax.tree_util.tree_leaves_with_path(s1), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5,
                                       err_msg=family + jax.tree_util.keystr(path))
        for k in m1:
            np.testing.assert_allclose(m4[k], m1[k], rtol=1e-4, atol=1e-5, err_msg=family + k)
        start = jax.tree.leaves(trainer.init_state().networks)
        assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(s1.networks), start))
        print("EQUAL", family)
    """
)


def test_data_parallel_step_equals_single_device_step_for_every_family(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL_SCRIPT, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(result.stdout.split()[1::2]) == sorted(FAMILIES)


def test_gan_step_updates_the_discriminator_first_then_the_generator_through_it():
    """The metrics of one step equal the hinge losses of D before its update on G's samples and
    of G through the *updated* D; swapping the two updates changes both."""
    config = tiny_gan_config()
    trainer = registry.make_trainer(config)
    state = trainer.init_state()
    mesh = jax.make_mesh((1,), (AXIS,))
    batch = _digits_batch(config)  # host arrays for the reference computation below
    new_state, metrics = compile_step(trainer, mesh)(
        jax.tree.map(jnp.copy, state), shard_batch(batch, mesh)
    )

    g, d = state.networks["generator"], state.networks["discriminator"]
    d_new = new_state.networks["discriminator"]
    step_key = jax.random.fold_in(state.rng, state.step)
    keys = jax.vmap(lambda j: jax.random.fold_in(step_key, j))(jnp.arange(8))
    z = jax.vmap(lambda k: jax.random.normal(k, (8,)))(keys)
    y = jax.nn.one_hot(batch["label"], 10)
    generator = trainer.modules["generator"].clone(axis_name=None)
    fake, _ = generator.apply(g.variables(), z, y, train=True, mutable=["batch_stats"])
    discriminator = trainer.modules["discriminator"]
    logits, _ = discriminator.apply(
        d.variables(), jnp.concatenate([batch["image"], fake]), jnp.concatenate([y, y]),
        train=True, mutable=["batch_stats"],
    )  # fmt: skip
    d_loss_fn, g_loss_fn = gan_losses("hinge")
    expected_d = d_loss_fn(*jnp.split(logits, 2))[0]
    expected_g = g_loss_fn(discriminator.apply(d_new.variables(), fake, y, train=False))[0]
    stale_g = g_loss_fn(discriminator.apply(d.variables(), fake, y, train=False))[0]
    np.testing.assert_allclose(metrics["d_loss"], expected_d, rtol=1e-5)
    np.testing.assert_allclose(metrics["g_loss"], expected_g, rtol=1e-5)
    assert abs(float(expected_g) - float(stale_g)) > 1e-4, "the D update must change G's loss"


def _digits_batch(config):
    return load_source(config.data, "train").batch(0, config.batch_size, config.seed)


def test_training_writes_workdir_and_restores_generator(tiny_config, tmp_path):
    tiny_config.train.sample_every = 4
    state = train(tiny_config, str(tmp_path))
    assert os.path.isfile(tmp_path / "samples" / "step_000004.png")
    assert "devices: 1" in (tmp_path / "train.log").read_text()
    restored = restore_generator(str(tmp_path))
    assert restored.step == 4
    np.testing.assert_array_equal(
        restored.variables["params"]["project"]["kernel"],
        state.ema["generator"]["project"]["kernel"],
    )
    images = restored.generator.apply(
        restored.variables, np.zeros((2, 8), np.float32), np.eye(10, dtype=np.float32)[:2]
    )
    assert images.shape == (2, 16, 16, 1)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_config, tmp_path):
    tiny_config.num_train_steps = 2
    train(tiny_config, str(tmp_path))
    broken = tiny_config.copy_and_resolve_references()
    broken.num_train_steps = 6
    broken.optim.d_lr = float("inf")
    with pytest.raises(FloatingPointError, match="last good checkpoint is step 2"):
        train(broken, str(tmp_path))
    restored = restore_generator(str(tmp_path))
    assert restored.step == 2
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(restored.variables))


def test_restore_without_checkpoint_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        checkpoint.restore_inference(str(tmp_path))


@pytest.mark.parametrize(
    "key, value, message",
    [
        (("data", "image_size"), 32, "image_shape"),
        (("model", "discriminator", "num_classes"), 7, "num_classes"),
        (("batch_size",), 0, "batch_size"),
        (("model", "family"), "stylegan", "'dcgan'"),
        (("train", "loss"), "wasserstein", "train.loss"),
    ],
)
def test_inconsistent_config_is_rejected(tiny_config, key, value, message):
    node = tiny_config
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value
    with pytest.raises(ValueError, match=message):
        validate_config(tiny_config)


def test_unknown_override_key_fails_before_any_work(tmp_path):
    workdir = tmp_path / "w"
    result = subprocess.run(
        [
            sys.executable,
            "launch/train.py",
            "--config=configs/dcgan_digits.py",
            f"--workdir={workdir}",
            "--config.model.generator.no_such_key=3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no_such_key" in result.stderr
    assert not workdir.exists()


def test_ema_warmup_follows_weights_early_then_reaches_decay():
    from lwgen.train.steps import ema_warmup

    assert float(ema_warmup(0.999, jnp.asarray(0, jnp.int32))) == pytest.approx(0.1)
    assert float(ema_warmup(0.999, jnp.asarray(90, jnp.int32))) == pytest.approx(0.91)
    assert float(ema_warmup(0.999, jnp.asarray(100_000, jnp.int32))) == pytest.approx(0.999)


def test_train_launcher_runs_on_two_simulated_devices_and_resumes_on_one(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    workdir = tmp_path / "w"
    result = subprocess.run(
        [
            sys.executable,
            "launch/train.py",
            "--config=tests/tiny.py",
            f"--workdir={workdir}",
            "--config.num_train_steps=2",
            "--alsologtostderr",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "devices: 2" in result.stderr
    assert checkpoint.latest_step(str(workdir)) == 2
    state = train(tiny_gan_config(num_train_steps=4), str(workdir))  # resumed on 1 device
    assert int(state.step) == 4
