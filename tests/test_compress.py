"""End-to-end compression fine-tunes of a tiny workdir: pruning masks through real training steps,
QAT ranges, the compressed workdir's config, and the launcher's errors."""

import os
import subprocess
import sys

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from lwgen.compress import fake_quant
from lwgen.compress.finetune import compress_workdir, restore_source
from lwgen.eval.profile import profile_generator
from lwgen.families.conditional_gan import restore_generator
from lwgen.families.registry import make_trainer
from lwgen.train import checkpoint
from tests.conftest import ROOT
from tests.tiny import tiny_gan_config


@pytest.fixture(scope="module")
def source_workdir(tmp_path_factory):
    """A tiny workdir holding a step-0 checkpoint (compression needs weights, not quality)."""
    workdir = str(tmp_path_factory.mktemp("source"))
    config = tiny_gan_config()
    checkpoint.write_config(workdir, config)
    manager = checkpoint.checkpoint_manager(workdir)
    trainer = make_trainer(config)
    state = trainer.init_state()
    checkpoint.save_state(manager, state, trainer.inference_variables(state))
    manager.wait_until_finished()
    return workdir


def _state_at(workdir, step):
    config = checkpoint.read_config(workdir)
    template = jax.eval_shape(make_trainer(config).init_state)
    manager = checkpoint.checkpoint_manager(workdir)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    return manager.restore(step, args=args).state


def _masks(state):
    return optax.tree_utils.tree_get(state.networks["generator"].opt_state, "masks")


def test_unstructured_masks_keep_pruned_weights_zero_through_training(source_workdir, tmp_path):
    out = str(tmp_path / "unstructured")
    final = compress_workdir(source_workdir, out, "unstructured", 0.5, 6)
    config, restored = restore_source(out)
    assert config.compress.end_step == 4 and config.optim.ema_decay == 0.0
    assert int(restored.step) == 6
    early = _state_at(out, 4)  # masks of update 3, sparsity 0.5 * (1 - (1/4)^3)
    masks = jax.tree.leaves(_masks(restored))
    early_masks = jax.tree.leaves(_masks(early))
    assert len(masks) == 3, "project, up1 and to_image kernels are pruned"
    kernels = [
        k
        for p, k in jax.tree_util.tree_flatten_with_path(restored.networks["generator"].params)[0]
        if p[-1].key == "kernel"
    ]
    early_kernels = [
        k
        for p, k in jax.tree_util.tree_flatten_with_path(early.networks["generator"].params)[0]
        if p[-1].key == "kernel"
    ]
    for kernel, early_kernel, mask, early_mask in zip(
        kernels, early_kernels, masks, early_masks, strict=True
    ):
        kernel, early_kernel = np.asarray(kernel), np.asarray(early_kernel)
        assert float(np.mean(mask == 0)) == pytest.approx(0.5, abs=0.01)
        assert float(np.mean(early_mask == 0)) == pytest.approx(0.4922, abs=0.01)
        assert np.all(mask[early_mask == 0] == 0), "a pruned weight came back"
        assert np.all(early_kernel[early_mask == 0] == 0.0)
        assert np.all(kernel[mask == 0] == 0.0), "pruned weights moved in training"
        assert not np.array_equal(kernel[mask == 1], early_kernel[mask == 1])
    exported = restore_generator(out)
    assert profile_generator(exported.generator, exported.variables)["nonzero_macs"] < (
        0.55 * profile_generator(exported.generator, exported.variables)["macs"]
    )
    for exported_leaf, final_leaf in zip(
        jax.tree.leaves(exported.variables["params"]),
        jax.tree.leaves(final.networks["generator"].params),
        strict=True,
    ):
        np.testing.assert_array_equal(exported_leaf, final_leaf)  # EMA off: exported == trained


def test_qat_trains_and_updates_activation_ranges(source_workdir, tmp_path):
    out = str(tmp_path / "qat")
    compress_workdir(source_workdir, out, "qat", 0.0, 2)
    start, end = _state_at(out, 0), _state_at(out, 2)
    before = start.networks["generator"].collections[fake_quant.QUANT_COLLECTION]
    after = end.networks["generator"].collections[fake_quant.QUANT_COLLECTION]
    assert set(before) == {"project", "up1", "to_image"}
    changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before, after)
    assert all(jax.tree.leaves(changed)), "every range must move with the EMA"
    kernels = [
        state.networks["generator"].params["up1"]["Conv_0"]["kernel"] for state in (start, end)
    ]
    assert not np.allclose(*kernels), "the generator trained"
    exported = restore_generator(out)
    assert set(exported.variables) == {"params", "batch_stats"}


def test_structured_workdir_describes_the_smaller_generator(source_workdir, tmp_path):
    out = str(tmp_path / "structured")
    compress_workdir(source_workdir, out, "structured", 0.5, 1)
    restored = restore_generator(out)
    assert restored.generator.block_widths() == (4, 2)
    assert restored.variables["params"]["up1"]["Conv_0"]["kernel"].shape == (3, 3, 4, 2)
    assert restored.config.compress.method == "structured"


def test_compress_refuses_the_source_and_a_different_run(source_workdir, tmp_path):
    with pytest.raises(ValueError, match="differ"):
        compress_workdir(source_workdir, source_workdir, "qat", 0.0, 2)
    with pytest.raises(ValueError, match="compress.amount"):
        compress_workdir(source_workdir, str(tmp_path / "x"), "structured", 1.5, 2)
    out = tmp_path / "other"
    config = tiny_gan_config()
    config.compress = dict(
        method="qat", amount=0.0, source_params="ema", network="generator", scope="layer"
    )
    checkpoint.write_config(str(out), config)
    with pytest.raises(ValueError, match="different compression run"):
        compress_workdir(source_workdir, str(out), "structured", 0.5, 2)


def test_launcher_reports_errors_in_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "launch/compress.py",
            f"--workdir={tmp_path}/none",
            f"--out_workdir={tmp_path}/out",
            "--method=qat",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("compress: error:")
    assert "config.json" in result.stderr
