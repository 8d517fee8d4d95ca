"""A compressed CycleGAN student distilled from a trained teacher (GAN Compression, §3.1).

After Li et al. 2020 ("GAN Compression: Efficient Architectures for Interactive Conditional
GANs", §3.1), for each direction separately, the student generator ``G'`` learns from the frozen
teacher ``G`` on the same input ``x``:

- reconstruction (eq. 1, unpaired setting): ``L_recon = E‖G'(x) - G(x)‖₁``;
- intermediate-feature distillation (eq. 3): ``L_distill = Σ_t E‖G_t(x) - f_t(G'_t(x))‖²``
  (mean squared error per feature), ``f_t`` a learned 1×1 conv (``mapping_ab``, ``mapping_ba``,
  `lwgen.models.cyclegan.FeatureMappings`) from the student's to the teacher's channels, at the
  generators' ``return_features`` points;
- the least-squares adversarial loss (eq. 4) against discriminators initialised from the
  teacher's (``discriminator_a``, ``discriminator_b``), which keep training on real target images
  against the student's translations, drawn through history pools of ``cycle.pool_size`` images
  as the teacher's were (none at 0).

``L = L_GAN + recon_weight · L_recon + distill_weight · L_distill``. The config is a CycleGAN
config whose ``model.generator`` is the student's and whose ``teacher`` group holds ``workdir``,
``recon_weight`` and ``distill_weight``; ``model.discriminator`` must equal the teacher's.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from lwgen.errors import ConfigError
from lwgen.families import cyclegan_core as core
from lwgen.families.registry import Trainer
from lwgen.losses.cycle import lsgan_g_loss
from lwgen.models.cyclegan import FeatureMappings
from lwgen.train.checkpoint import restore_inference
from lwgen.train.state import TrainState, create_train_state
from lwgen.train.steps import AXIS, pmean_metrics, update_network

MAPPINGS = {core.G_AB: "mapping_ab", core.G_BA: "mapping_ba"}
TEACHER_PREFIX = "teacher_"


def load_teacher(config: ml_collections.ConfigDict):
    """``(teacher config, teacher variables)`` of ``config.teacher.workdir``.

    Raises:
      ConfigError: if the workdir is not a CycleGAN teacher or differs in data or discriminator.
      MissingFileError: if it has no checkpoint.
    """
    restored = restore_inference(config.teacher.workdir)
    teacher = restored.config
    where = f"teacher.workdir {config.teacher.workdir!r}"
    if teacher.model.family != "cyclegan" or "teacher" in teacher:
        raise ConfigError(f"{where} is not a trained CycleGAN teacher")
    if core.image_shape(teacher) != core.image_shape(config):
        raise ConfigError(f"{where} translates {core.image_shape(teacher)} images, not "
                          f"{core.image_shape(config)}")  # fmt: skip
    if teacher.model.discriminator.to_dict() != config.model.discriminator.to_dict():
        raise ConfigError(f"{where}: model.discriminator must equal the teacher's")
    return teacher, restored.variables


def _feature_channels(module, config) -> list[int]:
    shapes = jax.eval_shape(
        lambda: module.init_with_output(
            jax.random.PRNGKey(0), core.dummy_image(config), return_features=True
        )[0][1]
    )
    return [int(s.shape[-1]) for s in shapes]


def _distill_direction(trainer, nets, names, x, teacher, weights):
    """Gradients of one student generator and its mapping (GAN Compression eq. 1-4), with the
    metrics, the generator's collections and its output; ``names``: (generator, discriminator)."""
    (name, d_name), mapping = names, MAPPINGS[names[0]]
    teacher_out, teacher_features = teacher

    def loss_fn(params):
        (out, features), collections = core.apply_network(
            trainer, nets[name], name, params[name], x, return_features=True
        )
        mapped = trainer.applies[mapping](nets[mapping].variables(params[mapping]), features)
        recon = jnp.mean(jnp.abs(out - teacher_out))
        distill = sum(jnp.mean((m - t) ** 2) for m, t in zip(mapped, teacher_features, strict=True))
        adv, _ = lsgan_g_loss(core.apply_network(trainer, nets[d_name], d_name, None, out)[0])
        loss = adv + weights["recon"] * recon + weights["distill"] * distill
        aux = {"g_loss": loss, "adv": adv, "recon": recon, "distill": distill}
        return loss, (aux, collections, out)

    params = {name: nets[name].params, mapping: nets[mapping].params}
    return jax.grad(loss_fn, has_aux=True)(params)


