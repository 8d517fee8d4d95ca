"""Frozen VGG16 features (Simonyan & Zisserman 2015, Table 1 column D) for perceptual losses.

`VGG16Features` runs the convolutional part of VGG16 only as deep as the deepest layer asked for
(on a CPU every block saved matters) and returns the requested ReLU outputs by their usual names
(``relu1_2``, ``relu2_2``, ``relu3_3``, ``relu4_3``, ``relu5_3``, ...). Images in ``[-1, 1]`` are
first mapped with LPIPS's scaling layer (Zhang et al. 2018), which is ImageNet's mean/std
normalisation written for ``[-1, 1]`` inputs. The ImageNet weights come from
``lwgen.models.vgg_weights``; `vgg_variables` turns them into this module's variables. Tests use
narrow made weights (``widths``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from lwgen.errors import ConfigError

VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG19_BLOCKS = (2, 2, 4, 4, 4)
VGG16_WIDTHS = (64, 128, 256, 512, 512)
# Keras/Caffe VGG input: BGR in 0..255 minus the ImageNet mean (keras.applications.vgg19).
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
# LPIPS's ScalingLayer: ((x + 1) / 2 - ImageNet mean) / ImageNet std, for x in [-1, 1].
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


def layer_names(blocks: Sequence[int] = VGG16_BLOCKS) -> list[str]:
    """Every ReLU output in order: ``relu1_1, relu1_2, relu2_1, ..., relu5_3`` (VGG16;
    ``relu5_4`` with ``VGG19_BLOCKS``)."""
    return [f"relu{b + 1}_{i + 1}" for b, n in enumerate(blocks) for i in range(n)]


def check_layers(layers: Sequence[str], blocks: Sequence[int] = VGG16_BLOCKS) -> None:
    """Raises ConfigError naming a layer that is not a ReLU output of the network."""
    for layer in layers:
        if layer not in layer_names(blocks):
            raise ConfigError(f"VGG layer {layer!r} is not one of {layer_names(blocks)}")


class VGG16Features(nn.Module):
    """The VGG convolutions up to the deepest of ``layers``, 3×3 SAME convs, ReLU, 2×2 max pool
    between blocks (VGG16 by default; VGG19 with ``blocks=VGG19_BLOCKS``).

    Attributes:
      layers: ReLU outputs to return (names from `layer_names`).
      widths: channels per block (``VGG16_WIDTHS`` for the ImageNet weights).
      blocks: convolutions per block.
      caffe_input: feed BGR 0..255 minus the ImageNet mean (Keras/Caffe weights) instead of the
        LPIPS scaling.
    """

    layers: tuple[str, ...]
    widths: tuple[int, ...] = VGG16_WIDTHS
    blocks: tuple[int, ...] = VGG16_BLOCKS
    caffe_input: bool = False

    @nn.compact
    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        """Maps float32 ``[B, H, W, 3]`` images in ``[-1, 1]`` to ``{layer: float32 [B, H / 2^k,
        W / 2^k, C_k]}`` for each requested layer (block ``k + 1``)."""
        check_layers(self.layers, self.blocks)
        names = layer_names(self.blocks)
        last = max(names.index(layer) for layer in self.layers)
        if self.caffe_input:
            x = (images[..., ::-1] + 1.0) * 127.5 - CAFFE_MEAN_BGR
        else:
            x = (images - SHIFT) / SCALE
        out, index = {}, 0
        for block, (num_convs, width) in enumerate(zip(self.blocks, self.widths, strict=True)):
            if block:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for _ in range(num_convs):
                x = nn.relu(nn.Conv(width, (3, 3), padding="SAME", name=f"Conv_{index}")(x))
                if names[index] in self.layers:
                    out[names[index]] = x
                if index == last:
                    return out
                index += 1
        return out


def widths_of(
    weights: Mapping[str, np.ndarray], blocks: Sequence[int] = VGG16_BLOCKS
) -> tuple[int, ...]:
    """The block widths of flat VGG arrays (``VGG16_WIDTHS`` for the ImageNet weights)."""
    firsts = np.cumsum((0, *blocks[:-1]))
    return tuple(int(weights[f"VGG16_0/Conv_{i}/bias"].shape[0]) for i in firsts)


def vgg_variables(
    weights: Mapping[str, np.ndarray], layers: Sequence[str], blocks: Sequence[int] = VGG16_BLOCKS
) -> dict:
    """``{"params": ...}`` of a `VGG16Features` for ``layers`` from flat arrays in the
    checkpoint layout (``VGG16_0/Conv_<i>/kernel``, also used for Keras VGG19 weights, see
    ``lwgen.models.vgg_weights``): only the convolutions it runs."""
    check_layers(layers, blocks)
    last = max(layer_names(blocks).index(layer) for layer in layers)
    params = {
        f"Conv_{i}": {
            "kernel": jnp.asarray(weights[f"VGG16_0/Conv_{i}/kernel"]),
            "bias": jnp.asarray(weights[f"VGG16_0/Conv_{i}/bias"]),
        }
        for i in range(last + 1)
    }
    return {"params": params}


def made_vgg_weights(widths: Sequence[int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random flat weights in the checkpoint's layout for a narrow `VGG16Features` (tests, tiny
    configs): He-normal kernels, zero biases, LPIPS heads of small positive weights."""
    rng = np.random.default_rng(seed)
    weights, c_in, index = {}, 3, 0
    for block, (num_convs, width) in enumerate(zip(VGG16_BLOCKS, widths, strict=True)):
        for _ in range(num_convs):
            kernel = rng.standard_normal((3, 3, c_in, width)) * np.sqrt(2.0 / (9 * c_in))
            weights[f"VGG16_0/Conv_{index}/kernel"] = kernel.astype(np.float32)
            weights[f"VGG16_0/Conv_{index}/bias"] = np.zeros(width, np.float32)
            c_in, index = width, index + 1
        head = rng.uniform(0.0, 0.1, (1, 1, width, 1)).astype(np.float32)
        weights[f"NetLinLayer_{block}/Conv_0/kernel"] = head
    return weights
