"""The ``textgan`` family: a DCGAN generator conditioned on a text prompt.

``G(z, text)`` (``lwgen.models.text_gan.TextGenerator``, fusion by concatenation, FiLM or
cross-attention) against a projection discriminator ``D(x, text)`` trained with the
matching-aware loss (GAN-CLS, Reed et al. 2016 §4.1): real images with a mismatched caption are
fakes too. Captions and their embeddings come from ``lwgen.data.captions``: the frozen text
encoder (``lwgen.models.text``) runs once per data set and encoder (`ensure_caption_cache`),
never per step. Evaluation, export and the bundle live in ``lwgen.families.textgan_export``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax

from lwgen.errors import ConfigError
from lwgen.families import textgan_export
from lwgen.families.conditional_gan import EXPORTED_COLLECTIONS, gan_config, inference_variables
from lwgen.families.objectives import normal_latents
from lwgen.families.registry import Family, Trainer, register
from lwgen.families.textgan_prompts import (
    COND_KEYS,
    ENCODERS,
    ensure_caption_cache,
    generator_module,
)
from lwgen.losses.gan import gan_losses, matching_aware_d_loss, mode_seeking_loss
from lwgen.models.text_gan import FUSIONS, TextDiscriminator, TextGenerator
from lwgen.train.state import NetworkState, TrainState, create_train_state
from lwgen.train.steps import AXIS, pmean_metrics, sample_keys, update_ema, update_network

G, D = "generator", "discriminator"
# Streams folded into each sample's key (`sample_keys`; stream 0 is the key itself, for `z`).
SECOND_LATENT_STREAM, TEXT_NOISE_STREAM = 1, 2


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks ``model.generator``/``discriminator``, ``data.captions`` and the optimizer.

    Raises:
      ConfigError: naming the first bad entry.
    """
    for key in (G, D):
        if key not in config.model:
            raise ConfigError(f"model.family 'textgan' needs config.model.{key}")
    if config.data.source != "captions" or "captions" not in config.data:
        raise ConfigError("model.family 'textgan' needs data.source='captions' and data.captions")
    gen, data = config.model.generator, config.data
    if gen.fusion not in FUSIONS:
        raise ConfigError(f"model.generator.fusion {gen.fusion!r} is not one of {FUSIONS}")
    if data.captions.encoder not in ENCODERS:
        raise ConfigError(f"data.captions.encoder {data.captions.encoder!r} not in {ENCODERS}")
    if tuple(gen.image_shape) != (data.image_size, data.image_size, data.channels):
        raise ConfigError(f"model.generator.image_shape {tuple(gen.image_shape)} != the data's")
    gan_losses(config.train.loss)


def _conditions(generator: TextGenerator, num: int, length: int) -> tuple[jax.Array, ...]:
    return (
        jnp.zeros((num, generator.text_dim)),
        jnp.zeros((num, length, generator.text_dim)),
        jnp.ones((num, length)),
    )


def _init(trainer: Trainer, seed: int, max_tokens: int) -> TrainState:
    generator, discriminator = trainer.modules[G], trainer.modules[D]
    g_key, d_key, run_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    cond = _conditions(generator, 1, max_tokens)
    z = jnp.zeros((1, generator.latent_dim))
    x = jnp.zeros((1, *generator.image_shape))
    variables = {G: generator.init(g_key, z, *cond), D: discriminator.init(d_key, x, cond[0])}
    return create_train_state(run_key, variables, trainer.optimizers, ema_of=(G,))


def _d_logits(apply, network: NetworkState, params, x, text, train: bool):
    """``D(x, text)`` and D's collections (updated only in training mode)."""
    variables = network.variables(params)
    if train:
        return apply(variables, x, text, train=True, mutable=list(network.collections))
    return apply(variables, x, text, train=False), network.collections


def stream_keys(keys: jax.Array, stream: int) -> jax.Array:
    """``fold_in(k, stream)`` of each ``[B, 2]`` per-sample key: an independent key per sample."""
    return jax.vmap(lambda k: jax.random.fold_in(k, stream))(keys)


