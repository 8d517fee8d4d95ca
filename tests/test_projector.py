"""The embedding projector: the sprite, TensorBoard's projector files (parsed back with its
config proto), and `project_workdir` end to end on tiny trained workdirs of two families."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image
from tensorboard.plugins.projector import projector_config_pb2

from lwgen.errors import ConfigError
from lwgen.eval import projector
from lwgen.train.loop import train
from tests.conftest import ROOT
from tests.tiny import tiny_diffusion_config, tiny_gan_config


def _tiles(n: int, height: int, width: int) -> np.ndarray:
    """``n`` constant images ``[n, height, width, 1]``, image i at level ``-1 + 2 (i + 1) / n``."""
    levels = -1.0 + 2.0 * (np.arange(n) + 1) / n
    return np.broadcast_to(levels[:, None, None, None], (n, height, width, 1)).astype(np.float32)


def test_sprite_tiles_images_row_major_in_a_square():
    images = _tiles(10, 3, 2)
    sheet = projector.sprite(images)
    assert sheet.shape == (4 * 3, 4 * 2, 1)  # ceil(√10) = 4 tiles a side
    for i in range(16):
        row, col = divmod(i, 4)
        tile = sheet[row * 3 : (row + 1) * 3, col * 2 : (col + 1) * 2]
        expected = np.round((images[i, 0, 0, 0] + 1) * 127.5) if i < 10 else 0
        assert np.all(tile == expected), i


def _parse_config(path: str):
    config = projector_config_pb2.ProjectorConfig()
    with open(path) as f:
        text_format.Parse(f.read(), config)
    return config


def _read_projector(out_dir: str):
    """The parsed config, its one embedding's tensor, metadata rows and sprite image."""
    config = _parse_config(os.path.join(out_dir, projector.CONFIG_FILE))
    (embedding,) = config.embeddings
    path = lambda p: os.path.join(out_dir, p)  # noqa: E731  (paths relative to the config)
    tensor = np.loadtxt(path(embedding.tensor_path), delimiter="\t", ndmin=2)
    with open(path(embedding.metadata_path)) as f:
        rows = [line.split("\t") for line in f.read().split("\n")]
    return embedding, tensor, rows, Image.open(path(embedding.sprite.image_path))


def test_projector_files_parse_back(tmp_path):
    features = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    images = _tiles(7, 6, 4)
    metadata = [(f"class\t{i}", "real" if i < 3 else "generated") for i in range(7)]
    projector.write_projector_files(str(tmp_path), features, images, metadata)
    embedding, tensor, rows, sheet = _read_projector(str(tmp_path))
    assert embedding.tensor_name == projector.TENSOR_NAME
    np.testing.assert_allclose(tensor, features, rtol=1e-5, atol=1e-6)
    assert rows[0] == ["class", "source"] and len(rows) == 8
    assert rows[1] == ["class 0", "real"] and rows[7] == ["class 6", "generated"]
    assert list(embedding.sprite.single_image_dim) == [4, 6]  # width, height of a tile
    assert sheet.size == (3 * 4, 3 * 6)  # ceil(√7) = 3 tiles a side
    with pytest.raises(ValueError, match="7 features, 7 images and 6 metadata rows"):
        projector.write_projector_files(str(tmp_path), features, images, metadata[:6])


@pytest.fixture(scope="module", params=["dcgan", pytest.param("diffusion", marks=pytest.mark.slow)])
def tiny_workdir(request, tmp_path_factory):
    config = {"dcgan": tiny_gan_config, "diffusion": tiny_diffusion_config}[request.param](2)
    workdir = str(tmp_path_factory.mktemp(request.param))
    train(config, workdir)
    return workdir


def test_project_workdir_writes_embeddings_and_plots(tiny_workdir):
    summary = projector.project_workdir(tiny_workdir, num=3, perplexity=5.0)
    embedding, tensor, rows, sheet = _read_projector(tiny_workdir)  # written into the workdir
    assert tensor.shape == (60, 128) and len(rows) == 61  # 3 real + 3 generated per class
    sources = [row[1] for row in rows[1:]]
    assert sources == ["real"] * 30 + ["generated"] * 30
    assert [row[0] for row in rows[1:31:3]] == [str(k) for k in range(10)]
    assert sheet.size == (8 * 16, 8 * 16)  # 60 tiles of 16×16 in ceil(√60) = 8 a side
    for name in ("pca.png", "tsne.png"):
        with Image.open(os.path.join(tiny_workdir, projector.PROJECTOR_DIR, name)) as image:
            assert image.format == "PNG" and min(image.size) > 300
    with open(os.path.join(tiny_workdir, projector.PROJECTOR_DIR, "projector.json")) as f:
        assert json.load(f) == summary
    assert summary["num_real"] == summary["num_generated"] == 30
    assert 0.0 < sum(summary["pca_explained_variance"]) <= 1.0 + 1e-6


def test_project_rejects_bad_counts_and_families_without_a_sampler(tmp_path):
    from tests.toy_family import toy_config

    with pytest.raises(ConfigError, match="num must be an integer >= 1"):
        projector.project_workdir(str(tmp_path), num=0)
    workdir = str(tmp_path / "toy")
    train(toy_config(2), workdir)
    with pytest.raises(ConfigError, match="family 'toy' has no class-conditional sampler"):
        projector.project_workdir(workdir, num=2)


def test_launcher_missing_workdir_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "launch/project.py", f"--workdir={tmp_path / 'missing'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("project: error:")
    assert "config.json" in result.stderr and "Traceback" not in result.stderr
