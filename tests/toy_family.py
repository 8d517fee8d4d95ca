"""A toy family registered from outside lwgen: a one-network denoiser of the digits.

It proves that a family plugs into the core (loop, checkpoints, evaluation driver, exporter,
bundle) through ``lwgen.families.registry.register`` alone. Step: ``x_noisy = x + sigma · eps``,
loss ``|| net(x_noisy) - x ||² + || phi(net(x_noisy)) - phi(x) ||²`` (a denoising autoencoder,
Vincent et al. 2008, with a feature term through a frozen network ``phi``: a fixed random conv
standing in for a pretrained extractor, held in ``Trainer.frozen``), EMA of ``net``.
Importing this module registers the family ``"toy"``; subprocess tests import it too.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lwgen.data import load_source
from lwgen.data.source import to_unit_range
from lwgen.errors import ConfigError
from lwgen.export.metadata import load_bundle
from lwgen.export.runtime import TFLiteRunner
from lwgen.export.spec import ExportSpec, TensorSpec
from lwgen.families.registry import Family, Trainer, register
from lwgen.train.state import create_train_state
from lwgen.train.steps import pmean_metrics, sample_keys, update_ema, update_network

NET = "net"
FEATURES = "features"
SIGMA = 0.5


class Denoiser(nn.Module):
    """Two 3×3 convs: ``[B, H, W, C]`` noisy images → ``[B, H, W, C]`` in ``[-1, 1]``."""

    width: int = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.relu(nn.Conv(self.width, (3, 3))(x))
        return jnp.tanh(nn.Conv(x.shape[-1], (3, 3))(h))


def toy_config(num_train_steps: int = 4) -> ml_collections.ConfigDict:
    """16×16 digits, batch 8, width 4."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_train_steps = num_train_steps
    config.batch_size = 8
    config.model = dict(family="toy", width=4)
    config.data = dict(source="digits", image_size=16, channels=1, heldout_fraction=0.2)
    config.optim = dict(lr=1e-2, ema_decay=0.9)
    config.train = dict(log_every=1, checkpoint_every=2, keep_checkpoints=5, sample_every=100)
    config.export = dict(quant="int8", num_calibration=256, batch=1, min_psnr=20.0)
    return config


def get_config() -> ml_collections.ConfigDict:
    """Entry point for launchers: ``--config=tests/toy_family.py``."""
    return toy_config()


def _shape(config) -> tuple[int, int, int]:
    return (config.data.image_size, config.data.image_size, config.data.channels)


def validate(config) -> None:
    if config.model.width < 1:
        raise ConfigError(f"model.width must be >= 1, got {config.model.width}")


def _init(trainer: Trainer, shape, seed: int) -> object:
    key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    variables = {NET: trainer.modules[NET].init(key, jnp.zeros((1, *shape)))}
    return create_train_state(run_key, variables, trainer.optimizers, ema_of=(NET,))


def denoise_step(state, batch, *, trainer, ema_decay):
    """Per-device step: one update of ``net`` with the shared helper, then its EMA."""
    net, clean = state.networks[NET], batch["image"]
    keys = sample_keys(state.rng, state.step, clean.shape[0])
    noise = jax.vmap(lambda k: jax.random.normal(k, clean.shape[1:]))(keys)

    def loss_fn(params):
        return jnp.mean(
            (trainer.applies[NET](net.variables(params), clean + SIGMA * noise) - clean) ** 2
        )

    loss, grads = jax.value_and_grad(loss_fn)(net.params)
    net = update_network(net, grads, trainer.optimizers[NET])
    return state.replace(
        step=state.step + 1,
        networks={NET: net},
        ema={NET: update_ema(state.ema[NET], net.params, ema_decay, state.step)},
    ), pmean_metrics({"loss": loss})


FROZEN_MODULE = nn.Conv(8, (3, 3))


def frozen_features(shape) -> dict:
    """The frozen network's variables (a seeded random conv; a real family loads weights)."""
    return FROZEN_MODULE.init(jax.random.PRNGKey(123), jnp.zeros((1, *shape)))


def make_trainer(config) -> Trainer:
    module = Denoiser(config.model.width)
    return Trainer(
        modules={NET: module},
        optimizers={NET: optax.adam(config.optim.lr)},
        applies={NET: module.apply},
        init=functools.partial(_init, shape=_shape(config), seed=config.seed),
        step=functools.partial(denoise_step, ema_decay=config.optim.ema_decay),
        inference_variables=lambda state: {NET: {"params": state.ema[NET]}},
        frozen={FEATURES: frozen_features(_shape(config))},
    )


def _clean(data_config, num: int) -> np.ndarray:
    return to_unit_range(load_source(data_config, "heldout").images[:num])


def _noisy(data_config, num: int, seed: int, stream: int = 0) -> np.ndarray:
    images = _clean(data_config, num)
    rng = np.random.default_rng([seed, stream])
    return (images + SIGMA * rng.standard_normal(images.shape)).astype(np.float32)


def inference_shapes(config):
    shapes = jax.eval_shape(Denoiser(config.model.width).init, jax.random.PRNGKey(0),
                            jnp.zeros((1, *_shape(config))))  # fmt: skip
    return {NET: shapes}


def sample_grid(config, variables):
    noisy = _noisy(config.data, 8, 0)
    return np.asarray(Denoiser(config.model.width).apply(variables[NET], noisy)), 2


def _mse(denoise, data_config) -> dict[str, float]:
    """Mean squared error of ``denoise`` on 32 noisy held-out digits."""
    denoised = np.asarray(denoise(_noisy(data_config, 32, 0)))
    return {"mse": float(np.mean((denoised - _clean(data_config, 32)) ** 2))}


def evaluate(restored, per_class=100, cache_dir=None):
    del per_class, cache_dir
    module = Denoiser(restored.config.model.width)
    return _mse(functools.partial(module.apply, restored.variables[NET]), restored.config.data)


def evaluate_bundle(bundle_dir, data_config, per_class=100, cache_dir=None):
    del per_class, cache_dir
    runner = TFLiteRunner.from_bundle(load_bundle(bundle_dir), NET)
    return _mse(lambda x: runner(x=x)["image"], data_config)


def _fn(module, variables, x):
    return {"image": module.apply(variables, x)}


def export_specs(restored, batch=1):
    del batch
    config = restored.config
    module = Denoiser(config.model.width)
    return [
        ExportSpec(
            name=NET,
            fn=functools.partial(_fn, module),
            variables=restored.variables[NET],
            inputs=(TensorSpec("x", _shape(config)),),
            outputs=("image",),
            sample_inputs=lambda num, seed, stream: {"x": _noisy(config.data, num, seed, stream)},
            min_psnr=10.0,
        )
    ]


FAMILY = register(
    Family(
        name="toy",
        validate_config=validate,
        make_trainer=make_trainer,
        inference_shapes=inference_shapes,
        sample_grid=sample_grid,
        evaluate=evaluate,
        export_specs=export_specs,
        bundle_fields=lambda restored: {"image_shape": list(_shape(restored.config))},
        evaluate_bundle=evaluate_bundle,
    )
)
