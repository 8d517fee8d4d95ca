"""Training of the ``cyclegan`` family: unpaired image-to-image translation (Zhu et al. 2017).

Two generators, ``generator_ab`` (G: A → B) and ``generator_ba`` (F: B → A), and two PatchGAN
discriminators, ``discriminator_a`` and ``discriminator_b`` (``lwgen.models.cyclegan``), trained in
one step: a joint generator update on the least-squares GAN, cycle-consistency and identity losses
(``lwgen.losses.cycle``), then a discriminator update on real images and on generated images drawn
through the history pool (50 per direction, kept in ``TrainState.extras`` so that resume is
exact). Adam (β₁ = 0.5) at a constant rate for the first half of training, then decayed linearly
to 0 (Zhu et al. 2017, §4).

The pool is global: every device gathers the whole batch of generated images, runs the same
sequential pool update with the step's key, and keeps its own rows. The state and the images the
discriminators see therefore do not depend on the device count.

A config with a ``teacher`` group trains a compressed student instead (GAN Compression, Li et al.
2020, §3.1): see ``lwgen.families.cyclegan_student``. Evaluation and sample grids live in
``lwgen.families.cyclegan``, export in ``lwgen.families.cyclegan_export``.

Config groups: ``model.generator`` (``kind``: ``"resnet"`` or ``"unet"``, and the fields of
`ResnetGenerator` / `UnetGenerator` except ``channels``), ``model.discriminator`` (the fields of
`PatchDiscriminator`), ``cycle`` (``cycle_weight`` λ, ``identity_weight`` relative to λ,
``pool_size``), ``optim`` (``lr``, ``b1``, ``b2``).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax import lax

from lwgen.errors import ConfigError
from lwgen.families.registry import Trainer
from lwgen.losses.cycle import (
    cycle_consistency_loss,
    empty_pool,
    identity_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    pool_query,
)
from lwgen.models.cyclegan import PatchDiscriminator, ResnetGenerator, UnetGenerator
from lwgen.models.layers import NORMS
from lwgen.train.state import NetworkState, TrainState, create_train_state
from lwgen.train.steps import AXIS, pmean_metrics, update_network

G_AB, G_BA, D_A, D_B = "generator_ab", "generator_ba", "discriminator_a", "discriminator_b"
GENERATORS, DISCRIMINATORS = (G_AB, G_BA), (D_A, D_B)
# direction -> (generator, discriminator of its output domain, input key, target key)
DIRECTIONS = {"a2b": (G_AB, D_B, "image_a", "image_b"), "b2a": (G_BA, D_A, "image_b", "image_a")}
EXPORTED_COLLECTIONS = ("batch_stats",)
GENERATOR_KINDS = {"resnet": ResnetGenerator, "unet": UnetGenerator}


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
    """``(H, W, C)`` of the translated images."""
    return (int(config.data.image_size), int(config.data.image_size), int(config.data.channels))


def generator_module(generator: ml_collections.ConfigDict, channels: int, axis_name=None):
    """The generator of a ``model.generator`` group (``kind`` picks the class)."""
    kwargs = generator.to_dict()
    kind = kwargs.pop("kind")
    if kind not in GENERATOR_KINDS:
        raise ConfigError(f"model.generator.kind must be one of {sorted(GENERATOR_KINDS)}")
    cls = GENERATOR_KINDS[kind]
    kwargs = {k: v for k, v in kwargs.items() if k in cls.__dataclass_fields__}
    return cls(channels=channels, axis_name=axis_name, **kwargs)


def modules(config: ml_collections.ConfigDict, axis_name: str | None = None) -> dict[str, Any]:
    """The four networks of ``config`` by name."""
    channels = int(config.data.channels)
    generator = generator_module(config.model.generator, channels, axis_name)
    discriminator = PatchDiscriminator(**config.model.discriminator.to_dict(), axis_name=axis_name)
    return {G_AB: generator, G_BA: generator, D_A: discriminator, D_B: discriminator}


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks the model, ``cycle`` and ``optim`` groups against each other and the data.

    Raises:
      ConfigError: naming the first bad entry.
    """
    for group in ("cycle", "optim"):
        if group not in config:
            raise ConfigError(f"model.family 'cyclegan' needs config.{group}")
    for key in ("generator", "discriminator"):
        if key not in config.model:
            raise ConfigError(f"model.family 'cyclegan' needs config.model.{key}")
    for key in ("generator", "discriminator"):
        if config.model[key].get("norm", "instance") not in NORMS:
            raise ConfigError(f"model.{key}.norm must be one of {NORMS}")
    size = int(config.data.image_size)
    net = config.model.generator
    if net.kind == "resnet" and size % 4:
        raise ConfigError(f"the ResNet generator needs data.image_size divisible by 4, got {size}")
    if net.kind == "unet" and size % 2 ** int(net.num_downs):
        raise ConfigError(
            f"the U-Net generator needs data.image_size divisible by 2**num_downs, got {size}"
        )
    if size < 2 ** (int(config.model.discriminator.num_layers) + 2):
        raise ConfigError(f"model.discriminator.num_layers is too deep for {size}-pixel images")
    if config.cycle.pool_size < 0 or config.cycle.cycle_weight < 0:
        raise ConfigError("cycle.pool_size and cycle.cycle_weight must be >= 0")
    generator_module(net, int(config.data.channels))


