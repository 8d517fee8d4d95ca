"""The feed-forward style transfer network of Johnson, Alahi & Fei-Fei 2016 (§3.1 and the
supplementary material's architecture table), with conditional instance norm (Dumoulin et al.
2017, §2.2) so that one network holds many styles.

Layout: a 9×9 conv, two stride-2 3×3 convs (downsampling ×4), ``num_res_blocks`` residual
blocks, two ×2 upsamplings and a 9×9 conv to RGB with ``tanh`` (or a clip, `output_clip`).
Every conv but the last is followed by `ConditionalInstanceNorm` and ReLU (or ReLU6). Upsampling
is a nearest resize then a 3×3 conv (``lwgen.models.layers.Upsample2x`` in ``"resize_conv"``
mode: no checkerboard artefacts, Odena et al. 2016, and RESIZE_NEAREST_NEIGHBOR + CONV_2D
instead of TRANSPOSE_CONV in TFLite). The style enters as a float one-hot vector; with
``num_styles=1`` it is the single-style network. The network is fully convolutional: any
``H, W`` divisible by 4. Convolutions followed by instance norm have no bias (the norm removes
it; its gradient would be rounding noise that Adam amplifies). `equalize_norm_inputs` rescales
those convs for INT8 export without changing the float function; `bound_norm_input`
(``norm_input_clip``) clips them instead: no droplets, and a tight INT8 range by design.
"""

from __future__ import annotations

from collections.abc import Callable

import flax
import jax
import jax.numpy as jnp
from flax import linen as nn

from lwgen.models.layers import ConditionalInstanceNorm, Upsample2x

ACTIVATIONS = {"relu": nn.relu, "relu6": nn.relu6}
OUTPUTS = ("tanh", "clip")


def output_clip(x: jax.Array, train: bool) -> jax.Array:
    """``clip(x, -1, 1)``, with a straight-through gradient when ``train`` (Bengio, Léonard &
    Courville 2013, "Estimating or Propagating Gradients Through Stochastic Neurons", §3).

    A saturated ``tanh`` output passes almost no gradient (``1 - tanh² ≈ 3e-6`` at 7): a region
    the network once drove to white stays white however the losses pull it, the white blobs of
    an under-trained stylizer. The straight-through clip keeps the image in ``[-1, 1]`` (same
    forward in training and inference) and lets the losses pull such a region back. TFLite fuses
    the inference clip into the last conv as its RELU_N1_TO_1 activation.

    Args:
      x: float32 ``[B, H, W, 3]`` last-conv output.
      train: straight-through gradient (training) or a plain clip (inference, export).

    Returns:
      float32 ``[B, H, W, 3]`` in ``[-1, 1]``.
    """
    clipped = jnp.clip(x, -1.0, 1.0)
    return x + jax.lax.stop_gradient(clipped - x) if train else clipped


def kernel_norm(kernel: jax.Array) -> jax.Array:
    """float32 ``[C_out]``: the L2 norm of each output channel's kernel (all axes but the last)."""
    return jnp.sqrt(jnp.sum(jnp.square(kernel), axis=tuple(range(kernel.ndim - 1))))


def bound_norm_input(h: jax.Array, kernel: jax.Array, clip: float) -> jax.Array:
    """``clip(h / (clip · ‖w_c‖), -1, 1)`` per output channel ``c`` for ``clip > 0`` (``h``
    unchanged for 0): the bounded output of a conv that feeds an instance norm.

    Instance norm divides out any scale of its input, so a spike in a conv output costs the
    float network nothing, and networks trained with it learn such spikes: the droplet artefact
    of Karras et al. 2020, "StyleGAN2", §2.1, here white or dark blobs over smooth regions. In
    INT8, one per-tensor range must also cover the spikes, which leaves few rounding steps for the
    rest of the tensor; the norm then scales that rounding noise back up to unit variance.

    Dividing by the kernel's norm measures ``h`` as the output of a unit-norm kernel (weight
    normalisation, Salimans & Kingma 2016, eq. 2, which the following norm makes free): about the
    RMS of the conv's input for a typical pixel, and up to ``√(k² C_in)`` times more where the
    input lines up with the kernel. The clip cuts such spikes at ``clip`` times the input scale,
    and the network cannot slip past it by growing its kernel (a clip in raw units of ``h`` turns
    into a sign function as the kernel grows). It also bounds the INT8 range (PACT, Choi et al.
    2018, §2). TFLite folds the constant ``1 / (clip ‖w_c‖)`` into the conv's kernel and fuses the
    clip as its RELU_N1_TO_1 activation: no extra op.

    Args:
      h: float32 ``[B, H, W, C]`` conv output.
      kernel: float32 ``[..., C]`` that conv's kernel.
      clip: bound in units of a unit-norm kernel's output (0: off).

    Returns:
      float32 ``[B, H, W, C]`` in ``[-1, 1]`` (or ``h``).
    """
    if clip <= 0:
        return h
    return jnp.clip(h / (clip * kernel_norm(kernel) + 1e-12), -1.0, 1.0)


