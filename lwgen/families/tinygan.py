"""The ``tinygan`` family: a conditional DCGAN student distilled from a teacher's samples.

Black-box distillation after TinyGAN (Chang & Lu 2020, §3): batches come from a distillation set
of teacher inputs and outputs (``lwgen.data.distill_set``); the losses are in
``lwgen.losses.distillation`` and the objective in ``lwgen.families.objectives``. Everything else
is the conditional GAN of ``lwgen.families.conditional_gan``.
"""

from __future__ import annotations

import ml_collections

from lwgen.families.conditional_gan import make_family
from lwgen.families.objectives import DistillationObjective, distill_weights
from lwgen.families.registry import register


def make_objective(config: ml_collections.ConfigDict) -> DistillationObjective:
    """``DistillationObjective`` of the ``distill`` group (checked by `distill_weights`)."""
    return DistillationObjective(distill_weights(config), config.train.r1_weight)


FAMILY = register(make_family("tinygan", make_objective))
