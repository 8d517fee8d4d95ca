"""The generic train state: step, base RNG, named networks, EMA copies and family extras.

Every family keeps its whole training state in one `TrainState` (all leaves are arrays), so the
one loop, orbax checkpointing and bit-identical resume work for any family. Frozen pretrained
networks (a feature extractor, a text encoder) are not in it: families load them from their
verified files and bind them into the step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

PyTree = Any


@flax.struct.dataclass
class NetworkState:
    """One trained network.

    Attributes:
      params: the ``"params"`` collection.
      collections: its other collections by name (BatchNorm ``batch_stats``, spectral-norm
        power-iteration vectors, QAT ``quant_stats``, ...).
      opt_state: its optax state.
    """

    params: PyTree
    collections: dict[str, PyTree]
    opt_state: PyTree

    def variables(self, params: PyTree | None = None) -> dict[str, PyTree]:
        """``{"params": params or self.params, **collections}`` for ``module.apply``."""
        return {"params": self.params if params is None else params, **self.collections}


@flax.struct.dataclass
class TrainState:
    """Everything a run needs to continue bit-identically.

    Attributes:
      step: int32 scalar, completed steps (also the data position: batches are a pure function
        of the step).
      rng: uint32 ``[2]`` base PRNG key; step keys are ``fold_in(rng, step)``.
      networks: `NetworkState` by network name (``"generator"``, ``"discriminator"``, ...).
      ema: exponential moving averages of chosen networks' params, by network name (Karras et
        al. 2018, "Progressive Growing of GANs", §A.1): the weights evaluated and exported.
      extras: family state that is neither a network nor an EMA (e.g. an image pool), arrays.
    """

    step: jax.Array
    rng: jax.Array
    networks: dict[str, NetworkState]
    ema: dict[str, PyTree]
    extras: dict[str, PyTree]


def split_variables(variables: Mapping[str, PyTree]) -> tuple[PyTree, dict[str, PyTree]]:
    """``(params, other collections)`` of a ``module.init`` result."""
    variables = dict(variables)
    return variables.pop("params"), variables


def create_train_state(
    rng: jax.Array,
    variables: Mapping[str, Mapping[str, PyTree]],
    optimizers: Mapping[str, optax.GradientTransformation],
    ema_of: Sequence[str] = (),
    extras: Mapping[str, PyTree] | None = None,
) -> TrainState:
    """A step-0 `TrainState`.

    Args:
      rng: the run's base key (step keys derive from it).
      variables: initial variables (``module.init`` results) by network name.
      optimizers: one optax transformation per network in ``variables``.
      ema_of: names of the networks that get an EMA copy (starting equal to their params).
      extras: family extras.

    Returns:
      The state with fresh optimizer states.

    Raises:
      KeyError: if a network has no optimizer or ``ema_of`` names an unknown network.
    """
    networks = {}
    for name, network_variables in variables.items():
        params, collections = split_variables(network_variables)
        networks[name] = NetworkState(params, collections, optimizers[name].init(params))
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        rng=rng,
        networks=networks,
        ema={name: jax.tree.map(jnp.copy, networks[name].params) for name in ema_of},
        extras=dict(extras or {}),
    )


def replace_network(state: TrainState, name: str, network: NetworkState) -> TrainState:
    """``state`` with network ``name`` replaced."""
    return state.replace(networks={**state.networks, name: network})