def perturbed_text(keys: jax.Array, text: jax.Array, noise: float) -> jax.Array:
    """``normalize(t + n)`` with ``n ~ N(0, noise² / D · I)`` (so ``E|n| ≈ noise``), one draw per
    sample key: a fixed-variance form of the conditioning augmentation of StackGAN (Zhang et al.
    2017, §3.1), which samples the condition around the text embedding so that the generator
    answers a neighbourhood of each training caption, not its point; new prompts land in it.

    Args:
      keys: ``[B, 2]`` per-sample PRNG keys (`sample_keys`).
      text: float32 ``[B, D]`` unit sentence embeddings.
      noise: the expected norm of ``n``.

    Returns:
      float32 ``[B, D]`` unit vectors.
    """
    dim = text.shape[-1]
    n = jax.vmap(lambda k: jax.random.normal(k, (dim,)))(stream_keys(keys, TEXT_NOISE_STREAM))
    text = text + noise / jnp.sqrt(dim) * n
    return text / jnp.linalg.norm(text, axis=-1, keepdims=True)


def text_step(
    state: TrainState,
    batch,
    *,
    trainer: Trainer,
    loss: str,
    ema_decay: float,
    mode_seeking_weight: float = 0.0,
    text_noise: float = 0.0,
):
    """One matching-aware D update, then one G update, on this device's shard.

    With ``mode_seeking_weight > 0`` G also runs on a second latent per caption and adds that
    weight times the mode-seeking loss (``lwgen.losses.gan.mode_seeking_loss``, MSGAN eq. 3),
    which keeps G from ignoring ``z`` (one image per prompt). D sees only the first latents.
    With ``text_noise > 0`` G's sentence embedding is `perturbed_text` (D judges its output
    against the clean caption).

    Args:
      state: replicated `TrainState` (``generator``, ``discriminator``).
      batch: ``image`` f32 ``[b, H, W, C]`` in [-1, 1], ``text`` f32 ``[b, D]``, ``tokens`` f32
        ``[b, L, D]``, ``token_mask`` f32 ``[b, L]``, ``wrong_text`` f32 ``[b, D]``.
      trainer: the bound `Trainer`.
      loss: ``"hinge"`` or ``"non_saturating"``.
      ema_decay: decay of the generator EMA.
      mode_seeking_weight: ``λ_ms`` of MSGAN eq. 3 (0 turns the second latent off).
      text_noise: norm of the Gaussian perturbation of G's sentence embedding (0: none).

    Returns:
      The new state and device-averaged metrics.
    """
    g, d = state.networks[G], state.networks[D]
    real, text = batch["image"], batch["text"]
    latent_dim, num = trainer.modules[G].latent_dim, real.shape[0]
    keys = sample_keys(state.rng, state.step, num)
    z, cond = normal_latents(keys, latent_dim), tuple(batch[k] for k in COND_KEYS)
    if text_noise:
        cond = (perturbed_text(keys, cond[0], text_noise), *cond[1:])
    if mode_seeking_weight:
        z2 = normal_latents(stream_keys(keys, SECOND_LATENT_STREAM), latent_dim)
        z, cond = jnp.concatenate([z, z2]), tuple(jnp.concatenate([c, c]) for c in cond)

    def generate(params):
        return trainer.applies[G](
            g.variables(params), z, *cond, train=True, mutable=["batch_stats"]
        )

    images, pullback, g_collections = jax.vjp(generate, g.params, has_aux=True)
    fake = images[:num]

    def d_loss_fn(params):
        x = jnp.concatenate([real, jax.lax.stop_gradient(fake), real])
        t = jnp.concatenate([text, text, batch["wrong_text"]])
        logits, collections = _d_logits(trainer.applies[D], d, params, x, t, train=True)
        total, aux = matching_aware_d_loss(*jnp.split(logits, 3), loss)
        return total, ({"d_loss": total, **aux}, collections)

    (_, (d_metrics, d_collections)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d.params)
    d = update_network(d, grads, trainer.optimizers[D], d_collections)

    def g_loss_fn(images):
        logits, _ = _d_logits(trainer.applies[D], d, d.params, images[:num], text, train=False)
        total, aux = gan_losses(loss)[1](logits)
        if mode_seeking_weight:
            ms, ms_aux = mode_seeking_loss(images[:num], images[num:], z[:num], z[num:])
            total, aux = total + mode_seeking_weight * ms, {**aux, **ms_aux}
        return total, {"g_loss": total, **aux}

    (_, g_metrics), images_grad = jax.value_and_grad(g_loss_fn, has_aux=True)(images)
    g = update_network(g, pullback(images_grad)[0], trainer.optimizers[G], g_collections)
    new_state = state.replace(
        step=state.step + 1,
        networks={**state.networks, G: g, D: d},
        ema={G: update_ema(state.ema[G], g.params, ema_decay, state.step)},
    )
    return new_state, pmean_metrics({**d_metrics, **g_metrics})


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
    """Builds (or reuses) the caption cache, then G, D and Adam for each (betas of the config)."""
    ensure_caption_cache(config.data)
    generator = generator_module(config).clone(axis_name=AXIS)
    discriminator = TextDiscriminator(**config.model.discriminator.to_dict(), axis_name=AXIS)
    o = config.optim
    return Trainer(
        modules={G: generator, D: discriminator},
        optimizers={
            G: optax.adam(o.g_lr, b1=o.b1, b2=o.b2),
            D: optax.adam(o.d_lr, b1=o.b1, b2=o.b2),
        },
        applies={G: generator.apply, D: discriminator.apply},
        init=functools.partial(
            _init, seed=config.seed, max_tokens=int(config.data.captions.max_tokens)
        ),
        step=functools.partial(
            text_step,
            loss=config.train.loss,
            ema_decay=o.ema_decay,
            # configs saved before these terms existed trained without them: resume unchanged
            mode_seeking_weight=float(config.train.get("mode_seeking_weight", 0.0)),
            text_noise=float(config.train.get("text_noise", 0.0)),
        ),
        inference_variables=inference_variables,
        example_inputs={G: functools.partial(textgan_export.example_inputs, config)},
    )


