"""What the class-conditional GAN families (``dcgan``, ``tinygan``) share.

A generator ``G(z, y)`` (``lwgen.models.dcgan.Generator``) and a projection discriminator
``D(x, y)`` trained by alternating one D update and one G update (Goodfellow et al. 2014, Alg. 1),
with an EMA of G that is sampled, evaluated and exported. The families differ only in their
`Objective` (``lwgen.families.objectives``) and config checks; `make_family` builds a registry
`Family` from those two.

Generator inputs come from ``lwgen.data.prior`` (``z ~ N(0, I)``, one-hot classes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lwgen.data.prior import class_names, cycled_labels, prior_inputs
from lwgen.errors import ConfigError
from lwgen.eval.conditional import evaluate_sampler, judged_data_config
from lwgen.export.spec import ExportSpec, TensorSpec
from lwgen.families.objectives import Objective
from lwgen.families.registry import Family, Restored, Trainer
from lwgen.losses.gan import r1_penalty
from lwgen.models.dcgan import Discriminator, Generator
from lwgen.train.checkpoint import restore_inference
from lwgen.train.state import NetworkState, TrainState, create_train_state
from lwgen.train.steps import AXIS, pmean_metrics, sample_keys, update_ema, update_network

G, D = "generator", "discriminator"
EXPORTED_COLLECTIONS = ("batch_stats",)
GRID_PER_CLASS = 10


def generator_module(config: ml_collections.ConfigDict) -> Generator:
    """``Generator(**config.model.generator)`` (``axis_name=None``)."""
    kwargs = config.model.generator.to_dict()
    kwargs["image_shape"] = tuple(kwargs["image_shape"])
    if kwargs.get("widths") is not None:
        kwargs["widths"] = tuple(kwargs["widths"])
    return Generator(**kwargs)


def validate_gan_config(config: ml_collections.ConfigDict) -> None:
    """Checks the ``model.generator``/``model.discriminator`` groups against the data.

    Raises:
      ConfigError: if a group is missing, the generator's ``image_shape`` differs from
        ``(data.image_size, data.image_size, data.channels)``, or the two ``num_classes`` differ.
    """
    for key in (G, D):
        if key not in config.model:
            raise ConfigError(f"model.family {config.model.family!r} needs config.model.{key}")
    for key in ("g_lr", "d_lr", "b1", "b2", "ema_decay"):
        if key not in config.optim:
            raise ConfigError(f"config is missing optim.{key}")
    gen, disc, data = config.model.generator, config.model.discriminator, config.data
    expected = (data.image_size, data.image_size, data.channels)
    if tuple(gen.image_shape) != expected:
        raise ConfigError(
            f"model.generator.image_shape {tuple(gen.image_shape)} does not match the data "
            f"(image_size, image_size, channels) = {expected}"
        )
    if gen.num_classes != disc.num_classes:
        raise ConfigError(
            f"model.generator.num_classes={gen.num_classes} but "
            f"model.discriminator.num_classes={disc.num_classes}"
        )


def _init(trainer: Trainer, seed: int) -> TrainState:
    """Step-0 state: G and D initialised from ``seed``, the EMA of G equal to G."""
    generator, discriminator = trainer.modules[G], trainer.modules[D]
    g_key, d_key, run_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    z = jnp.zeros((1, generator.latent_dim), jnp.float32)
    y = jnp.zeros((1, generator.num_classes), jnp.float32)
    x = jnp.zeros((1, *generator.image_shape), jnp.float32)
    variables = {G: generator.init(g_key, z, y), D: discriminator.init(d_key, x, y)}
    return create_train_state(run_key, variables, trainer.optimizers, ema_of=(G,))


def _discriminate(apply, network: NetworkState, params, x, y, train: bool, features=False):
    """``D(x, y)`` and D's collections (updated in training mode, unchanged otherwise)."""
    variables = network.variables(params)
    if train:
        return apply(
            variables, x, y, train=True, return_features=features, mutable=list(network.collections)
        )
    return apply(variables, x, y, train=False, return_features=features), network.collections