def learning_rate(optim: ml_collections.ConfigDict, num_train_steps: int) -> optax.Schedule:
    """``optim.lr`` for the first half of training, then linearly to 0 at ``num_train_steps``
    (Zhu et al. 2017, §4: "keep the same learning rate for the first 100 epochs and linearly
    decay the rate to zero over the next 100 epochs")."""
    half = num_train_steps // 2
    return optax.join_schedules(
        [optax.constant_schedule(optim.lr), optax.linear_schedule(optim.lr, 0.0, max(1, half))],
        [num_train_steps - half],
    )


def optimizer(optim: ml_collections.ConfigDict, num_train_steps: int):
    """Adam (Kingma & Ba 2015) with ``optim.b1`` (0.5 in CycleGAN), ``optim.b2`` and the
    `learning_rate` schedule."""
    return optax.adam(learning_rate(optim, num_train_steps), b1=optim.b1, b2=optim.b2)


def apply_network(trainer: Trainer, net: NetworkState, name: str, params, x, **kwargs):
    """``(output, updated collections)`` of network ``name`` in training mode."""
    return trainer.applies[name](
        net.variables(params), x, train=True, mutable=list(net.collections), **kwargs
    )


def d_update(trainer: Trainer, name: str, net: NetworkState, real, fake):
    """One least-squares update of discriminator ``name`` on real and generated images."""

    def loss_fn(params):
        logits, collections = apply_network(
            trainer, net, name, params, jnp.concatenate([real, fake])
        )
        loss, aux = lsgan_d_loss(*jnp.split(logits, 2))
        return loss, (loss, aux, collections)

    grads, (loss, aux, collections) = jax.grad(loss_fn, has_aux=True)(net.params)
    net = update_network(net, grads, trainer.optimizers[name], collections)
    return net, loss, aux


def global_pool_query(pool, images, key):
    """`pool_query` on the global batch: gathers every device's ``images`` (in global order),
    updates the replicated pool identically everywhere and returns this device's rows."""
    local = images.shape[0]
    out, pool = pool_query(pool, lax.all_gather(images, AXIS, tiled=True), key)
    return lax.dynamic_slice_in_dim(out, lax.axis_index(AXIS) * local, local), pool


