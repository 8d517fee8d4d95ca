"""The one training loop for every GAN family: sharding, logging, checkpoints and sample grids.

``train(config, workdir)`` builds a ``Setup`` for ``config.model.family`` (or takes one from a
caller such as the compression launcher), restores the latest checkpoint in ``workdir`` if there
is one, and runs the per-device step of ``lwgen.train.steps`` with ``jax.shard_map`` inside
``jax.jit`` over a 1-D mesh of all devices named ``"batch"``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from lwgen import images as image_grid
from lwgen.compress import apply_compression
from lwgen.data import check_batch_divisible, load_source, shard_batch
from lwgen.models.dcgan import Discriminator, Generator
from lwgen.train import checkpoint
from lwgen.train.config import validate_config
from lwgen.train.objectives import make_objective
from lwgen.train.state import GANState, build_models, create_gan_state, make_optimizers
from lwgen.train.steps import AXIS, adversarial_step


@dataclasses.dataclass
class Setup:
    """What a family (or a compression method) plugs into the loop.

    Attributes:
      generator, discriminator: modules; the loop sets ``axis_name="batch"`` on the generator.
      g_tx, d_tx: optimizers.
      objective: an ``lwgen.train.steps.Objective``.
      init_state: makes the step-0 ``GANState`` (also the structure checkpoints restore into).
      generator_apply: wraps ``Generator.apply`` (``None``: plain apply), e.g. fake quantization.
    """

    generator: Generator
    discriminator: Discriminator
    g_tx: Any
    d_tx: Any
    objective: Any
    init_state: Callable[[], GANState]
    generator_apply: Callable[..., Any] | None = None


def make_setup(config: ml_collections.ConfigDict) -> Setup:
    """The setup of ``config``: models, Adam, the family's objective, a fresh state, switched to
    the compression method of an optional ``compress`` group (``lwgen.compress``)."""
    generator, discriminator = build_models(config.model)
    g_tx, d_tx = make_optimizers(config.optim)
    init = functools.partial(create_gan_state, generator, discriminator, g_tx, d_tx, config.seed)
    setup = Setup(generator, discriminator, g_tx, d_tx, make_objective(config), init)
    return apply_compression(setup, config) if "compress" in config else setup


def sample_images(
    generator: Generator, variables: Any, labels: np.ndarray, seed: int
) -> np.ndarray:
    """Samples one image per label with ``z ~ N(0, I)`` from ``seed``.

    Returns:
      float32 ``[len(labels), H, W, C]`` in ``[-1, 1]``.
    """
    z = jax.random.normal(jax.random.PRNGKey(seed), (len(labels), generator.latent_dim))
    y = jax.nn.one_hot(jnp.asarray(labels), generator.num_classes)
    return np.asarray(jax.jit(generator.apply)(variables, z, y))


def write_sample_grid(path: str, generator: Generator, variables: Any, per_class: int = 10):
    """Writes a PNG grid of EMA samples, one row per class, ``per_class`` columns."""
    labels = np.repeat(np.arange(generator.num_classes), per_class)
    images = sample_images(generator, variables, labels, seed=0)
    image_grid.save_png(path, image_grid.make_grid(images, rows=generator.num_classes))


def check_finite(metrics: dict[str, float], step: int, last_good: int | None, workdir: str):
    """Raises ``FloatingPointError`` naming the first non-finite metric and last good checkpoint."""
    for name, value in metrics.items():
        if not math.isfinite(float(value)):
            raise FloatingPointError(
                f"{name} is {value} at step {step}: training stopped; the last good checkpoint "
                f"is step {last_good} in {os.path.join(workdir, 'checkpoints')}"
            )


def compile_step(setup: Setup, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    """``jit(shard_map(adversarial_step))`` with the state replicated and the batch sharded."""
    generator = setup.generator.clone(axis_name=AXIS)
    step = functools.partial(
        adversarial_step,
        generator_apply=setup.generator_apply or generator.apply,
        discriminator=setup.discriminator,
        g_tx=setup.g_tx,
        d_tx=setup.d_tx,
        objective=setup.objective,
        num_classes=generator.num_classes,
        latent_dim=generator.latent_dim,
        ema_decay=config.optim.ema_decay,
    )
    # check_vma=False keeps pmap semantics: gradients of replicated params are per-device until
    # the step's explicit lax.pmean (with VMA checking, grad would already psum them).
    mapped = jax.shard_map(
        step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()), check_vma=False
    )
    return jax.jit(mapped, donate_argnums=0)


def train(config: ml_collections.ConfigDict, workdir: str, setup: Setup | None = None) -> GANState:
    """Trains (or resumes training) until ``config.num_train_steps``.

    Args:
      config: a validated experiment config (see ``configs/``).
      workdir: output folder; the latest checkpoint in it is resumed.
      setup: overrides the family's default ``Setup`` (used by compression fine-tuning).

    Returns:
      The final ``GANState`` (host-fetched arrays).

    Raises:
      ValueError: on a bad config or a batch not divisible by the device count.
      FloatingPointError: on a non-finite loss (the last good checkpoint is kept).
    """
    validate_config(config)
    setup = setup or make_setup(config)
    mesh = jax.make_mesh((jax.device_count(),), (AXIS,))
    check_batch_divisible(config.batch_size, jax.device_count())
    logging.info("training on %d devices (%s)", jax.device_count(), jax.devices()[0].platform)
    source = load_source(config.data, "train")
    os.makedirs(workdir, exist_ok=True)
    checkpoint.write_config(workdir, config)
    manager = checkpoint.checkpoint_manager(workdir, config.train.keep_checkpoints)
    template = setup.init_state()
    state = checkpoint.restore_state(manager, template) or template
    state = jax.device_put(state, NamedSharding(mesh, P()))
    step_fn = compile_step(setup, config, mesh)
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    start, tick = int(state.step), time.perf_counter()
    last_logged = start
    for step in tqdm(
        range(start, config.num_train_steps),
        initial=start,
        total=config.num_train_steps,
        desc="train",
        disable=None,
    ):
        batch = shard_batch(source.batch(step, config.batch_size, config.seed), mesh)
        state, metrics = step_fn(state, batch)
        done = step + 1
        is_last = done == config.num_train_steps
        save = done % config.train.checkpoint_every == 0 or is_last
        if done % config.train.log_every == 0 or save:
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            check_finite(metrics, done, manager.latest_step(), workdir)
            now = time.perf_counter()
            metrics["steps_per_sec"] = (done - last_logged) / max(now - tick, 1e-9)
            tick, last_logged = now, done
            writer.write_scalars(done, metrics)
        if save:
            checkpoint.save_state(manager, state)
        if done % config.train.sample_every == 0 or is_last:
            write_sample_grid(
                os.path.join(workdir, "samples", f"step_{done:06d}.png"),
                setup.generator,
                checkpoint.exported_variables(state),
            )
    manager.wait_until_finished()
    writer.flush()
    return jax.device_get(state)