def distill_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    trainer: Trainer,
    teachers: dict[str, Any],
    weights: dict[str, float],
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One distillation step of both student directions on this device's shard.

    Args:
      state: replicated `TrainState` with the student generators, their mappings, the two
        discriminators and the pools (if any) in ``extras``.
      batch: ``image_a``, ``image_b`` float32 ``[b, H, W, C]`` in ``[-1, 1]``.
      trainer: the bound `Trainer` (``frozen["teacher_generator_ab"]``, ...).
      teachers: the teacher generator module per student network name.
      weights: ``{"recon", "distill"}``.

    Returns:
      The new state and device-averaged metrics per direction (``a2b_g_loss``, ``a2b_recon``,
      ``a2b_distill``, ``a2b_adv``, ``a2b_d_loss``, ... ``b2a_*``).
    """
    nets, extras, metrics = dict(state.networks), dict(state.extras), {}
    for direction, (name, d_name, source, target) in core.DIRECTIONS.items():
        x = batch[source]
        frozen = trainer.frozen[TEACHER_PREFIX + name]
        teacher = teachers[name].apply(frozen, x, return_features=True)
        teacher = jax.lax.stop_gradient(teacher)
        grads, (aux, collections, out) = _distill_direction(
            trainer, nets, (name, d_name), x, teacher, weights
        )
        nets[name] = update_network(nets[name], grads[name], trainer.optimizers[name], collections)
        mapping = MAPPINGS[name]
        nets[mapping] = update_network(nets[mapping], grads[mapping], trainer.optimizers[mapping])
        domain = target[-1]
        fake, extras = core.through_pool(state, extras, domain, jax.lax.stop_gradient(out))
        nets[d_name], d_loss, _ = core.d_update(trainer, d_name, nets[d_name], batch[target], fake)
        metrics.update({f"{direction}_{k}": v for k, v in {**aux, "d_loss": d_loss}.items()})
    new_state = state.replace(step=state.step + 1, networks=nets, extras=extras)
    return new_state, pmean_metrics(metrics)


def _init(trainer: Trainer, config: ml_collections.ConfigDict, mapping_widths) -> TrainState:
    """Step-0 state: student generators and mappings from ``config.seed``, discriminators
    copied from the teacher's (own buffers: the step donates the state)."""
    variables = core.init_variables(config, config.seed)
    for name in core.DISCRIMINATORS:
        variables[name] = jax.tree.map(jnp.copy, trainer.frozen[TEACHER_PREFIX + name])
    features = trainer.modules[core.G_AB].apply(
        variables[core.G_AB], core.dummy_image(config), return_features=True
    )[1]
    for i, name in enumerate(MAPPINGS.values()):
        key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 100 + i)
        variables[name] = FeatureMappings(mapping_widths).init(key, features)
    run_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)
    extras = core.empty_pools(config)
    return create_train_state(run_key, variables, trainer.optimizers, extras=extras)


def make_student_trainer(config: ml_collections.ConfigDict) -> Trainer:
    """The distillation `Trainer` of a config with a ``teacher`` group."""
    teacher_config, teacher_variables = load_teacher(config)
    teacher_module = core.modules(teacher_config)[core.G_AB]
    student = core.modules(config, axis_name=AXIS)
    student_widths = _feature_channels(core.modules(config)[core.G_AB], config)
    widths = _feature_channels(teacher_module, teacher_config)
    if len(widths) != len(student_widths):
        raise ConfigError(
            f"the student has {len(student_widths)} distillation features, the teacher "
            f"{len(widths)}: use the same generator kind"
        )
    mappings = {name: FeatureMappings(tuple(widths)) for name in MAPPINGS.values()}
    nets = {**student, **mappings}
    frozen = {TEACHER_PREFIX + name: teacher_variables[name] for name in teacher_variables}
    teacher = config.teacher
    step = functools.partial(
        distill_step,
        teachers={name: teacher_module for name in core.GENERATORS},
        weights={"recon": teacher.recon_weight, "distill": teacher.distill_weight},
    )
    return Trainer(
        modules=nets,
        optimizers=core.adam_optimizers(config, nets),
        applies={name: module.apply for name, module in nets.items()},
        init=functools.partial(_init, config=config, mapping_widths=tuple(widths)),
        step=step,
        inference_variables=core.inference_variables,
        example_inputs={
            core.G_AB: functools.partial(core.example_inputs, config, "a"),
            core.G_BA: functools.partial(core.example_inputs, config, "b"),
        },
        frozen=frozen,
    )


def student_config(
    teacher_config: ml_collections.ConfigDict,
    teacher_workdir: str,
    generator: dict[str, Any],
    num_train_steps: int,
    recon_weight: float = 10.0,
    distill_weight: float = 1.0,
) -> ml_collections.ConfigDict:
    """The teacher's config with the student ``generator`` group and a ``teacher`` group."""
    config = ml_collections.ConfigDict(teacher_config.to_dict())
    config.model.generator.update(generator)
    config.num_train_steps = num_train_steps
    config.teacher = dict(
        workdir=teacher_workdir, recon_weight=recon_weight, distill_weight=distill_weight
    )
    return config


def qat_workdir(workdir: str, out_workdir: str, num_steps: int, lr: float | None = None):
    """Quantization-aware fine-tuning of both student generators of ``workdir`` into
    ``out_workdir`` (``lwgen.compress``, method ``"qat"`` on ``compress.networks =
    (generator_ab, generator_ba)``), continuing the distillation objective; resumes if
    ``out_workdir`` already holds the run.

    Args:
      workdir: a trained student (or teacher) workdir.
      out_workdir: the QAT workdir.
      num_steps: fine-tuning steps.
      lr: peak learning rate of the fine-tune (default: the source's).

    Returns:
      The final `TrainState`.
    """
    from lwgen.compress.finetune import compressed_config, initial_state, restore_source
    from lwgen.compress.setup import compress_group
    from lwgen.families.registry import make_trainer
    from lwgen.train import checkpoint
    from lwgen.train.loop import train

    if checkpoint.checkpoint_manager(out_workdir).latest_step() is not None:
        return train(checkpoint.read_config(out_workdir), out_workdir)
    source_config, source = restore_source(workdir)
    group = compress_group(
        "qat", 0.0, num_steps, source_workdir=workdir, source_step=int(source.step),
        source_params="raw", network=core.G_AB,
    )  # fmt: skip
    group.networks = core.GENERATORS
    config = compressed_config(source_config, group, num_steps)
    if lr is not None:
        config.optim.lr = lr
    state = initial_state(config, source.networks[core.G_AB].variables(), source)
    trainer = make_trainer(config)
    checkpoint.write_config(out_workdir, config)
    manager = checkpoint.checkpoint_manager(out_workdir, config.train.keep_checkpoints)
    checkpoint.save_state(manager, state, trainer.inference_variables(state))
    manager.wait_until_finished()
    return train(config, out_workdir, trainer)