def through_pool(state: TrainState, extras: dict[str, Any], domain: str, fake: jax.Array):
    """``(images for the discriminator of domain, updated extras)``: ``fake`` drawn through
    ``extras["pool_<domain>"]`` (`global_pool_query`, with a key from the state's RNG, the step
    and the domain) when the state keeps that pool, else ``fake`` itself."""
    name = f"pool_{domain}"
    if name not in extras:
        return fake, extras
    key = jax.random.split(jax.random.fold_in(state.rng, state.step))["ab".index(domain)]
    out, pool = global_pool_query(extras[name], fake, key)
    return out, {**extras, name: pool}


def _generator_losses(trainer, nets, batch, weights):
    """The loss of both generators jointly, as a function of their params."""
    real_a, real_b = batch["image_a"], batch["image_b"]

    def loss_fn(params):
        fake_b, col_ab = apply_network(trainer, nets[G_AB], G_AB, params[G_AB], real_a)
        fake_a, col_ba = apply_network(trainer, nets[G_BA], G_BA, params[G_BA], real_b)
        both_b = apply_network(
            trainer, nets[G_AB], G_AB, params[G_AB], jnp.concatenate([fake_a, real_b])
        )[0]
        both_a = apply_network(
            trainer, nets[G_BA], G_BA, params[G_BA], jnp.concatenate([fake_b, real_a])
        )[0]
        (rec_b, same_b), (rec_a, same_a) = jnp.split(both_b, 2), jnp.split(both_a, 2)
        adv_b, _ = lsgan_g_loss(apply_network(trainer, nets[D_B], D_B, None, fake_b)[0])
        adv_a, _ = lsgan_g_loss(apply_network(trainer, nets[D_A], D_A, None, fake_a)[0])
        cycle, cycle_aux = cycle_consistency_loss(real_a, rec_a, real_b, rec_b)
        identity, identity_aux = identity_loss(real_a, same_a, real_b, same_b)
        loss = adv_a + adv_b + weights["cycle"] * cycle + weights["identity"] * identity
        aux = {"g_loss": loss, "adv_a": adv_a, "adv_b": adv_b, **cycle_aux, **identity_aux}
        return loss, (aux, {G_AB: col_ab, G_BA: col_ba}, {"a": fake_a, "b": fake_b})

    return loss_fn


