"""The ``cyclegan`` family: unpaired image-to-image translation with a distilled student.

Training lives in ``lwgen.families.cyclegan_core`` (teacher) and
``lwgen.families.cyclegan_student`` (GAN Compression student), export in
``lwgen.families.cyclegan_export``; this module adds the sample grid, the evaluation and the
config, and registers the family.

Evaluation translates every held-out image of each domain (the Fashion-MNIST test split for
``fashion_unpaired``) and reports, per direction ``a2b`` and ``b2a``:

- ``{dir}_cycle_l1``: mean ``|F(G(x)) - x|`` over pixels, images in ``[-1, 1]`` (Zhu et al. 2017,
  eq. 2 as a metric);
- with a class-labelled source (``fashion_unpaired``), using the Fashion-MNIST judge
  (``lwgen.eval.judge``): ``{dir}_target_rate``, the fraction of translations the judge assigns to
  the target class, and ``{dir}_frechet``, the Fréchet distance (Heusel et al. 2017, eq. 2) in the
  judge's features between the translations and the real held-out target images, and
  ``{dir}_precision`` / ``{dir}_recall`` (Kynkäänniemi et al. 2019, k = 3, same features and
  sets); as references, ``real_{a,b}_target_rate`` (the judge on real held-out images of each
  domain) and ``real_frechet_{a,b}``, ``real_precision_{a,b}``, ``real_recall_{a,b}`` (the same
  number of real training images of the domain against the held-out ones: the floor at this
  sample count).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from lwgen.data import load_source
from lwgen.data.source import to_unit_range
from lwgen.data.unpaired import FASHION_ANKLE_BOOT, FASHION_SNEAKER
from lwgen.eval.conditional import balanced_precision_recall
from lwgen.eval.judge import as_data_config, load_or_train_judge
from lwgen.eval.metrics import frechet_distance
from lwgen.families import cyclegan_core as core
from lwgen.families.cyclegan_export import bundle_fields, bundle_translators, export_specs
from lwgen.families.cyclegan_student import make_student_trainer
from lwgen.families.registry import Family, Restored, Trainer, register

GRID_COLUMNS = 8
CHUNK = 250
Translate = Callable[[np.ndarray], np.ndarray]


def chunked(fn: Translate, chunk: int = CHUNK) -> Translate:
    """``fn`` applied in zero-padded chunks of ``chunk`` rows (one compiled shape)."""

    def run(images: np.ndarray) -> np.ndarray:
        outs = []
        for start in range(0, len(images), chunk):
            part = images[start : start + chunk]
            padded = np.pad(part, [(0, chunk - len(part))] + [(0, 0)] * (part.ndim - 1))
            outs.append(np.asarray(fn(padded))[: len(part)])
        return np.concatenate(outs)

    return run


def jax_translators(config: ml_collections.ConfigDict, variables) -> dict[str, Translate]:
    """``{"a2b": G, "b2a": F}`` as numpy functions of float32 ``[N, H, W, C]`` images."""
    nets = core.modules(config)
    out = {}
    for direction, (name, *_) in core.DIRECTIONS.items():
        apply = jax.jit(functools.partial(nets[name].apply, variables[name]))
        out[direction] = chunked(apply)
    return out


def heldout_images(data_config) -> dict[str, np.ndarray]:
    """``{"a", "b"}``: the held-out images of each domain, float32 ``[N, H, W, C]`` in [-1, 1]."""
    source = load_source(data_config, "heldout")
    return {domain: to_unit_range(source.center(domain)) for domain in ("a", "b")}


def sample_grid(config: ml_collections.ConfigDict, variables) -> tuple[np.ndarray, int]:
    """Six rows of ``GRID_COLUMNS`` held-out images: A, G(A), F(G(A)), B, F(B), G(F(B))."""
    translate = jax_translators(config, variables)
    images = heldout_images(config.data)
    rows = []
    for domain, forward, back in (("a", "a2b", "b2a"), ("b", "b2a", "a2b")):
        x = images[domain][:GRID_COLUMNS]
        y = translate[forward](x)
        rows += [x, y, translate[back](y)]
    return np.concatenate(rows), len(rows)


def judge_data_config(data_config) -> ml_collections.ConfigDict | None:
    """The Fashion-MNIST judge's data config for a ``fashion_unpaired`` source, else None."""
    if data_config.get("source", None) != "fashion_unpaired":
        return None
    return as_data_config(
        dict(
            source="fashion_mnist_idx",
            image_size=int(data_config.image_size),
            channels=int(data_config.channels),
            data_dir=data_config.get("data_dir", None),
            heldout_fraction=0.2,
            path=None,
        )
    )


def domain_classes(data_config) -> dict[str, int]:
    """``{"a": class_a, "b": class_b}`` of a ``fashion_unpaired`` source."""
    return {
        "a": int(data_config.get("class_a", FASHION_SNEAKER)),
        "b": int(data_config.get("class_b", FASHION_ANKLE_BOOT)),
    }


