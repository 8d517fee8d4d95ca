"""The one training loop for every family: sharding, logging, checkpoints and sample grids.

``train(config, workdir)`` builds the config's `Trainer` (``lwgen.families.registry``), restores
the latest checkpoint in ``workdir`` if there is one, and runs the family's per-device step with
``jax.shard_map`` inside ``jax.jit`` over a 1-D mesh of all devices named ``"batch"``. On several
hosts (``jax.distributed.initialize()``), each process builds its slice of the global batch and
the global array is assembled from the process-local parts; only process 0 writes
``config.json``, TensorBoard files and sample grids, while orbax saves from every process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping

import jax
import ml_collections
import numpy as np
from clu import metric_writers
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from lwgen import images as image_grid
from lwgen.console import log_to_file
from lwgen.data import check_batch_divisible, load_source
from lwgen.errors import DivergedError
from lwgen.families.registry import Trainer, get_family, make_trainer
from lwgen.train import checkpoint
from lwgen.train.config import validate_config
from lwgen.train.state import TrainState
from lwgen.train.steps import AXIS

LOG_FILE = "train.log"


def check_finite(metrics: Mapping[str, float], step: int, last_good: int | None, workdir: str):
    """Raises ``DivergedError`` naming the first non-finite metric and the last good checkpoint."""
    for name, value in metrics.items():
        if not math.isfinite(float(value)):
            raise DivergedError(
                f"{name} is {value} at step {step}: training stopped; the last good checkpoint "
                f"is step {last_good} in {os.path.join(workdir, 'checkpoints')}"
            )


def compile_step(trainer: Trainer, mesh: jax.sharding.Mesh):
    """``jit(shard_map(trainer.step))`` with the state replicated and the batch sharded.

    Returns:
      ``step(state, batch) -> (state, metrics)``; the trainer's frozen networks are placed on
      the mesh once, replicated, and passed to every call as arguments.
    """

    def per_device(state, batch, frozen):
        bound = dataclasses.replace(trainer, frozen=frozen)
        return trainer.step(state, batch, trainer=bound)

    # check_vma=False keeps pmap semantics: gradients of replicated params are per-device until
    # the step's explicit lax.pmean (with VMA checking, grad would already psum them).
    mapped = jax.shard_map(
        per_device, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=(P(), P()), check_vma=False
    )
    step = jax.jit(mapped, donate_argnums=0)
    frozen = jax.device_put(dict(trainer.frozen), NamedSharding(mesh, P()))
    return lambda state, batch: step(state, batch, frozen)


def process_rows(mesh: jax.sharding.Mesh, batch_size: int) -> np.ndarray:
    """The rows of a global batch that this process feeds: those of the ``P("batch")`` shards
    on its devices, in order (where ``jax.make_array_from_process_local_data`` places them; a
    mesh need not give each host a contiguous block)."""
    shards = NamedSharding(mesh, P(AXIS)).addressable_devices_indices_map((batch_size,))
    spans = sorted({index[0].indices(batch_size)[:2] for index in shards.values()})
    return np.concatenate([np.arange(start, stop) for start, stop in spans])


def global_batch(
    local_batch: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh, batch_size: int
) -> dict[str, jax.Array]:
    """Assembles the global batch, sharded ``P("batch")``, from this process's rows."""
    sharding = NamedSharding(mesh, P(AXIS))
    return {
        key: jax.make_array_from_process_local_data(sharding, value, (batch_size, *value.shape[1:]))
        for key, value in local_batch.items()
    }


def host_local(tree):
    """A replicated pytree as numpy arrays, read from this process's first copy (works on one
    host and on many, where a global array is not fully addressable)."""
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def write_sample_grid(path: str, config: ml_collections.ConfigDict, variables) -> None:
    """Writes the family's sample grid of ``variables`` as a PNG (atomically)."""
    images, rows = get_family(config.model.family).sample_grid(config, variables)
    image_grid.save_png(path, image_grid.make_grid(images, rows=rows))


def train(
    config: ml_collections.ConfigDict, workdir: str, trainer: Trainer | None = None
) -> TrainState:
    """Trains (or resumes training) until ``config.num_train_steps``.

    Args:
      config: an experiment config (see ``configs/``); validated before any work.
      workdir: output folder; the latest checkpoint in it is resumed.
      trainer: overrides the config's trainer (``lwgen.families.registry.make_trainer``).

    Returns:
      The final `TrainState` (host-fetched arrays).

    Raises:
      ConfigError: on a bad config or a batch not divisible by the device count.
      DivergedError: on a non-finite metric (the last good checkpoint is kept).
    """
    validate_config(config)
    trainer = trainer or make_trainer(config)
    check_batch_divisible(config.batch_size, jax.device_count())
    mesh = jax.make_mesh((jax.device_count(),), (AXIS,))
    source = load_source(config.data, "train")
    chief = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    with log_to_file(os.path.join(workdir, LOG_FILE), write=chief):
        logging.info("devices: %d (%s)", jax.device_count(), jax.devices()[0].platform)
        if chief:
            checkpoint.write_config(workdir, config)
        return _run(config, workdir, trainer, mesh, source, chief)


def _run(config, workdir, trainer, mesh, source, chief) -> TrainState:
    manager = checkpoint.checkpoint_manager(workdir, config.train.keep_checkpoints)
    template = jax.device_put(trainer.init_state(), NamedSharding(mesh, P()))
    state = checkpoint.restore_state(manager, template) or template
    step_fn = compile_step(trainer, mesh)
    writer = metric_writers.create_default_writer(workdir, just_logging=not chief)
    rows = process_rows(mesh, config.batch_size)
    start, tick = int(state.step), time.perf_counter()
    last_logged = start
    steps = range(start, config.num_train_steps)
    quiet = None if chief else True  # None: no bar when stderr is not a terminal
    bar = tqdm(steps, initial=start, total=config.num_train_steps, desc="train", disable=quiet)
    for step in bar:
        local = {k: v[rows] for k, v in source.batch(step, config.batch_size, config.seed).items()}
        state, metrics = step_fn(state, global_batch(local, mesh, config.batch_size))
        done = step + 1
        is_last = done == config.num_train_steps
        save = done % config.train.checkpoint_every == 0 or is_last
        if done % config.train.log_every == 0 or save:
            metrics = {k: float(v) for k, v in host_local(metrics).items()}
            check_finite(metrics, done, manager.latest_step(), workdir)
            now = time.perf_counter()
            metrics["steps_per_sec"] = (done - last_logged) / max(now - tick, 1e-9)
            tick, last_logged = now, done
            writer.write_scalars(done, metrics)
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(metrics.items())[:3]})
        if save:
            checkpoint.save_state(manager, state, trainer.inference_variables(state))
        if chief and (done % config.train.sample_every == 0 or is_last):
            write_sample_grid(
                os.path.join(workdir, "samples", f"step_{done:06d}.png"),
                config,
                host_local(trainer.inference_variables(state)),
            )
    manager.wait_until_finished()
    writer.flush()
    return host_local(state)
