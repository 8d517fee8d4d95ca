"""Checks that an experiment config is complete and consistent before any work starts."""

from __future__ import annotations

import ml_collections

REQUIRED = {
    "": ("seed", "num_train_steps", "batch_size", "model", "data", "optim", "train", "export"),
    "model": ("family", "generator", "discriminator"),
    "data": ("source", "image_size", "channels"),
    "optim": ("g_lr", "d_lr", "b1", "b2", "ema_decay"),
    "train": ("log_every", "checkpoint_every", "keep_checkpoints", "sample_every", "loss"),
}


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ``ValueError`` naming the first missing or inconsistent config entry.

    Checks the required groups and keys, positive step counts and batch size, and that the
    generator's ``image_shape`` and both models' ``num_classes`` agree with the data.
    """
    for group, keys in REQUIRED.items():
        node = config[group] if group else config
        for key in keys:
            if key not in node:
                raise ValueError(f"config is missing {'.'.join(filter(None, [group, key]))}")
    for key in ("num_train_steps", "batch_size"):
        if int(config[key]) <= 0:
            raise ValueError(f"config.{key} must be positive, got {config[key]}")
    for key in ("log_every", "checkpoint_every", "sample_every", "keep_checkpoints"):
        if int(config.train[key]) <= 0:
            raise ValueError(f"config.train.{key} must be positive, got {config.train[key]}")
    gen, disc, data = config.model.generator, config.model.discriminator, config.data
    expected = (data.image_size, data.image_size, data.channels)
    if tuple(gen.image_shape) != expected:
        raise ValueError(
            f"model.generator.image_shape {tuple(gen.image_shape)} does not match the data "
            f"(image_size, image_size, channels) = {expected}"
        )
    if gen.num_classes != disc.num_classes:
        raise ValueError(
            f"model.generator.num_classes={gen.num_classes} but "
            f"model.discriminator.num_classes={disc.num_classes}"
        )


def gan_config(
    source: str, num_classes: int, image_shape: tuple[int, int, int], base_width: int = 32
) -> ml_collections.ConfigDict:
    """A complete class-conditional GAN config that experiment files in ``configs/`` adjust.

    Args:
      source: ``config.data.source`` (``"digits"``, ``"cifar10"``, ``"folder"``, ...).
      num_classes: number of classes of the data set.
      image_shape: ``(H, W, C)`` of the generated images.
      base_width: ``base_width`` of both generator and discriminator.

    Returns:
      A ``ConfigDict`` with the groups ``model``, ``data``, ``optim``, ``train``, ``export``.
    """
    none_str = ml_collections.FieldReference(None, field_type=str)
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_train_steps = 3000
    config.batch_size = 64
    config.model = dict(
        family="dcgan",
        generator=dict(
            num_classes=num_classes,
            image_shape=image_shape,
            latent_dim=64,
            base_width=base_width,
            width_mult=1.0,
            widths=ml_collections.FieldReference(None, field_type=tuple),
            upsample="resize_conv",
        ),
        discriminator=dict(
            num_classes=num_classes,
            base_width=base_width,
            width_mult=1.0,
            num_blocks=3,
            spectral_norm=True,
        ),
    )
    config.data = dict(
        source=source,
        image_size=image_shape[0],
        channels=image_shape[2],
        data_dir=none_str,
        path=ml_collections.FieldReference(None, field_type=str),
        heldout_fraction=0.2,
    )
    config.optim = dict(g_lr=2e-4, d_lr=2e-4, b1=0.0, b2=0.9, ema_decay=0.999)
    config.train = dict(
        loss="hinge",
        r1_weight=0.0,
        log_every=100,
        checkpoint_every=500,
        keep_checkpoints=3,
        sample_every=500,
    )
    config.export = dict(quant="int8", num_calibration=256, batch=1, min_psnr=20.0)
    return config
