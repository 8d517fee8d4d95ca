"""Checkpoints (orbax ``CheckpointManager`` in ``WORKDIR/checkpoints``) and the workdir's config.

Every checkpoint holds two items: ``state`` (the whole ``GANState``, for bit-identical resume) and
``generator`` (the EMA generator's ``params`` and ``batch_stats``, for evaluation and export; it
restores without knowing the optimizer or compression setup that trained it).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from lwgen.models.dcgan import Generator

CONFIG_FILE = "config.json"
EXPORTED_COLLECTIONS = ("batch_stats",)


def atomic_write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    """Saves ``config`` as ``WORKDIR/config.json`` (atomically)."""
    atomic_write_text(os.path.join(workdir, CONFIG_FILE), config.to_json_best_effort(indent=2))


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """Reads ``WORKDIR/config.json``.

    Raises:
      FileNotFoundError: if the workdir or its ``config.json`` does not exist.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {workdir!r} a lwgen training workdir?")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def checkpoint_manager(workdir: str, keep: int = 3) -> ocp.CheckpointManager:
    """An orbax ``CheckpointManager`` over ``WORKDIR/checkpoints`` keeping the last ``keep``."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "checkpoints"),
        options=options,
        item_names=("state", "generator"),
    )


def exported_variables(state: Any) -> dict[str, Any]:
    """The EMA generator's variables: ``params`` plus its ``batch_stats`` if it has any."""
    kept = {k: v for k, v in state.g_state.items() if k in EXPORTED_COLLECTIONS}
    return {"params": state.ema_params, **kept}


def save_state(manager: ocp.CheckpointManager, state: Any) -> None:
    """Saves ``state`` at ``state.step`` (asynchronously; call ``wait_until_finished`` to block)."""
    manager.save(
        int(state.step),
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            generator=ocp.args.StandardSave(exported_variables(state)),
        ),
    )


def restore_state(manager: ocp.CheckpointManager, template: Any) -> Any | None:
    """Restores the latest full state into ``template``'s structure, or ``None`` if none saved."""
    step = manager.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    )
    return restored.state


class RestoredGenerator(NamedTuple):
    """A trained generator ready for sampling, evaluation or export.

    Attributes:
      generator: the ``Generator`` module (``axis_name=None``).
      variables: ``{"params": EMA params, "batch_stats": ...}``.
      config: the training config.
      step: the step of the checkpoint.
    """

    generator: Generator
    variables: dict[str, Any]
    config: ml_collections.ConfigDict
    step: int


def restore_generator(workdir: str) -> RestoredGenerator:
    """Restores the EMA generator of the latest checkpoint in ``workdir``.

    Raises:
      FileNotFoundError: if ``workdir`` has no ``config.json`` or no checkpoint.
    """
    config = read_config(workdir)
    ckpt_dir = os.path.join(os.path.abspath(workdir), "checkpoints")
    if not os.path.isdir(ckpt_dir):
        raise FileNotFoundError(f"no checkpoints in {workdir!r} (expected {ckpt_dir})")
    manager = checkpoint_manager(workdir)
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"no checkpoints in {ckpt_dir}")
    gen_config = config.model.generator.to_dict()
    gen_config["image_shape"] = tuple(gen_config["image_shape"])
    generator = Generator(**gen_config)
    target = ocp.args.StandardRestore(_local_template(generator))
    restored = manager.restore(step, args=ocp.args.Composite(generator=target))
    return RestoredGenerator(generator, restored.generator, config, step)


def _local_template(generator: Generator) -> dict[str, Any]:
    """Abstract exported variables of ``generator`` placed on this host's first device.

    Restoring into it works whatever device topology the checkpoint was written on (a TPU pod,
    several simulated CPU devices).
    """
    z = jnp.zeros((1, generator.latent_dim), jnp.float32)
    y = jnp.zeros((1, generator.num_classes), jnp.float32)
    shapes = jax.eval_shape(generator.init, jax.random.PRNGKey(0), z, y)
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return {
        name: jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), tree
        )
        for name, tree in shapes.items()
        if name == "params" or name in EXPORTED_COLLECTIONS
    }