def _bounded_conv(layer: nn.Module, x: jax.Array, clip: float, **kwargs) -> jax.Array:
    """`bound_norm_input` of ``layer(x)``: a bias-free ``nn.Conv``, or an `Upsample2x` (its
    ``Conv_0``)."""
    h = layer(x, **kwargs)
    if clip <= 0:
        return h
    params = layer.variables["params"]
    return bound_norm_input(
        h, params["kernel"] if "kernel" in params else params["Conv_0"]["kernel"], clip
    )


class ResidualBlock(nn.Module):
    """Two 3×3 convs with conditional instance norm and an identity shortcut (He et al. 2016;
    Johnson et al. 2016 supp. Fig. 1, without the ReLU after the sum)."""

    features: int
    num_styles: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    norm_input_clip: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, style: jax.Array) -> jax.Array:
        """``[B, H, W, features]`` → same shape."""

        def conv_norm(h):
            conv = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False)
            h = _bounded_conv(conv, h, self.norm_input_clip)
            return ConditionalInstanceNorm(self.num_styles)(h, style)

        return x + conv_norm(self.activation(conv_norm(x)))


class TransformerNet(nn.Module):
    """Image transformation network ``f_W`` of Johnson et al. 2016 (1.68 M parameters at the
    default widths with one style), multi-style through conditional instance norm.

    Attributes:
      num_styles: styles held (length of the one-hot ``style`` input).
      widths: channels of the 9×9 conv and of the two downsampling convs (the residual blocks
        use the last); upsampling mirrors them.
      num_res_blocks: residual blocks at 1/4 resolution.
      upsample: ``lwgen.models.layers.UPSAMPLE_MODES`` entry (``"resize_conv"`` by default).
      activation: a key of `ACTIVATIONS` after every norm: ``"relu"`` (Johnson et al.) or
        ``"relu6"`` (Howard et al. 2017, "MobileNets", §3.1, "Body Architecture": bounded,
        so INT8 ranges stay tight and one bright spot cannot dominate the next norm's statistics,
        the droplet artefact of Karras et al. 2020, "StyleGAN2", §2).
      norm_input_clip: `bound_norm_input` on every conv that feeds a norm (0: off; needs
        ``upsample="resize_conv"``). Its norm inputs are already in kernel norms, so export
        does not equalise it.
      output: ``"tanh"`` (Johnson et al.) or ``"clip"`` (`output_clip`) on the last conv.
    """

    num_styles: int = 1
    widths: tuple[int, int, int] = (32, 64, 128)
    num_res_blocks: int = 5
    upsample: str = "resize_conv"
    activation: str = "relu"
    norm_input_clip: float = 0.0
    output: str = "tanh"

    @nn.compact
    def __call__(self, image: jax.Array, style: jax.Array, train: bool = False) -> jax.Array:
        """Stylises images.

        Args:
          image: float32 ``[B, H, W, 3]`` in ``[-1, 1]``, ``H`` and ``W`` divisible by 4.
          style: float32 ``[B, num_styles]`` one-hot style (or a convex mix of styles).
          train: selects the sub-pixel training form of the resize-convs (same values) and the
            straight-through gradient of ``output="clip"``.

        Returns:
          float32 ``[B, H, W, 3]`` in ``[-1, 1]``.
        """
        w1, w2, w3 = self.widths
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                             f"{self.activation!r}")  # fmt: skip
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.norm_input_clip > 0 and self.upsample != "resize_conv":
            raise ValueError(
                f"norm_input_clip needs upsample='resize_conv' (one kernel per output channel), "
                f"got {self.upsample!r}"
            )
        act = ACTIVATIONS[self.activation]

        def norm(x):
            return act(ConditionalInstanceNorm(self.num_styles)(x, style))

        def conv_norm(x, features, kernel, strides=1):
            conv = nn.Conv(features, (kernel, kernel), strides, padding="SAME", use_bias=False)
            return norm(_bounded_conv(conv, x, self.norm_input_clip))

        x = conv_norm(image, w1, 9)
        x = conv_norm(x, w2, 3, 2)
        x = conv_norm(x, w3, 3, 2)
        for _ in range(self.num_res_blocks):
            x = ResidualBlock(w3, self.num_styles, act, self.norm_input_clip)(x, style)
        for features in (w2, w1):
            up = Upsample2x(features, self.upsample, use_bias=False)
            x = norm(_bounded_conv(up, x, self.norm_input_clip, train=train))
        x = nn.Conv(3, (9, 9), padding="SAME")(x)
        return nn.tanh(x) if self.output == "tanh" else output_clip(x, train)


