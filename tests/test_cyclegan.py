"""Tests for the cyclegan family: networks, unpaired sources, distillation, export and pi_infer.

Resume bit-identity and the 4-simulated-device equality run for this family through
``tests/tiny.py`` (``tests/test_train.py``).
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from lwgen.data import load_source
from lwgen.errors import ConfigError, DataError, MissingFileError
from lwgen.eval.profile import profile_model
from lwgen.families import cyclegan_core as core
from lwgen.models.cyclegan import (
    PatchDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    patchgan_receptive_field,
)
from tests.tiny import tiny_cyclegan_config, tiny_cyclegan_teacher, tiny_unpaired_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PI_INFER = os.path.join(ROOT, "export", "pi_infer.py")


def _init(module, x):
    return jax.jit(module.init)(jax.random.PRNGKey(0), x)


def _profile(module, size=32):
    x = jnp.zeros((1, size, size, 1))
    return profile_model(module, _init(module, x), x, train=False)


@pytest.mark.parametrize(
    "module",
    [
        ResnetGenerator(channels=1, base_width=4, num_blocks=1),
        pytest.param(
            ResnetGenerator(channels=1, base_width=4, num_blocks=1, separable=True, norm="batch"),
            marks=pytest.mark.slow,
        ),
        pytest.param(UnetGenerator(channels=1, base_width=4, num_downs=4), marks=pytest.mark.slow),
    ],
)
def test_generators_map_images_to_images_in_range_without_transpose_convs(module):
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 16, 16, 1), minval=-1, maxval=1)
    variables = _init(module, x)
    out, features = jax.jit(lambda v, x: module.apply(v, x, return_features=True))(variables, x)
    assert out.shape == x.shape and float(jnp.max(jnp.abs(out))) <= 1.0
    assert len(features) >= 2
    layers = {row["op"] for row in profile_model(module, variables, x[:1])["layers"]}
    assert not any("transpose" in op for op in layers)


def test_patchgan_receptive_field_is_70_at_three_layers_and_its_logits_are_patches():
    assert [patchgan_receptive_field(n) for n in (1, 2, 3)] == [16, 34, 70]
    d = PatchDiscriminator(base_width=4, num_layers=2)
    x = jnp.zeros((1, 32, 32, 1))
    logits = jax.eval_shape(lambda: d.init_with_output(jax.random.PRNGKey(0), x)[0])
    assert logits.shape == (1, 6, 6, 1)


@pytest.mark.slow
def test_fashion_config_student_needs_at_least_ten_times_fewer_macs():
    from configs.cyclegan_fashion import get_config

    config = get_config()
    teacher = core.generator_module(config.model.generator, 1)
    student_group = config.model.generator.copy_and_resolve_references()
    student_group.update(config.student.generator)
    student = core.generator_module(student_group, 1)
    assert _profile(teacher)["macs"] >= 10 * _profile(student)["macs"]


def test_learning_rate_is_constant_for_half_of_training_then_decays_linearly_to_zero():
    from lwgen.families.cyclegan import cyclegan_config

    schedule = core.learning_rate(cyclegan_config().optim, 100)
    rates = [float(schedule(step)) for step in (0, 49, 50, 75, 100)]
    np.testing.assert_allclose(rates, [2e-4, 2e-4, 2e-4, 1e-4, 0.0], atol=1e-9)


def test_unpaired_batches_are_deterministic_per_step_and_shuffled_per_domain(tmp_path):
    config = tiny_cyclegan_config(tiny_unpaired_folder(str(tmp_path)))
    source = load_source(config.data, "train")
    first, again = source.batch(3, 8, 0), source.batch(3, 8, 0)
    for key in ("image_a", "image_b"):
        np.testing.assert_array_equal(first[key], again[key])
        assert first[key].shape == (8, 16, 16, 1) and first[key].dtype == np.float32
        assert not np.array_equal(first[key], source.batch(4, 8, 0)[key])
    assert source.images_a.shape[1:] == (18, 18, 1)  # fitted to load_size, cropped per batch
    orders = [source.indices(d, 0, len(source), 1) for d in ("a", "b")]
    assert not np.array_equal(*orders)
    heldout = load_source(config.data, "heldout")
    assert heldout.center("a").shape == (2, 16, 16, 1)  # 0.34 of 6 images


def test_unpaired_folder_names_a_corrupt_image_and_a_missing_domain(tmp_path):
    folder = tiny_unpaired_folder(str(tmp_path / "data"))
    config = tiny_cyclegan_config(folder)
    (tmp_path / "data" / "B" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        for split in ("train", "heldout"):
            load_source(config.data, split)
    config.data.path = str(tmp_path / "nowhere")
    with pytest.raises(MissingFileError, match="nowhere"):
        load_source(config.data, "train")


def test_fashion_source_is_sneakers_and_ankle_boots_train_and_test():
    from lwgen.families.cyclegan import cyclegan_config

    config = cyclegan_config()
    train, test = load_source(config.data, "train"), load_source(config.data, "heldout")
    assert len(train.images_a) == len(train.images_b) == 6000
    assert len(test.images_a) == len(test.images_b) == 1000
    assert train.images_a.shape[1:] == (32, 32, 1)


def test_cycle_gan_tfds_source_reads_both_domains_under_mock_data():
    import tensorflow_datasets as tfds

    from lwgen.families.cyclegan import cyclegan_config

    config = cyclegan_config("cycle_gan_tfds", (16, 16, 3))
    config.data.update(tfds_name="cycle_gan/horse2zebra", load_size=18)
    with tfds.testing.mock_data(num_examples=3):
        source = load_source(config.data, "heldout")
    assert source.images_a.shape == source.images_b.shape == (3, 18, 18, 3)
    assert source.batch(0, 2, 0)["image_b"].shape == (2, 16, 16, 3)
    config.data.tfds_name = "mnist"
    with pytest.raises(ConfigError, match="cycle_gan"):
        load_source(config.data, "train")


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """``(unpaired folder, tiny teacher workdir)``, made once for this module."""
    root = tmp_path_factory.mktemp("cyclegan")
    folder = tiny_unpaired_folder(str(root / "data"))
    return folder, tiny_cyclegan_teacher(str(root / "teacher"), folder)


def _pi_infer(*args):
    return subprocess.run(
        [sys.executable, PI_INFER, *args], capture_output=True, text=True, check=False
    )


def test_miniature_end_to_end_distil_export_int8_and_translate_with_pi_infer(
    tiny_teacher, tmp_path
):
    from lwgen.export.bundle import export_workdir
    from lwgen.families.cyclegan import evaluate_bundle
    from lwgen.train.loop import train

    folder, teacher = tiny_teacher
    student = tiny_cyclegan_config(folder, 2, teacher_workdir=teacher)
    state = train(student, str(tmp_path / "student"))
    assert set(state.networks) == {*core.GENERATORS, *core.DISCRIMINATORS, "mapping_ab",
                                   "mapping_ba"}  # fmt: skip
    # the student's discriminators see its translations through full history pools
    assert all(bool(jnp.all(state.extras[f"pool_{d}"]["count"] == 4)) for d in "ab")
    bundle = str(tmp_path / "bundle")
    metadata = export_workdir(str(tmp_path / "student"), bundle, quant="int8")
    assert set(metadata["models"]) == set(core.GENERATORS)
    assert "TRANSPOSE_CONV" not in metadata["models"][core.G_AB]["ops"]
    assert evaluate_bundle(bundle, student.data)["a2b_cycle_l1"] >= 0.0
    out = tmp_path / "translated"
    done = _pi_infer(f"--bundle={bundle}", f"--input={folder}/A", f"--out={out}",
                     "--direction=b2a", f"--npy={tmp_path / 'out.npz'}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == [f"{i}.png" for i in range(6)]
    assert Image.open(out / "0.png").size == (16, 16)
    with np.load(tmp_path / "out.npz") as saved:
        assert saved["images"].shape == (6, 16, 16, 1)
    (tmp_path / "bad.png").write_bytes(b"garbage")
    for args, message in (
        ([f"--input={tmp_path / 'missing.png'}"], "does not exist"),
        ([f"--input={tmp_path / 'bad.png'}"], "bad.png"),
        ([], "--input"),
    ):
        done = _pi_infer(f"--bundle={bundle}", f"--out={tmp_path / 'x.png'}", *args)
        assert done.returncode == 2 and message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_qat_fine_tunes_both_student_generators_and_exports(tiny_teacher, tmp_path):
    from lwgen.compress.fake_quant import QUANT_COLLECTION
    from lwgen.export.bundle import export_workdir
    from lwgen.families.cyclegan_student import qat_workdir
    from lwgen.train.loop import train

    folder, teacher = tiny_teacher
    train(tiny_cyclegan_config(folder, 2, teacher_workdir=teacher), str(tmp_path / "student"))
    state = qat_workdir(str(tmp_path / "student"), str(tmp_path / "qat"), 2)
    for name in core.GENERATORS:
        assert QUANT_COLLECTION in state.networks[name].collections
    metadata = export_workdir(str(tmp_path / "qat"), str(tmp_path / "bundle"), quant="int8_io")
    assert metadata["models"][core.G_BA]["inputs"][0]["dtype"] == "int8"