def _d_update(trainer, objective, d: NetworkState, real, fake, y):
    """One discriminator update on real and (stopped-gradient) fake images."""
    apply = trainer.applies[D]

    def loss_fn(params):
        x, yy = jnp.concatenate([real, fake]), jnp.concatenate([y, y])
        logits, collections = _discriminate(apply, d, params, x, yy, train=True)
        loss, aux = objective.d_loss(*jnp.split(logits, 2))
        if objective.r1_weight:
            scorer = functools.partial(_discriminate, apply, d.replace(collections=collections))
            r1, r1_aux = r1_penalty(lambda v: scorer(params, v, y, False)[0], real)
            loss, aux = loss + 0.5 * objective.r1_weight * r1, {**aux, **r1_aux}
        return loss, ({"d_loss": loss, **aux}, collections)

    (_, (metrics, collections)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
    return update_network(d, grads, trainer.optimizers[D], collections), metrics


def _g_loss_grad(trainer, objective, d: NetworkState, real, fake, y):
    """The generator loss through the updated D, and its gradient with respect to ``fake``."""

    def loss_fn(fake):
        x = jnp.concatenate([real, fake]) if objective.g_uses_real else fake
        yy = jnp.concatenate([y, y]) if objective.g_uses_real else y
        (logits, feats), _ = _discriminate(trainer.applies[D], d, d.params, x, yy, False, True)
        real_feats = None
        if objective.g_uses_real:
            logits = jnp.split(logits, 2)[1]
            real_feats, feats = zip(*(jnp.split(f, 2) for f in feats), strict=True)
        loss, aux = objective.g_loss(
            logits, list(feats), real_feats and list(real_feats), fake, real
        )
        return loss, {"g_loss": loss, **aux}

    (_, metrics), grad = jax.value_and_grad(loss_fn, has_aux=True)(fake)
    return grad, metrics


def adversarial_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    trainer: Trainer,
    objective: Objective,
    num_classes: int,
    latent_dim: int,
    ema_decay: float,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One discriminator update, then one generator update, on this device's shard.

    G runs forward once: its output trains D (gradient stopped) and, through the updated D,
    gives the generator loss, whose gradient is pulled back through the saved ``jax.vjp``.

    Args:
      state: replicated `TrainState` with networks ``generator`` and ``discriminator``.
      batch: this device's shard; ``label`` int32 ``[b]``, ``image`` float32 ``[b, H, W, C]`` in
        ``[-1, 1]`` (plus ``z`` for distillation objectives).
      trainer: the bound `Trainer` (its ``applies`` and ``optimizers``).
      objective: the family's `Objective`.
      num_classes, latent_dim: condition and latent sizes.
      ema_decay: decay of the generator EMA (warmed up, see ``lwgen.train.steps.ema_warmup``).

    Returns:
      The new replicated state and metrics averaged over devices (float32 scalars).
    """
    g, d = state.networks[G], state.networks[D]
    keys = sample_keys(state.rng, state.step, batch["label"].shape[0])
    z, labels, real = objective.inputs(batch, keys, latent_dim)
    y = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)

    def generate(params):
        return trainer.applies[G](
            g.variables(params), z, y, train=True, mutable=list(g.collections)
        )

    fake, pullback, g_collections = jax.vjp(generate, g.params, has_aux=True)
    d, d_metrics = _d_update(trainer, objective, d, real, jax.lax.stop_gradient(fake), y)
    fake_grad, g_metrics = _g_loss_grad(trainer, objective, d, real, fake, y)
    g = update_network(g, pullback(fake_grad)[0], trainer.optimizers[G], g_collections)
    new_state = state.replace(
        step=state.step + 1,
        networks={**state.networks, G: g, D: d},
        ema={G: update_ema(state.ema[G], g.params, ema_decay, state.step)},
    )
    return new_state, pmean_metrics({**d_metrics, **g_metrics})


def inference_variables(state: TrainState) -> dict[str, Any]:
    """``{"generator": {"params": EMA params, "batch_stats": ...}}``."""
    kept = {k: v for k, v in state.networks[G].collections.items() if k in EXPORTED_COLLECTIONS}
    return {G: {"params": state.ema[G], **kept}}


def make_trainer(config: ml_collections.ConfigDict, objective: Objective) -> Trainer:
    """The GAN `Trainer` of ``config``: G and D from ``config.model``, Adam for each (Kingma &
    Ba 2015, betas of Radford et al. 2016 §4 by default), `adversarial_step` with ``objective``."""
    generator = generator_module(config).clone(axis_name=AXIS)  # BatchNorm averages over devices
    discriminator = Discriminator(**config.model.discriminator.to_dict())
    optim = config.optim
    optimizers = {
        G: optax.adam(optim.g_lr, b1=optim.b1, b2=optim.b2),
        D: optax.adam(optim.d_lr, b1=optim.b1, b2=optim.b2),
    }
    step = functools.partial(
        adversarial_step,
        objective=objective,
        num_classes=generator.num_classes,
        latent_dim=generator.latent_dim,
        ema_decay=optim.ema_decay,
    )
    return Trainer(
        modules={G: generator, D: discriminator},
        optimizers=optimizers,
        applies={G: generator.apply, D: discriminator.apply},
        init=functools.partial(_init, seed=config.seed),
        step=step,
        inference_variables=inference_variables,
        example_inputs={G: functools.partial(_example_inputs, generator)},
    )


def _example_inputs(generator: Generator, num: int, seed: int) -> tuple[tuple, dict]:
    """``((z, y), {"train": False})``: ``num`` prior samples with classes cycled."""
    inputs = _sample_inputs(generator, num, seed, stream=0)
    return (inputs["z"], inputs["y"]), {"train": False}


def inference_shapes(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Abstract ``{"generator": {"params", "batch_stats"}}`` of ``config``'s generator."""
    generator = generator_module(config)
    z = jnp.zeros((1, generator.latent_dim), jnp.float32)
    y = jnp.zeros((1, generator.num_classes), jnp.float32)
    shapes = jax.eval_shape(generator.init, jax.random.PRNGKey(0), z, y)
    return {G: {k: v for k, v in shapes.items() if k == "params" or k in EXPORTED_COLLECTIONS}}


def sample(
    config: ml_collections.ConfigDict, variables, labels: np.ndarray, seed: int
) -> np.ndarray:
    """One EMA-generator image per label: float32 ``[len(labels), H, W, C]`` in ``[-1, 1]``."""
    generator = generator_module(config)
    z, y = prior_inputs(generator.latent_dim, generator.num_classes, labels, seed)
    return np.asarray(jax.jit(generator.apply)(variables[G], z, y))


def sample_grid(config: ml_collections.ConfigDict, variables) -> tuple[np.ndarray, int]:
    """``GRID_PER_CLASS`` samples per class, one row per class (seed 0)."""
    num_classes = config.model.generator.num_classes
    labels = np.repeat(np.arange(num_classes), GRID_PER_CLASS)
    return sample(config, variables, labels, seed=0), num_classes


def evaluate(restored: Restored, per_class: int = 100, cache_dir: str | None = None) -> dict:
    """Class accuracy, Fréchet distance, precision and recall of the EMA generator
    (``lwgen.eval.conditional``)."""
    generator = generator_module(restored.config)
    apply = jax.jit(generator.apply)

    def sample_fn(z: np.ndarray, y_onehot: np.ndarray) -> np.ndarray:
        return np.asarray(apply(restored.variables[G], z, y_onehot))

    return evaluate_sampler(
        sample_fn,
        generator.num_classes,
        generator.latent_dim,
        judged_data_config(restored.config.data),
        per_class=per_class,
        cache_dir=cache_dir,
    )


def evaluate_bundle(
    bundle_dir: str, data_config, per_class: int = 100, cache_dir: str | None = None
) -> dict:
    """`evaluate` for an exported bundle's TFLite generator, on the same inputs."""
    from lwgen.export.runtime import TFLiteGenerator  # LiteRT only when scoring a bundle

    generator = TFLiteGenerator(bundle_dir)
    return evaluate_sampler(
        generator,
        generator.num_classes,
        generator.latent_dim,
        judged_data_config(data_config),
        per_class=per_class,
        cache_dir=cache_dir,
    )


def _generator_fn(generator: Generator, variables, z, y) -> dict[str, jax.Array]:
    return {"image": generator.apply(variables, z, y, train=False)}


def _sample_inputs(generator: Generator, num: int, seed: int, stream: int) -> dict[str, Any]:
    labels = cycled_labels(num, generator.num_classes)
    z, y = prior_inputs(generator.latent_dim, generator.num_classes, labels, seed, stream)
    return {"z": z, "y": y}


def export_specs(restored: Restored, batch: int = 1) -> list[ExportSpec]:
    """One model, ``generator``: ``(z f32 [B, latent_dim], y f32 [B, K] one-hot) -> image f32
    [B, H, W, C]`` in ``[-1, 1]``, calibrated on the prior with classes cycled.

    ``batch`` (the static batch the exporter uses) does not change the spec.
    """
    del batch
    generator = generator_module(restored.config)
    return [
        ExportSpec(
            name=G,
            fn=functools.partial(_generator_fn, generator),
            variables=restored.variables[G],
            inputs=(
                TensorSpec("z", (generator.latent_dim,)),
                TensorSpec("y", (generator.num_classes,)),
            ),
            outputs=("image",),
            sample_inputs=functools.partial(_sample_inputs, generator),
        )
    ]


def bundle_fields(restored: Restored) -> dict[str, Any]:
    """``class_names``, ``num_classes``, ``latent_dim``, ``image_shape`` and ``upsample``."""
    generator = generator_module(restored.config)
    return {
        "class_names": class_names(restored.config.data, generator.num_classes),
        "num_classes": int(generator.num_classes),
        "latent_dim": int(generator.latent_dim),
        "image_shape": [int(d) for d in generator.image_shape],
        "upsample": generator.upsample,
    }


def make_family(
    name: str, make_objective: Callable[[ml_collections.ConfigDict], Objective]
) -> Family:
    """A conditional-GAN `Family` whose step uses ``make_objective(config)``.

    Args:
      name: the ``model.family`` name.
      make_objective: builds (and so validates) the family's objective from a config; raises
        ``ConfigError`` on a bad family-specific entry.
    """

    def validate(config: ml_collections.ConfigDict) -> None:
        validate_gan_config(config)
        make_objective(config)

    return Family(
        name=name,
        validate_config=validate,
        make_trainer=lambda config: make_trainer(config, make_objective(config)),
        inference_shapes=inference_shapes,
        sample_grid=sample_grid,
        evaluate=evaluate,
        export_specs=export_specs,
        bundle_fields=bundle_fields,
        evaluate_bundle=evaluate_bundle,
        sample=sample,
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
      A ``ConfigDict`` with the groups ``model``, ``data``, ``optim``, ``train``, ``export``
      (``model.family = "dcgan"``).
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


class RestoredGenerator(NamedTuple):
    """A trained workdir's EMA generator, for tools made for conditional generators.

    Attributes:
      generator: the ``Generator`` module (``axis_name=None``).
      variables: ``{"params": EMA params, "batch_stats": ...}``.
      config: the training config.
      step: the checkpoint's step.
    """

    generator: Generator
    variables: dict[str, Any]
    config: ml_collections.ConfigDict
    step: int


def restore_generator(workdir: str) -> RestoredGenerator:
    """The EMA generator of the latest checkpoint of a ``dcgan``/``tinygan`` workdir.

    Raises:
      MissingFileError: if ``workdir`` has no config or checkpoint.
      ConfigError: if the workdir's family has no ``generator`` network.
    """
    restored = restore_inference(workdir)
    if G not in restored.variables:
        raise ConfigError(
            f"{workdir!r} is a {restored.config.model.family!r} workdir without a generator"
        )
    return RestoredGenerator(
        generator_module(restored.config), restored.variables[G], restored.config, restored.step
    )