def cycle_step(
    state: TrainState, batch: dict[str, jax.Array], *, trainer: Trainer, weights: dict[str, float]
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One CycleGAN step on this device's shard (pmap-style; see ``lwgen.train.steps``).

    Args:
      state: replicated `TrainState` with the four networks and the pools in ``extras``
        (``pool_a``, ``pool_b``: `lwgen.losses.cycle.empty_pool` dicts).
      batch: ``image_a`` and ``image_b`` float32 ``[b, H, W, C]`` in ``[-1, 1]``.
      trainer: the bound `Trainer`.
      weights: ``{"cycle": λ, "identity": λ_identity}`` (absolute weights).

    Returns:
      The new state and device-averaged metrics (``g_loss``, ``adv_*``, ``cycle_*``,
      ``identity_*``, ``d_a_loss``, ``d_b_loss``, ``d_real``, ``d_fake``).
    """
    nets = dict(state.networks)
    loss_fn = _generator_losses(trainer, nets, batch, weights)
    params = {name: nets[name].params for name in GENERATORS}
    grads, (metrics, collections, fakes) = jax.grad(loss_fn, has_aux=True)(params)
    for name in GENERATORS:
        nets[name] = update_network(
            nets[name], grads[name], trainer.optimizers[name], collections[name]
        )
    extras = dict(state.extras)
    for domain, d_name in (("a", D_A), ("b", D_B)):
        fake, extras = through_pool(state, extras, domain, lax.stop_gradient(fakes[domain]))
        nets[d_name], d_loss, d_aux = d_update(
            trainer, d_name, nets[d_name], batch[f"image_{domain}"], fake
        )
        metrics = {
            **metrics,
            f"d_{domain}_loss": d_loss,
            **{f"{k}_{domain}": v for k, v in d_aux.items()},
        }
    new_state = state.replace(step=state.step + 1, networks=nets, extras=extras)
    return new_state, pmean_metrics(metrics)


def dummy_image(config: ml_collections.ConfigDict) -> jax.Array:
    """float32 zeros ``[1, H, W, C]``."""
    return jnp.zeros((1, *image_shape(config)), jnp.float32)


def init_variables(config: ml_collections.ConfigDict, seed: int) -> dict[str, Any]:
    """Initial variables of the four networks from ``seed`` (one key per network; one jitted
    program, as eager Flax initialisation dispatches and compiles every op separately)."""
    nets = modules(config)
    x = dummy_image(config)

    def init(keys):
        return {name: nets[name].init(key, x) for name, key in zip(nets, keys, strict=True)}

    return jax.jit(init)(jax.random.split(jax.random.PRNGKey(seed), 4))


def empty_pools(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """``{"pool_a", "pool_b"}``: empty pools of ``config.cycle.pool_size`` images (none at 0)."""
    if not config.cycle.pool_size:
        return {}
    pool = empty_pool(image_shape(config), int(config.cycle.pool_size))
    return {"pool_a": pool, "pool_b": jax.tree.map(jnp.copy, pool)}


def _init(trainer: Trainer, config: ml_collections.ConfigDict) -> TrainState:
    """Step-0 state: the four networks from ``config.seed``, empty pools."""
    run_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    variables = init_variables(config, config.seed)
    return create_train_state(run_key, variables, trainer.optimizers, extras=empty_pools(config))


def inference_variables(state: TrainState) -> dict[str, Any]:
    """``{network: {"params", "batch_stats"?}}`` of the two generators and the two
    discriminators (the discriminators initialise a distilled student's)."""
    out = {}
    for name in (*GENERATORS, *DISCRIMINATORS):
        net = state.networks[name]
        kept = {k: v for k, v in net.collections.items() if k in EXPORTED_COLLECTIONS}
        out[name] = {"params": net.params, **kept}
    return out


def inference_shapes(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Abstract `inference_variables` of ``config``."""
    nets, x = modules(config), dummy_image(config)
    shapes = {name: jax.eval_shape(nets[name].init, jax.random.PRNGKey(0), x) for name in nets}
    return {
        name: {k: v for k, v in variables.items() if k == "params" or k in EXPORTED_COLLECTIONS}
        for name, variables in shapes.items()
    }


def example_inputs(config: ml_collections.ConfigDict, domain: str, num: int, seed: int):
    """``((images,), {"train": False})``: ``num`` training images of ``domain`` (a seeded draw),
    what a generator of that input domain sees (QAT calibration)."""
    from lwgen.data import load_source

    source = load_source(config.data, "train")
    return (source.batch(0, num, seed)[f"image_{domain}"],), {"train": False}


def adam_optimizers(config: ml_collections.ConfigDict, names) -> dict[str, Any]:
    """The `optimizer` of ``config.optim`` for each network name."""
    return {name: optimizer(config.optim, config.num_train_steps) for name in names}


def make_teacher_trainer(config: ml_collections.ConfigDict) -> Trainer:
    """The CycleGAN `Trainer` of ``config`` (two generators, two discriminators)."""
    nets = modules(config, axis_name=AXIS)
    cycle = config.cycle
    weights = {"cycle": cycle.cycle_weight, "identity": cycle.cycle_weight * cycle.identity_weight}
    return Trainer(
        modules=nets,
        optimizers=adam_optimizers(config, nets),
        applies={name: module.apply for name, module in nets.items()},
        init=functools.partial(_init, config=config),
        step=functools.partial(cycle_step, weights=weights),
        inference_variables=inference_variables,
        example_inputs={
            G_AB: functools.partial(example_inputs, config, "a"),
            G_BA: functools.partial(example_inputs, config, "b"),
        },
    )