def _judged(judge, data_config, images, outputs) -> dict[str, float]:
    """Target rates and Fréchet distances of the translations, plus the real references."""
    classes = domain_classes(data_config)
    train = load_source(data_config, "train")
    metrics = {}
    for domain in ("a", "b"):
        real = judge.features(images[domain])
        count = len(images[domain])
        floor = to_unit_range(train.center(domain)[:count])
        metrics[f"real_{domain}_target_rate"] = float(
            np.mean(judge.logits(images[domain]).argmax(1) == classes[domain])
        )
        floor_features = judge.features(floor)
        metrics[f"real_frechet_{domain}"] = frechet_distance(floor_features, real)
        references = balanced_precision_recall(real, floor_features)
        metrics.update({f"real_{name}_{domain}": v for name, v in references.items()})
    for direction, target in (("a2b", "b"), ("b2a", "a")):
        translated = outputs[direction]
        hits = judge.logits(translated).argmax(1) == classes[target]
        metrics[f"{direction}_target_rate"] = float(np.mean(hits))
        real, features = judge.features(images[target]), judge.features(translated)
        metrics[f"{direction}_frechet"] = frechet_distance(features, real)
        scores = balanced_precision_recall(real, features)
        metrics.update({f"{direction}_{name}": value for name, value in scores.items()})
    return metrics


def score_translators(
    translate: dict[str, Translate], data_config, cache_dir: str | None = None
) -> dict[str, float | int]:
    """The metrics of the module docstring for ``{"a2b", "b2a"}`` translators on the held-out
    images of ``data_config``."""
    images = heldout_images(data_config)
    outputs, metrics = {}, {}
    for direction, source, back in (("a2b", "a", "b2a"), ("b2a", "b", "a2b")):
        outputs[direction] = np.clip(translate[direction](images[source]), -1.0, 1.0)
        reconstructed = translate[back](outputs[direction])
        metrics[f"{direction}_cycle_l1"] = float(np.mean(np.abs(reconstructed - images[source])))
    judge_config = judge_data_config(data_config)
    if judge_config is not None:
        judge = load_or_train_judge(judge_config, cache_dir)
        metrics.update(_judged(judge, data_config, images, outputs))
    metrics["num_images"] = int(len(images["a"]) + len(images["b"]))
    return metrics


def evaluate(restored: Restored, per_class: int = 0, cache_dir: str | None = None) -> dict:
    """`score_translators` of the workdir's generators in JAX (``per_class`` is unused: every
    held-out image is translated)."""
    del per_class
    return score_translators(
        jax_translators(restored.config, restored.variables), restored.config.data, cache_dir
    )


def evaluate_bundle(
    bundle_dir: str, data_config, per_class: int = 0, cache_dir: str | None = None
) -> dict:
    """`evaluate` for an exported bundle: its two TFLite generators on the same images."""
    del per_class
    return score_translators(bundle_translators(bundle_dir), data_config, cache_dir)


def cyclegan_config(
    source: str = "fashion_unpaired",
    image_shape: tuple[int, int, int] = (32, 32, 1),
    base_width: int = 16,
    num_blocks: int = 6,
) -> ml_collections.ConfigDict:
    """A complete CycleGAN config that experiment files adjust.

    Defaults after Zhu et al. 2017 (§4, App. 7.2): ResNet generators with instance norm, a
    PatchGAN scaled to the image size (34×34 receptive field at 32² with two stride-2 layers),
    λ = 10, identity 0.5 λ, a pool of 50, Adam 2e-4 with β₁ = 0.5.

    Args:
      source: ``config.data.source`` (``"fashion_unpaired"``, ``"unpaired_folder"``,
        ``"cycle_gan_tfds"``).
      image_shape: ``(H, W, C)``.
      base_width: the generator's ``c7s1-k`` width and the discriminator's first width.
      num_blocks: residual blocks of the generator.
    """
    none_str = functools.partial(ml_collections.FieldReference, None, field_type=str)
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_train_steps = 2000
    config.batch_size = 8
    size = image_shape[0]
    num_layers = max(1, min(3, int(np.log2(size)) - 3))
    config.model = dict(
        family="cyclegan",
        generator=dict(kind="resnet", base_width=base_width, width_mult=1.0,
                       num_blocks=num_blocks, num_downs=5, norm="instance", separable=False,
                       separable_sampling=False),
        discriminator=dict(base_width=base_width, width_mult=1.0, num_layers=num_layers,
                           norm="instance"),
    )  # fmt: skip
    config.data = dict(source=source, image_size=size, channels=image_shape[2],
                       load_size=ml_collections.FieldReference(None, field_type=int),
                       flip=False, class_a=FASHION_SNEAKER, class_b=FASHION_ANKLE_BOOT,
                       data_dir=none_str(), path=none_str(), tfds_name=none_str(),
                       heldout_fraction=0.2)  # fmt: skip
    config.cycle = dict(cycle_weight=10.0, identity_weight=0.5, pool_size=50)
    config.optim = dict(lr=2e-4, b1=0.5, b2=0.999)
    config.train = dict(log_every=50, checkpoint_every=500, keep_checkpoints=2, sample_every=500)
    config.export = dict(quant="int8", num_calibration=256, batch=1, min_psnr=18.0)
    return config


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
    """The CycleGAN `Trainer` of ``config``, or the GAN Compression student's when it has a
    ``teacher`` group."""
    if "teacher" in config:
        return make_student_trainer(config)
    return core.make_teacher_trainer(config)


FAMILY = register(
    Family(
        name="cyclegan",
        validate_config=core.validate_config,
        make_trainer=make_trainer,
        inference_shapes=core.inference_shapes,
        sample_grid=sample_grid,
        evaluate=evaluate,
        export_specs=export_specs,
        bundle_fields=bundle_fields,
        evaluate_bundle=evaluate_bundle,
    )
)
