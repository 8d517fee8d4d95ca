"""CycleGAN networks: ResNet and U-Net generators, the PatchGAN discriminator, feature mappings.

* `ResnetGenerator`: Johnson et al. 2016 as used by Zhu et al. 2017 ("Unpaired Image-to-Image
  Translation using Cycle-Consistent Adversarial Networks", App. 7.2): ``c7s1-k, d2k, d4k,
  R4k × num_blocks, u2k, uk, c7s1-C`` with tanh output. Zero padding instead of reflection padding
  (MIRROR_PAD does not map to the Edge TPU); upsampling by nearest resize + 3×3 conv
  (``lwgen.models.layers.Upsample2x``, Odena et al. 2016), so export has no TRANSPOSE_CONV.
  ``separable`` replaces each 3×3 conv of the residual blocks by a depthwise 3×3 and a pointwise
  1×1 conv (Howard et al. 2017, MobileNets §3.1), as the GAN Compression students do (Li et al.
  2020, §3.4); ``separable_sampling`` does the same to the two downsampling and two upsampling
  convs (the upsampling one pointwise-first, at the input resolution).
* `UnetGenerator`: Isola et al. 2017 ("Image-to-Image Translation with Conditional Adversarial
  Networks", §3.2.1 and App. 6.1.1): ``num_downs`` stride-2 4×4 conv encoder stages (LeakyReLU
  0.2), a mirrored decoder (ReLU) with skip connections concatenated at each level.
* `PatchDiscriminator`: the PatchGAN of Isola et al. 2017 (§3.2.2, App. 6.1.2): ``C64-C128-C256-
  C512`` 4×4 convs with LeakyReLU 0.2, a 1-channel 4×4 conv of patch logits; ``num_layers = 3``
  gives the 70×70 receptive field of the paper at 256², fewer layers scale it for small images
  (`patchgan_receptive_field`).
* `FeatureMappings`: learned 1×1 convs from a student's features to the teacher's channel counts
  (GAN Compression, Li et al. 2020, §3.1 eq. 3).

Every network takes and returns NHWC float32 images in ``[-1, 1]``. ``norm`` is a
``lwgen.models.layers.NORMS`` choice: instance norm as in the papers, or batch norm, which folds
into the convolutions at export.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from lwgen.models.layers import Upsample2x, normalization, upsample_nearest_2x

LEAK = 0.2


def scaled(width: int, width_mult: float) -> int:
    """``max(1, round(width · width_mult))``: a width after the width multiplier."""
    return max(1, int(round(width * width_mult)))


def patchgan_receptive_field(num_layers: int) -> int:
    """Receptive field in pixels of one `PatchDiscriminator` logit.

    ``num_layers`` stride-2 4×4 convs, then two stride-1 4×4 convs: going backwards from one
    output pixel (the stride-1 layers first), ``r ← (r - 1) · stride + 4``. 3 layers give 70
    (Isola et al. 2017, §3.2.2), 2 give 34, 1 gives 16.
    """
    field = 1
    for stride in [1, 1] + [2] * num_layers:
        field = (field - 1) * stride + 4
    return field


class ConvNormAct(nn.Module):
    """Conv, normalization, activation: the ``c7s1-k`` / ``dk`` / ``Ck`` units of the papers.

    Attributes:
      features: output channels.
      kernel: square kernel size.
      stride: stride.
      norm: a ``NORMS`` choice.
      activation: ``"relu"``, ``"leaky_relu"`` (slope 0.2) or ``"none"``.
      groups: ``feature_group_count`` (the input channels for a depthwise conv).
      axis_name: mapped axis for batch norm in a data-parallel step.
    """

    features: int
    kernel: int = 3
    stride: int = 1
    norm: str = "instance"
    activation: str = "relu"
    groups: int = 1
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """float32 ``[B, H, W, C]`` → ``[B, H / stride, W / stride, features]``."""
        # odd kernels: "SAME" (one CONV_2D at export); 4×4 kernels: one pixel each side (pix2pix)
        pad = "SAME" if self.kernel % 2 else (self.kernel - 1) // 2
        x = nn.Conv(
            self.features,
            (self.kernel, self.kernel),
            strides=(self.stride, self.stride),
            padding=pad,
            feature_group_count=self.groups,
            use_bias=self.norm == "none",  # a normalization removes (and re-learns) the bias
        )(x)
        x = normalization(self.norm, train, self.axis_name)(x)
        if self.activation == "relu":
            return nn.relu(x)
        if self.activation == "leaky_relu":
            return nn.leaky_relu(x, LEAK)
        return x


def separable_conv(x, features: int, stride: int, activation: str, train: bool, **common):
    """A depthwise 3×3 conv (stride ``stride``) then a pointwise 1×1 conv to ``features``, each
    normalized (Howard et al. 2017, MobileNets §3.1): ``9·C + C·features`` MACs per output pixel
    instead of ``9·C·features``. ``common``: ``norm`` and ``axis_name``."""
    x = ConvNormAct(x.shape[-1], 3, stride, groups=x.shape[-1], activation="none", **common)(
        x, train
    )
    return ConvNormAct(features, 1, activation=activation, **common)(x, train)


class ResidualBlock(nn.Module):
    """``x + norm(conv(relu(norm(conv(x)))))`` with 3×3 convs (He et al. 2016; Johnson et al.
    2016 §3), each conv a `separable_conv` when ``separable``."""

    features: int
    norm: str = "instance"
    separable: bool = False
    axis_name: str | None = None

    def _conv(self, x, activation: str, train: bool) -> jax.Array:
        common = dict(norm=self.norm, axis_name=self.axis_name)
        if self.separable:
            return separable_conv(x, self.features, 1, activation, train, **common)
        return ConvNormAct(self.features, 3, activation=activation, **common)(x, train)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """float32 ``[B, H, W, features]`` → the same shape."""
        y = self._conv(x, "relu", train)
        return x + self._conv(y, "none", train)


class UpNormRelu(nn.Module):
    """2× nearest resize + 3×3 conv (`Upsample2x`), normalization, ReLU: the ``uk`` unit.

    With ``separable``, the 3×3 conv is depthwise-separable with the pointwise 1×1 conv first,
    at the input resolution (a 1×1 conv commutes with nearest resizing, so this is the same
    function as pointwise after the resize at a quarter of its MACs), then the resize and a
    depthwise 3×3 conv: ``C·features / 4 + 9·features`` MACs per output pixel instead of
    ``9·C·features``.
    """

    features: int
    norm: str = "instance"
    separable: bool = False
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """float32 ``[B, H, W, C]`` → ``[B, 2H, 2W, features]``."""
        use_bias = self.norm == "none"
        if self.separable:
            x = upsample_nearest_2x(nn.Conv(self.features, (1, 1), use_bias=False)(x))
            x = nn.Conv(
                self.features, (3, 3), padding="SAME", feature_group_count=self.features,
                use_bias=use_bias,
            )(x)  # fmt: skip
        else:
            x = Upsample2x(self.features, "resize_conv", use_bias=use_bias)(x, train)
        return nn.relu(normalization(self.norm, train, self.axis_name)(x))


class ResnetGenerator(nn.Module):
    """The CycleGAN ResNet generator (see the module docstring).

    Attributes:
      channels: image channels of input and output.
      base_width: ``k`` of ``c7s1-k`` before ``width_mult`` (64 in the paper).
      width_mult: multiplies every width.
      num_blocks: residual blocks at 1/4 resolution (9 at 256² in the paper, 6 at 128²).
      norm: a ``NORMS`` choice.
      separable: depthwise-separable residual blocks.
      separable_sampling: depthwise-separable downsampling (`separable_conv`, stride 2) and
        upsampling (`UpNormRelu`) convs too: at small images and widths these full-resolution
        stages, not the residual blocks, hold most of the MACs.
      axis_name: mapped axis for batch norm in a data-parallel step.
    """

    channels: int = 3
    base_width: int = 64
    width_mult: float = 1.0
    num_blocks: int = 9
    norm: str = "instance"
    separable: bool = False
    separable_sampling: bool = False
    axis_name: str | None = None

    def _down(self, x, features: int, train: bool) -> jax.Array:
        common = dict(norm=self.norm, axis_name=self.axis_name)
        if self.separable_sampling:
            return separable_conv(x, features, 2, "relu", train, **common)
        return ConvNormAct(features, 3, 2, **common)(x, train)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, return_features: bool = False):
        """Translates float32 ``[B, H, W, channels]`` images in ``[-1, 1]`` (H, W divisible by 4).

        Returns:
          float32 ``[B, H, W, channels]`` in ``[-1, 1]``; with ``return_features`` also the
          distillation features: the activations after the downsampling, after the residual
          blocks and after the first upsampling (a list of three ``[B, h, w, c]`` arrays).
        """
        k = scaled(self.base_width, self.width_mult)
        common = dict(norm=self.norm, axis_name=self.axis_name)
        h = ConvNormAct(k, 7, **common)(x, train)
        h = self._down(self._down(h, 2 * k, train), 4 * k, train)
        features = [h]
        for _ in range(self.num_blocks):
            h = ResidualBlock(4 * k, separable=self.separable, **common)(h, train)
        features.append(h)
        h = UpNormRelu(2 * k, separable=self.separable_sampling, **common)(h, train)
        features.append(h)
        h = UpNormRelu(k, separable=self.separable_sampling, **common)(h, train)
        out = jnp.tanh(nn.Conv(self.channels, (7, 7), padding=3)(h))
        return (out, features) if return_features else out


class UnetGenerator(nn.Module):
    """The pix2pix U-Net generator (see the module docstring).

    Attributes:
      channels: image channels of input and output.
      base_width: channels of the first encoder stage before ``width_mult`` (64 in the paper).
      width_mult: multiplies every width.
      num_downs: stride-2 encoder stages (8 at 256²: a 1×1 bottleneck); the image side must be
        divisible by ``2 ** num_downs``. Widths double per stage up to ``8 · base_width``.
      norm: a ``NORMS`` choice (not applied at the outermost stages nor the bottleneck, whose
        1×1 maps have no spatial statistics).
      axis_name: mapped axis for batch norm in a data-parallel step.
    """

    channels: int = 3
    base_width: int = 64
    width_mult: float = 1.0
    num_downs: int = 8
    norm: str = "instance"
    axis_name: str | None = None

    def widths(self) -> list[int]:
        """Encoder widths, outermost first."""
        k = scaled(self.base_width, self.width_mult)
        return [k * min(2**i, 8) for i in range(self.num_downs)]

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, return_features: bool = False):
        """Translates float32 ``[B, H, W, channels]`` images in ``[-1, 1]``.

        Returns:
          float32 ``[B, H, W, channels]`` in ``[-1, 1]``; with ``return_features`` also the
          decoder activations of the two innermost upsampling stages (distillation features).
        """
        widths, skips, h = self.widths(), [], x
        for i, width in enumerate(widths):
            inner = i in (0, len(widths) - 1)
            norm = "none" if inner else self.norm
            h = ConvNormAct(width, 4, 2, norm, "leaky_relu", axis_name=self.axis_name)(h, train)
            skips.append(h)
        features = []
        for i, width in reversed(list(enumerate(widths[:-1]))):
            if i < len(widths) - 2:
                h = jnp.concatenate([h, skips[i + 1]], axis=-1)
            h = UpNormRelu(width, norm=self.norm, axis_name=self.axis_name)(h, train)
            features.append(h)
        h = jnp.concatenate([h, skips[0]], axis=-1)
        out = jnp.tanh(Upsample2x(self.channels, "resize_conv")(h, train))
        return (out, features[:2]) if return_features else out


class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator (see the module docstring).

    Attributes:
      base_width: channels of the first layer before ``width_mult`` (64 in the paper).
      width_mult: multiplies every width.
      num_layers: stride-2 layers (3: 70×70 receptive field; see `patchgan_receptive_field`).
      norm: a ``NORMS`` choice (not on the first layer).
      axis_name: mapped axis for batch norm in a data-parallel step.
    """

    base_width: int = 64
    width_mult: float = 1.0
    num_layers: int = 3
    norm: str = "instance"
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """float32 ``[B, H, W, C]`` images in ``[-1, 1]`` → patch logits float32
        ``[B, H / 2**num_layers - 2, W / 2**num_layers - 2, 1]`` (least-squares targets)."""
        k = scaled(self.base_width, self.width_mult)
        h = x
        for i in range(self.num_layers + 1):
            stride = 2 if i < self.num_layers else 1
            norm = "none" if i == 0 else self.norm
            width = k * min(2**i, 8)
            h = ConvNormAct(width, 4, stride, norm, "leaky_relu", axis_name=self.axis_name)(
                h, train
            )
        return nn.Conv(1, (4, 4), padding=1)(h)


class FeatureMappings(nn.Module):
    """One learned 1×1 conv per distillation feature, from a student's channels to the
    teacher's (GAN Compression, Li et al. 2020, §3.1 eq. 3: ``f_t``)."""

    features: Sequence[int]

    @nn.compact
    def __call__(self, student_features: Sequence[jax.Array]) -> list[jax.Array]:
        """Maps each float32 ``[B, h, w, c_t']`` student feature to ``[B, h, w, c_t]``."""
        return [
            nn.Conv(width, (1, 1), name=f"map_{i}")(f)
            for i, (width, f) in enumerate(zip(self.features, student_features, strict=True))
        ]