def inference_shapes(config: ml_collections.ConfigDict) -> dict:
    """Abstract ``{"generator": {"params", "batch_stats"}}``."""
    generator = generator_module(config)
    cond = _conditions(generator, 1, int(config.data.captions.max_tokens))
    z = jnp.zeros((1, generator.latent_dim))
    shapes = jax.eval_shape(generator.init, jax.random.PRNGKey(0), z, *cond)
    return {G: {k: v for k, v in shapes.items() if k == "params" or k in EXPORTED_COLLECTIONS}}


def textgan_config(
    base: str, image_shape: tuple[int, int, int], fusion: str = "film", encoder: str = "minilm"
) -> ml_collections.ConfigDict:
    """A complete ``textgan`` config that ``configs/textgan_*.py`` adjust: the ``dcgan`` defaults
    (``lwgen.families.conditional_gan.gan_config``) with a `TextGenerator`, a projection D of
    the 384-d MiniLM embedding, captions of ``base`` and a text bundle.

    Args:
      base: ``data.captions.base``: ``"digits"``, ``"fashion_mnist_idx"`` or ``"jsonl"``.
      image_shape: ``(H, W, C)``.
      fusion: one of ``FUSIONS``.
      encoder: ``"minilm"`` or ``"llama"`` (then set ``data.captions.encoder_path`` and the
        text dims; its bundle carries a prompt table).
    """
    config = gan_config("captions", 10, image_shape)
    config.model.family = "textgan"
    config.model.generator = dict(
        image_shape=image_shape, text_dim=384, latent_dim=64, cond_dim=64, base_width=32,
        width_mult=1.0, upsample="resize_conv", fusion=fusion, attention_dim=32,
    )  # fmt: skip
    config.model.discriminator = dict(
        cond_dim=64, base_width=32, width_mult=1.0, num_blocks=3, spectral_norm=True
    )
    none_str = ml_collections.FieldReference(None, field_type=str)
    config.data.captions = dict(
        base=base, encoder=encoder, encoder_path=none_str, max_tokens=16,
        cache_dir=ml_collections.FieldReference(None, field_type=str),
        jsonl=ml_collections.FieldReference(None, field_type=str), interpolate=True,
    )  # fmt: skip
    config.train.mode_seeking_weight = 1.0  # MSGAN (Mao et al. 2019) eq. 3; 0 turns it off
    config.train.text_noise = 0.7  # see `perturbed_text`; 0 turns it off
    config.export.update(
        text_encoder="tflite" if encoder == "minilm" else "table",
        encoder_quant="float16",
        encoder_min_psnr=30.0,
    )
    return config


FAMILY = register(
    Family(
        name="textgan",
        validate_config=validate,
        make_trainer=make_trainer,
        inference_shapes=inference_shapes,
        sample_grid=textgan_export.sample_grid,
        evaluate=textgan_export.evaluate,
        export_specs=textgan_export.export_specs,
        bundle_fields=textgan_export.bundle_fields,
        evaluate_bundle=textgan_export.evaluate_bundle,
        sample=textgan_export.sample,
    )
)
