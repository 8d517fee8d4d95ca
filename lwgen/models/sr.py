"""A small super-resolution network (×2, ×4) in the spirit of FSRCNN and ESPCN.

`SuperResolution` follows FSRCNN's hourglass (Dong et al. 2016, "Accelerating the
Super-Resolution Convolutional Neural Network", §3.1: feature extraction 5×5 conv to ``d``
channels, 1×1 shrinking to ``s``, ``m`` 3×3 mapping convs, 1×1 expanding back to ``d``), all at the
low resolution, then one upsampling layer, plus a global skip, so the network learns a residual
(Kim et al. 2016, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks", §3.1).
The skip is a trainable 5×5 conv of the input to ``C · scale²`` channels, one per output phase,
pixel-shuffled: initialised to the weights of bicubic interpolation (Keys 1981, "Cubic
Convolution Interpolation for Digital Image Processing", eq. 15 with ``a = -0.5``, half-pixel
centres, as Pillow's ``BICUBIC``; `bicubic_phase_kernel`), it makes the untrained network exactly
the bicubic baseline (up to the borders) for one CONV_2D. ReLU replaces FSRCNN's PReLU (it fuses
into the convolutions in INT8 TFLite), the upsampling conv starts at zero (so training starts
from bicubic enlargement), and the output is clipped to ``[-1, 1]``.

The upsampling layer is a model option (``UPSAMPLE_MODES``), chosen for INT8 and the Edge TPU:

* ``"depth_to_space"`` (default) – a 3×3 conv at the low resolution to ``C · scale²`` channels
  then a pixel shuffle (Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution Using an
  Efficient Sub-Pixel CNN", §2.2). The shuffle is written as channel slices, reshapes and one
  concatenation (`depth_to_space_sliced`), which TFLite runs as STRIDED_SLICE / RESHAPE /
  CONCATENATION on at most 4-D tensors with a unit batch: all Edge TPU operators. The usual
  reshape/transpose form exports as a 6-D TRANSPOSE, which the Edge TPU cannot run, and jax2tf
  has no way to emit TFLite's own DEPTH_TO_SPACE (not on the Edge TPU list either).
* ``"resize"`` – nearest-neighbour enlargement of the features then a 3×3 conv at the high
  resolution (RESIZE_NEAREST_NEIGHBOR + CONV_2D; Odena et al. 2016, "Deconvolution and
  Checkerboard Artifacts"). Same MACs as the sub-pixel conv, but its output pixels of one
  low-resolution pixel see fewer distinct inputs, and the enlarged feature map costs memory.

Nearest-neighbour enlargement (the features of ``"resize"``) is written as a pixel shuffle of
``scale²`` copies of the input (`upsample_nearest`): ``jax.image.resize`` by 4 exports as
GATHER_ND and TRANSPOSE (only a single 2× resize becomes RESIZE_NEAREST_NEIGHBOR), and the
shuffle form differentiates as cheap slices and sums on XLA CPU. In the ``"depth_to_space"`` mode
the skip is added before the shuffle, at the low resolution.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax.linen.initializers import zeros

UPSAMPLE_MODES = ("depth_to_space", "resize")
SCALES = (2, 4)
SKIP_TAPS = 5  # bicubic reads 4 input pixels per axis; 5 centred taps cover every phase
BICUBIC_A = -0.5


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel ``W(x)`` with ``a = BICUBIC_A`` (Keys 1981, eq. 15)."""
    x, a = np.abs(x), BICUBIC_A
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def bicubic_phase_kernel(scale: int, channels: int) -> np.ndarray:
    """The 5×5 conv kernel whose pixel shuffle (`depth_to_space_sliced`) is bicubic enlargement.

    Output pixel ``i · scale + p`` (half-pixel centres) lies at input coordinate ``i + d_p`` with
    ``d_p = (p + 0.5) / scale - 0.5``; it weighs input pixel ``i + k`` by ``W(k - d_p)``. Phase
    ``(p, q)`` of channel ``c`` is output channel ``(p · scale + q) · C + c``.

    Returns:
      float32 ``[5, 5, C, C · scale²]`` (HWIO).
    """
    offsets = np.arange(SKIP_TAPS) - SKIP_TAPS // 2
    phases = (np.arange(scale) + 0.5) / scale - 0.5
    taps = _cubic(offsets[None, :] - phases[:, None])  # [scale, 5]
    kernel = np.zeros((SKIP_TAPS, SKIP_TAPS, channels, scale, scale, channels), np.float32)
    for c in range(channels):
        kernel[:, :, c, :, :, c] = np.einsum("pu,qv->uvpq", taps, taps)
    return kernel.reshape(SKIP_TAPS, SKIP_TAPS, channels, scale * scale * channels)


