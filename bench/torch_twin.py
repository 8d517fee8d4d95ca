"""A PyTorch eager twin of the demo GAN and its train step, the baseline of train_throughput.py.

Layer for layer the networks of ``lwgen/models/dcgan.py``, in PyTorch's NCHW layout:

* `Generator`: the class-conditional DCGAN generator (Radford et al. 2016, §3; the one-hot class
  concatenated to ``z``, Mirza & Osindero 2014): a bias-free Linear to ``[widths[0], 4, 4]``,
  BatchNorm, ReLU; per further width a 2× upsampling block (``transpose``, ``resize_conv`` after
  Odena et al. 2016, or ``subpixel`` after Shi et al. 2016) without bias, BatchNorm, ReLU; a last
  upsampling block with bias to the image channels; tanh.
* `Discriminator`: the projection discriminator (Miyato & Koyama 2018, eq. 3) with spectral
  normalization of every weight (Miyato et al. 2018): 4×4 stride-2 convs with LeakyReLU(0.2),
  global sum pooling to ``phi``, ``D(x, y) = w·phi + b + <V y, phi>``.

`TwinTrainer.step` does what ``lwgen.families.conditional_gan.adversarial_step`` does: one
generator forward; one D update with the hinge loss (Lim & Ye 2017, eq. 7) on real and detached
fake images (one D call on both, so one power iteration per step); one G update with
``-E[D(G(z))]`` through the updated D (spectral norm in eval mode, D's weights not
differentiated); Adam for both (Kingma & Ba 2015); an EMA of G's parameters with the decay
warm-up ``min(decay, (1 + step) / (10 + step))``.

Only PyTorch is imported here, so the benchmark runs without this module when torch is absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

UPSAMPLE_MODES = ("transpose", "resize_conv", "subpixel")


def upsample_2x(in_channels: int, out_channels: int, mode: str, bias: bool) -> nn.Module:
    """Maps float32 ``[B, in_channels, H, W]`` to ``[B, out_channels, 2H, 2W]`` (see ``mode``).

    The twin of ``lwgen.models.layers.Upsample2x``: the same kernel sizes and parameter counts.

    Raises:
      ValueError: for a mode not in ``UPSAMPLE_MODES``.
    """
    if mode == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
    if mode == "resize_conv":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
        )
    if mode == "subpixel":
        return nn.Sequential(
            nn.Conv2d(in_channels, 4 * out_channels, 3, padding=1, bias=bias), nn.PixelShuffle(2)
        )
    raise ValueError(f"upsample mode {mode!r} is not one of {UPSAMPLE_MODES}")


class Generator(nn.Module):
    """``G(z, y)``: float32 ``z [B, latent_dim]`` and one-hot ``y [B, num_classes]`` to images
    ``[B, channels, 4·2^n, 4·2^n]`` in ``[-1, 1]`` with ``n = len(widths)``.

    Args:
      num_classes: size of the one-hot condition.
      latent_dim: size of ``z``.
      widths: block widths, widest first (``lwgen`` ``Generator.block_widths()``).
      channels: image channels.
      upsample: one of ``UPSAMPLE_MODES``.
    """

    def __init__(
        self,
        num_classes: int,
        latent_dim: int,
        widths: Sequence[int],
        channels: int,
        upsample: str,
    ):
        super().__init__()
        self.num_classes, self.latent_dim, self.width = num_classes, latent_dim, widths[0]
        self.project = nn.Linear(latent_dim + num_classes, 16 * widths[0], bias=False)
        # PyTorch's momentum weighs the new batch: 0.1 is Flax's momentum=0.9.
        self.project_bn = nn.BatchNorm2d(widths[0], momentum=0.1)
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(
                    upsample_2x(a, b, upsample, bias=False),
                    nn.BatchNorm2d(b, momentum=0.1),
                    nn.ReLU(),
                )
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        self.to_image = upsample_2x(widths[-1], channels, upsample, bias=True)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, y], dim=1)).view(-1, self.width, 4, 4)
        h = self.blocks(F.relu(self.project_bn(h)))
        return torch.tanh(self.to_image(h))


class Discriminator(nn.Module):
    """``D(x, y)``: float32 images ``[B, channels, H, W]`` and one-hot ``y [B, num_classes]`` to
    logits ``[B]``.

    Args:
      num_classes: size of the one-hot condition.
      widths: conv block widths (``lwgen`` ``Discriminator.block_widths()``).
      channels: image channels.
      use_spectral_norm: wrap every layer in spectral normalization (one power iteration per
        training-mode call, as Flax's ``nn.SpectralNorm``).
    """

    def __init__(
        self, num_classes: int, widths: Sequence[int], channels: int, use_spectral_norm: bool
    ):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else (lambda layer: layer)
        ins = (channels, *widths[:-1])
        self.convs = nn.ModuleList(
            norm(nn.Conv2d(a, b, 4, stride=2, padding=1)) for a, b in zip(ins, widths, strict=True)
        )
        self.linear = norm(nn.Linear(widths[-1], 1))
        self.embed = norm(nn.Linear(num_classes, widths[-1], bias=False))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        phi = h.sum(dim=(2, 3))
        return self.linear(phi)[:, 0] + (self.embed(y) * phi).sum(dim=1)


def num_params(module: nn.Module) -> int:
    """Trainable parameters of ``module`` (a spectral-norm weight counted once)."""
    return sum(p.numel() for p in module.parameters())


class TwinTrainer:
    """The GAN train step of ``lwgen.families.conditional_gan`` in PyTorch eager mode.

    Args:
      generator, discriminator: the twins (trained in place).
      optim: ``config.optim`` of the lwgen config: ``g_lr``, ``d_lr``, ``b1``, ``b2`` (Adam) and
        ``ema_decay`` (asymptotic decay of the EMA of G's parameters).
    """

    def __init__(self, generator: Generator, discriminator: Discriminator, optim: Any):
        self.generator, self.discriminator = generator.train(), discriminator.train()
        betas = (optim.b1, optim.b2)
        self.g_opt = torch.optim.Adam(generator.parameters(), lr=optim.g_lr, betas=betas)
        self.d_opt = torch.optim.Adam(discriminator.parameters(), lr=optim.d_lr, betas=betas)
        self.ema = [p.detach().clone() for p in generator.parameters()]
        self.ema_decay = optim.ema_decay
        self.num_steps = 0

    def _set_d_trainable(self, trainable: bool) -> None:
        self.discriminator.train(trainable)
        for p in self.discriminator.parameters():
            p.requires_grad_(trainable)

    def step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D and one G update on float32 ``real [B, C, H, W]`` in ``[-1, 1]`` and int64
        ``labels [B]``; returns the two hinge losses (float32 scalars)."""
        y = F.one_hot(labels, self.generator.num_classes).float()
        z = torch.randn(real.shape[0], self.generator.latent_dim)
        fake = self.generator(z, y)

        logits = self.discriminator(torch.cat([real, fake.detach()]), torch.cat([y, y]))
        real_logits, fake_logits = logits.chunk(2)
        d_loss = F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()

        self._set_d_trainable(False)
        g_loss = -self.discriminator(fake, y).mean()
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        self._set_d_trainable(True)

        decay = min(self.ema_decay, (1 + self.num_steps) / (10 + self.num_steps))
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, list(self.generator.parameters()), 1.0 - decay)
        self.num_steps += 1
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}