def _is_norm_input_conv(path: tuple[str, ...], leaf: dict, upsample: str) -> bool:
    """Whether the conv at ``path`` (its param dict ``leaf``) feeds a `ConditionalInstanceNorm`
    channel by channel: every bias-free conv of `TransformerNet` does, except a ``"subpixel"``
    upsampling conv (depth-to-space mixes its channels)."""
    if not isinstance(leaf, dict) or set(leaf) != {"kernel"}:
        return False
    return not (upsample == "subpixel" and any(p.startswith("Upsample2x") for p in path))


def equalize_norm_inputs(
    module: TransformerNet, variables: dict, image: jax.Array, style: jax.Array
) -> dict:
    """Rescales every conv that feeds an instance norm so that each output channel has unit RMS
    spatial standard deviation on ``image`` (export-time conditioning for INT8).

    Instance norm is invariant to a positive per-channel scale of its input, so the float
    function is unchanged (up to the norm's ``eps``); like cross-layer equalisation (Nagel et al.
    2019, "Data-Free Quantization Through Weight Equalization and Bias Correction", §4.1) it
    changes only what INT8 sees. TFLite quantizes each norm input (and its deviations, squares
    and variances) per tensor, with a range set by the largest channel's outliers; a channel
    with a 9× smaller spread then holds about one rounding step of signal, and the norm scales
    that rounding noise up to unit variance. After equalisation every channel spans the range.

    Args:
      module: the network.
      variables: its ``{"params": ...}``.
      image: float32 ``[N, H, W, 3]`` in ``[-1, 1]`` (calibration photos).
      style: float32 ``[N, num_styles]`` one-hot styles of ``image``.

    Returns:
      Variables of the same structure with the rescaled kernels.

    Raises:
      ValueError: if ``module.norm_input_clip`` is on: `bound_norm_input` divides each of
        those convs by its kernel norm, so rescaling them changes neither the float function nor
        what INT8 sees (a caller expecting an effect has the wrong network).
    """
    if module.norm_input_clip > 0:
        raise ValueError(
            f"equalize_norm_inputs has no effect with norm_input_clip={module.norm_input_clip} "
            "(its norm inputs are already in kernel norms): export a clipped network as trained"
        )
    _, state = module.apply(
        variables, image, style, capture_intermediates=lambda m, _: isinstance(m, nn.Conv)
    )
    outputs = flax.traverse_util.flatten_dict(state["intermediates"])
    flat = flax.traverse_util.flatten_dict(variables["params"], is_leaf=_has_kernel)
    for path, leaf in flat.items():
        if not _is_norm_input_conv(path, leaf, module.upsample):
            continue
        x = outputs[(*path, "__call__")][0]
        std = jnp.sqrt(jnp.mean(jnp.var(x, axis=(1, 2)), axis=0))
        scale = jnp.where(std > 1e-6, 1.0 / jnp.maximum(std, 1e-6), 1.0)
        flat[path] = {"kernel": leaf["kernel"] * scale}
    return {**variables, "params": flax.traverse_util.unflatten_dict(flat)}


def _has_kernel(_, value) -> bool:
    return isinstance(value, dict) and "kernel" in value
