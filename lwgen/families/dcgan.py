"""The ``dcgan`` family: a class-conditional DCGAN trained on real images.

Generator after Radford et al. 2016 (resize-conv upsampling, Odena et al. 2016), projection
discriminator (Miyato & Koyama 2018) with spectral norm (Miyato et al. 2018), hinge or
non-saturating loss, optional R1 penalty (Mescheder et al. 2018). See
``lwgen.families.conditional_gan`` for the step, sampler, evaluation and export.
"""

from __future__ import annotations

import ml_collections

from lwgen.families.conditional_gan import make_family
from lwgen.families.objectives import GANObjective
from lwgen.families.registry import register
from lwgen.losses.gan import gan_losses


def make_objective(config: ml_collections.ConfigDict) -> GANObjective:
    """``GANObjective(train.loss, train.r1_weight)``.

    Raises:
      ConfigError: on an unknown ``train.loss``.
    """
    gan_losses(config.train.loss)
    return GANObjective(config.train.loss, config.train.r1_weight)


FAMILY = register(make_family("dcgan", make_objective))