def upsample_nearest(x: jax.Array, scale: int) -> jax.Array:
    """Nearest-neighbour enlargement of NHWC ``x`` by ``scale`` in ``SCALES``, as the pixel shuffle
    of ``scale²`` copies of ``x`` (see the module docstring).

    Returns:
      ``[B, H·scale, W·scale, C]``, ``out[:, i, j] = x[:, i // scale, j // scale]``.

    Raises:
      ValueError: if ``scale`` is not in ``SCALES``.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale}")
    return depth_to_space_sliced(_repeat_channels(x, scale), scale)


def _repeat_channels(x: jax.Array, scale: int) -> jax.Array:
    """``[B, H, W, C] → [B, H, W, C·scale²]``: ``scale²`` copies of ``x`` side by side, the
    pixel-shuffle input of a nearest-neighbour enlargement."""
    return jnp.concatenate([x] * scale * scale, axis=-1)


def depth_to_space_sliced(x: jax.Array, block: int) -> jax.Array:
    """Pixel shuffle ``[B, H, W, C·block²] → [B, H·block, W·block, C]`` without a 6-D transpose.

    Channel ``(a · block + b) · C + c`` of input pixel ``(i, j)`` goes to output pixel
    ``(i · block + a, j · block + b)``, channel ``c`` (the order of
    ``lwgen.models.layers.depth_to_space`` and TensorFlow's ``depth_to_space``). Each row phase
    ``a`` is one channel slice, reshaped so that its column phases interleave with the columns;
    the row phases are concatenated on a new axis and interleaved with the rows by a reshape.

    Args:
      x: ``[B, H, W, C·block²]``.
      block: the block size, ≥ 1.

    Returns:
      ``[B, H·block, W·block, C]`` of the same dtype.

    Raises:
      ValueError: if the channels are not a multiple of ``block²``.
    """
    b, h, w, c = x.shape
    if c % (block * block):
        raise ValueError(f"{c} channels are not a multiple of block² = {block * block}")
    row = c // block
    phases = [x[..., a * row : (a + 1) * row].reshape(b, h, 1, w * row) for a in range(block)]
    return jnp.concatenate(phases, axis=2).reshape(b, h * block, w * block, c // (block * block))


class SuperResolution(nn.Module):
    """FSRCNN-like up-scaler (see the module docstring) with a bicubic-initialised global skip.

    Attributes:
      scale: enlargement factor, one of ``SCALES``.
      channels: image channels ``C`` (1 gray, 3 RGB), input and output.
      features: ``d``, channels of feature extraction and expansion (FSRCNN §3.1).
      shrink: ``s``, channels of the mapping layers.
      num_maps: ``m``, number of 3×3 mapping convolutions.
      upsample: one of ``UPSAMPLE_MODES``.
    """

    scale: int = 2
    channels: int = 3
    features: int = 32
    shrink: int = 16
    num_maps: int = 3
    upsample: str = "depth_to_space"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Enlarges float32 ``[B, h, w, C]`` images in ``[-1, 1]`` to ``[B, h·scale, w·scale, C]``
        in ``[-1, 1]`` (fully convolutional: any ``h``, ``w``).

        Raises:
          ValueError: on a bad ``scale``, ``upsample`` or channel count.
        """
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample {self.upsample!r} is not one of {UPSAMPLE_MODES}")
        if x.shape[-1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got input {x.shape}")
        h = nn.relu(nn.Conv(self.features, (5, 5), name="extract")(x))
        h = nn.relu(nn.Conv(self.shrink, (1, 1), name="shrink")(h))
        for i in range(self.num_maps):
            h = nn.relu(nn.Conv(self.shrink, (3, 3), name=f"map_{i}")(h))
        h = nn.relu(nn.Conv(self.features, (1, 1), name="expand")(h))
        conv = functools.partial(nn.Conv, kernel_size=(3, 3), kernel_init=zeros, name="upsample")
        phases = self.channels * self.scale**2
        bicubic = bicubic_phase_kernel(self.scale, self.channels)
        skip = nn.Conv(phases, (SKIP_TAPS, SKIP_TAPS), kernel_init=lambda *_: bicubic, name="skip")
        if self.upsample == "depth_to_space":
            out = depth_to_space_sliced(skip(x) + conv(phases)(h), self.scale)
        else:
            r = conv(self.channels)(upsample_nearest(h, self.scale))
            out = depth_to_space_sliced(skip(x), self.scale) + r
        return jnp.clip(out, -1.0, 1.0)
