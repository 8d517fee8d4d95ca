"""Optimisation-based style transfer (Gatys, Ecker & Bethge 2016, §2–3).

The image itself is the variable: starting from the content photo, Adam (an optax optimiser)
minimises ``α L_content + β L_style + tv · L_TV`` (Gatys eq. 7 plus Johnson et al.'s total
variation, ``lwgen.losses.perceptual``) on frozen VGG16 features. The pixels are optimised in an
unconstrained space, ``image = tanh(u)``, so the result stays in ``[-1, 1]``.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from lwgen.losses import perceptual
from lwgen.models.vgg import VGG16Features, vgg_variables, widths_of
from lwgen.models.vgg_weights import load_vgg16_weights

# Johnson et al. 2016 §4.1 layers; weights tuned on this repo's VGG normalisation.
DEFAULT_WEIGHTS = perceptual.PerceptualWeights(
    content_layer="relu2_2",
    style_layers=("relu1_2", "relu2_2", "relu3_3"),
    style_layer_weights=(1.0, 1.0, 1.0),
    content_weight=1.0,
    style_weight=10.0,
    tv_weight=10.0,
)


@dataclasses.dataclass(frozen=True)
class GatysSettings:
    """Optimisation settings of `stylize`.

    Attributes:
      steps: Adam steps.
      lr: Adam learning rate (in the ``atanh`` pixel space).
      weights: losses, layers and weights.
    """

    steps: int = 200
    lr: float = 0.05
    weights: perceptual.PerceptualWeights = DEFAULT_WEIGHTS


def _atanh_image(image: np.ndarray) -> jax.Array:
    return jnp.arctanh(jnp.clip(jnp.asarray(image, jnp.float32), -0.999, 0.999))


def stylize(
    content: np.ndarray,
    style: np.ndarray,
    settings: GatysSettings = GatysSettings(),
    vgg_weights: dict[str, np.ndarray] | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, dict[str, float]]:
    """Gatys et al. style transfer of one photo.

    Args:
      content: float32 ``[H, W, 3]`` content photo in ``[-1, 1]``.
      style: float32 ``[H', W', 3]`` style image in ``[-1, 1]`` (any size).
      settings: steps, learning rate and loss weights.
      vgg_weights: flat VGG16 arrays (``lwgen.models.vgg_weights``); None loads the cached
        ImageNet weights.
      progress: show a tqdm progress bar.

    Returns:
      ``(float32 [H, W, 3] result in [-1, 1], final losses {"loss", "content_loss",
      "style_loss", "tv_loss"})``.

    Raises:
      MissingFileError: if the VGG weights are needed and not cached.
    """
    weights = settings.weights
    vgg_weights = load_vgg16_weights() if vgg_weights is None else vgg_weights
    net = VGG16Features(weights.layers, widths_of(vgg_weights))
    variables = vgg_variables(vgg_weights, weights.layers)
    features_of = jax.jit(lambda x: net.apply(variables, x))
    content_features = features_of(content[None])[weights.content_layer]
    style_features = features_of(style[None])
    grams = [perceptual.gram_matrix(style_features[layer]) for layer in weights.style_layers]

    def loss_fn(u):
        image = jnp.tanh(u)
        return perceptual.perceptual_loss(
            net.apply(variables, image), content_features, grams, image, weights
        )

    tx = optax.adam(settings.lr)

    @jax.jit
    def step(u, opt_state):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(u)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(u, updates), opt_state, {"loss": loss, **aux}

    u = _atanh_image(content[None])
    opt_state = tx.init(u)
    metrics = {}
    for _ in tqdm(range(settings.steps), desc="gatys", disable=not progress):
        u, opt_state, metrics = step(u, opt_state)
    return np.asarray(jnp.tanh(u)[0]), {k: float(v) for k, v in metrics.items()}


def stylize_files(
    content: str, style: str, out: str, size: int, steps: int, lr: float, weights: dict
) -> dict[str, float]:
    """`stylize` from files to a PNG: ``launch/stylize.py``'s body.

    Args:
      content: content photo path.
      style: style image path, or a catalogue name of ``lwgen.data.styles.STYLES``.
      out: output PNG path (written atomically).
      size: shorter side the content and style images are resized to (px).
      steps, lr: Adam steps and learning rate.
      weights: overrides of `DEFAULT_WEIGHTS` fields (``content_weight``, ...).

    Returns:
      The final losses.

    Raises:
      MissingFileError, DataError: for a missing or unreadable image; ConfigError for a bad
        setting.
    """
    from lwgen.data.photo_crops import resize_shorter_side
    from lwgen.data.photos import read_photo
    from lwgen.data.styles import STYLES, load_style
    from lwgen.errors import ConfigError, MissingFileError
    from lwgen.images import save_png

    if steps < 1 or size < 16:
        raise ConfigError(f"need --steps >= 1 and --size >= 16, got {steps} and {size}")
    photo = resize_shorter_side(read_photo(content), size).astype(np.float32) / 127.5 - 1.0
    if style in STYLES:
        painting = load_style(style, size)
    elif os.path.isfile(style):
        painting = resize_shorter_side(read_photo(style), size)
    else:
        raise MissingFileError(
            f"style {style!r} is neither an image file nor a catalogue style {sorted(STYLES)}"
        )
    settings = GatysSettings(steps, lr, dataclasses.replace(DEFAULT_WEIGHTS, **weights))
    result, losses = stylize(photo, painting.astype(np.float32) / 127.5 - 1.0, settings)
    save_png(out, np.round((result + 1.0) * 127.5).astype(np.uint8))
    return losses
