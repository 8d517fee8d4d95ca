"""Checkpoints (orbax ``CheckpointManager`` in ``WORKDIR/checkpoints``) and the workdir's config.

Every checkpoint holds two items: ``state`` (the whole `TrainState`, for bit-identical resume) and
``inference`` (the family's inference networks, ``{name: variables}``, e.g. the EMA generator's
``params`` and ``batch_stats``; it restores without knowing the optimizer or compression setup
that trained it). Frozen pretrained networks are never checkpointed. Orbax writes from every
process of a multi-host run.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from lwgen.errors import MissingFileError
from lwgen.families.registry import Restored, get_family
from lwgen.io import atomic_write_text

CONFIG_FILE = "config.json"
ITEMS = ("state", "inference")


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    """Saves ``config`` as ``WORKDIR/config.json`` (atomically)."""
    atomic_write_text(os.path.join(workdir, CONFIG_FILE), config.to_json_best_effort(indent=2))


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """Reads ``WORKDIR/config.json``.

    Raises:
      MissingFileError: if the workdir or its ``config.json`` does not exist.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise MissingFileError(f"{path} not found: is {workdir!r} a lwgen training workdir?")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def checkpoint_manager(workdir: str, keep: int = 3) -> ocp.CheckpointManager:
    """An orbax ``CheckpointManager`` over ``WORKDIR/checkpoints`` keeping the last ``keep``."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "checkpoints"), options=options, item_names=ITEMS
    )


def save_state(manager: ocp.CheckpointManager, state: Any, inference: dict[str, Any]) -> None:
    """Saves ``state`` and its ``inference`` variables at ``state.step`` (asynchronously; call
    ``manager.wait_until_finished()`` to block)."""
    manager.save(
        int(state.step),
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), inference=ocp.args.StandardSave(inference)
        ),
    )


def restore_state(manager: ocp.CheckpointManager, template: Any) -> Any | None:
    """Restores the latest full state into ``template``'s structure (and shardings), or
    ``None`` if nothing is saved."""
    step = manager.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    )
    return restored.state


def latest_step(workdir: str) -> int:
    """The step of the latest checkpoint in ``workdir``.

    Raises:
      MissingFileError: if ``workdir`` has no checkpoint.
    """
    ckpt_dir = os.path.join(os.path.abspath(workdir), "checkpoints")
    step = checkpoint_manager(workdir).latest_step() if os.path.isdir(ckpt_dir) else None
    if step is None:
        raise MissingFileError(f"no checkpoints in {workdir!r} (expected them in {ckpt_dir})")
    return step


def restore_inference(workdir: str) -> Restored:
    """Restores the inference networks of the latest checkpoint in ``workdir``.

    The template comes from the family's ``inference_shapes`` placed on this host's first
    device, so checkpoints written on any device topology (a TPU pod, simulated CPU devices)
    restore here.

    Raises:
      MissingFileError: if ``workdir`` has no ``config.json`` or no checkpoint.
      ConfigError: if the config names an unknown family.
    """
    config = read_config(workdir)
    step = latest_step(workdir)
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    template = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
        get_family(config.model.family).inference_shapes(config),
    )
    restored = checkpoint_manager(workdir).restore(
        step, args=ocp.args.Composite(inference=ocp.args.StandardRestore(template))
    )
    return Restored(config, step, restored.inference)
