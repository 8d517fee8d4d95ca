"""The ``textgan`` family's sample grid, prompt evaluation, export specs and bundle.

Evaluation (`score_prompts`) generates ``per_class`` images per class from the held-out paraphrase
prompts and from the training-template prompts (cycling through each class's captions) and
scores both with the data set's judge (``lwgen.eval.judge``): class accuracy, and the Fréchet
distance (Heusel et al. 2017, eq. 2) to the real held-out images in the judge's features; the
difference of the two accuracies is the generalisation gap. A JAX generator reads the prompts'
cached encodings; a bundle encodes them with its own TFLite text encoder (the Pi path).

The bundle holds ``generator`` (INT8, inputs ``z``, ``text`` and for cross-attention ``tokens``,
``token_mask``) and either ``text_encoder`` (TFLite at ``export.encoder_quant``, inputs
``input_ids`` int32 and ``mask``, with ``tokenizer.json``; ``export.text_encoder = "tflite"``) or
a table of precomputed prompt encodings in ``bundle.json`` (``"table"``, for devices without
the encoder and for the Llama encoder).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from lwgen.data.captions import base_data_config, prompt_rows
from lwgen.errors import ConfigError, DataError
from lwgen.eval.conditional import balanced_precision_recall, real_reference
from lwgen.eval.judge import load_or_train_judge
from lwgen.eval.metrics import class_accuracy, frechet_distance
from lwgen.export.spec import ExportSpec, TensorSpec
from lwgen.families.registry import Restored
from lwgen.families.textgan_prompts import (
    COND_KEYS,
    cached_table,
    cycled_rows,
    generator_inputs,
    generator_module,
    load_text_encoder,
    prompt_inputs,
)
from lwgen.models.text import mean_pool

G, ENCODER = "generator", "text_encoder"
GRID_PER_ROW = 8
CHUNK = 250
TABLE_DIGITS = 5


def example_inputs(config, num: int, seed: int) -> tuple[tuple, dict]:
    """``((z, text[, tokens, token_mask]), {"train": False})`` for ``num`` training captions."""
    generator, table = generator_module(config), cached_table(config.data)
    inputs = prompt_inputs(table, np.resize(table.select("train"), num), generator.latent_dim, seed)
    return tuple(inputs[n] for n in generator_inputs(generator)), {"train": False}


def _jax_generate(config, variables):
    """``inputs dict -> images float32 [N, H, W, C]`` with the JAX generator (jitted)."""
    generator = generator_module(config)
    names = generator_inputs(generator)
    apply = jax.jit(functools.partial(generator.apply, variables[G]))
    return lambda inputs: np.asarray(apply(*(jnp.asarray(inputs[n]) for n in names)))


def sample_grid(config, variables) -> tuple[np.ndarray, int]:
    """``GRID_PER_ROW`` samples of the first training caption of each class (at most 10 rows)."""
    table = cached_table(config.data)
    firsts = [rows[0] for rows in prompt_rows(table, "train", 10) if rows]
    rows = np.repeat(firsts, GRID_PER_ROW)
    latent_dim = config.model.generator.latent_dim
    return _jax_generate(config, variables)(prompt_inputs(table, rows, latent_dim, 0)), len(firsts)


def sample(config, variables, labels: np.ndarray, seed: int) -> np.ndarray:
    """One EMA-generator image per label (``Family.sample``, e.g. for the embedding projector),
    sample ``i`` from held-out paraphrase ``i mod n_k`` of its class ``k``: float32
    ``[len(labels), H, W, C]`` in [-1, 1].

    Raises:
      DataError: if a requested class has no held-out caption.
    """
    table, labels = cached_table(config.data), np.asarray(labels)
    per_class = prompt_rows(table, "heldout", int(labels.max()) + 1)
    if not all(per_class[k] for k in np.unique(labels)):
        raise DataError("every sampled class needs a held-out caption")
    rows = np.asarray([per_class[k][i % len(per_class[k])] for i, k in enumerate(labels)])
    inputs = prompt_inputs(table, rows, config.model.generator.latent_dim, seed)
    return np.clip(_jax_generate(config, variables)(inputs), -1.0, 1.0)


def _generate_rows(generate, z: np.ndarray, cond: dict, inverse: np.ndarray) -> np.ndarray:
    """Images for ``z`` and the encodings ``cond[inverse]``, in fixed chunks of ``CHUNK``."""
    out = []
    for start in range(0, len(z), CHUNK):
        part = np.arange(start, min(start + CHUNK, len(z)))
        padded = np.resize(part, CHUNK)
        inputs = {"z": z[padded], **{k: v[inverse[padded]] for k, v in cond.items()}}
        out.append(np.clip(generate(inputs)[: len(part)], -1.0, 1.0))
    return np.concatenate(out)


def score_prompts(encode, generate, latent_dim: int, data_config, per_class: int, cache_dir=None):
    """Class accuracy, Fréchet distance, precision and recall (Kynkäänniemi et al. 2019, k = 3)
    of images from held-out and training prompts.

    Args:
      encode: ``prompts -> {"text" [U, D], "tokens" [U, L, D], "token_mask" [U, L]}``.
      generate: ``{"z", "text", ...} -> images float32 [N, H, W, C]`` in [-1, 1].
      latent_dim: size of ``z``.
      data_config: the ``data`` group (captions of a labelled source).
      per_class: images per class and split (≥ 2).
      cache_dir: judge cache folder.

    Returns:
      ``{"heldout_class_accuracy", "heldout_frechet_distance", "heldout_precision",
      "heldout_recall", "train_*" (the same four), "generalisation_gap",
      "judge_heldout_accuracy", "real_frechet_distance", "real_precision", "real_recall",
      "num_samples"}``.

    Raises:
      ConfigError: for JSONL captions (no classes to judge).
    """
    if data_config.captions.base == "jsonl":
        raise ConfigError("prompt evaluation needs a labelled caption source, not 'jsonl'")
    table, base = cached_table(data_config), base_data_config(data_config)
    judge = load_or_train_judge(base, cache_dir)
    heldout_features, references = real_reference(judge, base, per_class)
    metrics = {"judge_heldout_accuracy": judge.heldout_accuracy}
    for split in ("heldout", "train"):
        rows, labels = cycled_rows(prompt_rows(table, split, judge.module.num_classes), per_class)
        unique, inverse = np.unique(table.captions[rows], return_inverse=True)
        z = np.random.default_rng([0, 0]).standard_normal((len(rows), latent_dim), np.float32)
        images = _generate_rows(generate, z, encode(unique.tolist()), inverse)
        metrics[f"{split}_class_accuracy"] = class_accuracy(judge.logits(images), labels)
        features = judge.features(images)
        metrics[f"{split}_frechet_distance"] = frechet_distance(features, heldout_features)
        scores = balanced_precision_recall(heldout_features, features)
        metrics.update({f"{split}_{name}": value for name, value in scores.items()})
    metrics["generalisation_gap"] = (
        metrics["train_class_accuracy"] - (metrics["heldout_class_accuracy"])
    )
    return {**metrics, **references, "num_samples": int(len(rows))}


def _table_encode(table):
    """``prompts -> cached encodings`` of prompts in the caption table."""
    index = {c: i for i, c in enumerate(table.captions.tolist())}

    def encode(prompts):
        rows = np.asarray([index[p] for p in prompts])
        return {k: getattr(table, k if k != "text" else "embeddings")[rows] for k in COND_KEYS}

    return encode


def evaluate(restored: Restored, per_class: int = 100, cache_dir: str | None = None) -> dict:
    """`score_prompts` of the EMA generator on the cached prompt encodings."""
    config = restored.config
    return score_prompts(
        _table_encode(cached_table(config.data)),
        _jax_generate(config, restored.variables),
        config.model.generator.latent_dim,
        config.data,
        per_class,
        cache_dir,
    )


def bundle_encode(bundle):
    """``prompts -> encodings`` through a bundle: its TFLite text encoder and tokenizer, or its
    prompt table."""
    from lwgen.export.runtime import TFLiteRunner
    from lwgen.models.text import make_tokenize

    fields = bundle.metadata["fields"]
    if fields["text_source"] == "table":
        table = fields["prompt_table"]
        return lambda prompts: {
            k: np.asarray([table[p][k] for p in prompts], np.float32) for k in table[prompts[0]]
        }
    runner = TFLiteRunner.from_bundle(bundle, ENCODER)
    with open(os.path.join(bundle.directory, "tokenizer.json")) as f:
        tokenize = make_tokenize(f.read(), int(fields["max_tokens"]))

    def encode(prompts):
        ids, mask = tokenize(prompts)
        out = runner(input_ids=ids, mask=mask)
        tokens = {"tokens": out["tokens"]} if "tokens" in out else {}
        return {"text": out["embedding"], "token_mask": mask, **tokens}

    return encode


def evaluate_bundle(bundle_dir, data_config, per_class: int = 100, cache_dir=None) -> dict:
    """`score_prompts` through a bundle: TFLite encoder (or table) and INT8 generator."""
    from lwgen.export.bundle import load_bundle
    from lwgen.export.runtime import TFLiteRunner

    bundle = load_bundle(bundle_dir)
    fields = bundle.metadata["fields"]
    generator = TFLiteRunner.from_bundle(bundle, G)
    names = fields["generator_inputs"]

    def generate(inputs):
        return generator(**{n: inputs[n] for n in names})["image"]

    return score_prompts(
        bundle_encode(bundle), generate, fields["latent_dim"], data_config, per_class, cache_dir
    )


def _generator_spec(restored: Restored, table) -> ExportSpec:
    generator = generator_module(restored.config)
    names = generator_inputs(generator)
    length, dim = table.token_mask.shape[1], generator.text_dim
    shapes = {"z": (generator.latent_dim,), "text": (dim,), "tokens": (length, dim)}
    shapes["token_mask"] = (length,)

    def fn(variables, **inputs):
        return {"image": generator.apply(variables, *(inputs[n] for n in names), train=False)}

    def samples(num, seed, stream):
        rows = np.random.default_rng([seed, stream, 3]).integers(0, len(table.captions), num)
        inputs = prompt_inputs(table, rows, generator.latent_dim, seed, stream)
        return {n: inputs[n] for n in names}

    inputs = tuple(TensorSpec(n, shapes[n]) for n in names)
    return ExportSpec(G, fn, restored.variables[G], inputs, ("image",), samples)


def encoder_spec(config, table, with_tokens: bool) -> ExportSpec:
    """The ``text_encoder`` model: ``(input_ids int32 [B, L], mask f32 [B, L]) -> embedding
    f32 [B, D]`` (and ``tokens [B, L, D]`` ``with_tokens``) at ``export.encoder_quant``, verified
    on the table's captions, shipping ``tokenizer.json``."""
    c = config.data.captions
    encoder = load_text_encoder(c.encoder, c.encoder_path, int(c.max_tokens))
    outputs = ("embedding", "tokens") if with_tokens else ("embedding",)

    def fn(variables, input_ids, mask):
        states = encoder.states_fn(variables, input_ids, mask)
        return dict(zip(outputs, (mean_pool(states, mask), states), strict=False))

    def samples(num, seed, stream):
        rows = np.random.default_rng([seed, stream, 5]).integers(0, len(table.captions), num)
        ids, mask = encoder.tokenize(table.captions[rows].tolist())
        return {"input_ids": ids, "mask": mask}

    length = encoder.max_tokens
    return ExportSpec(
        ENCODER,
        fn,
        encoder.variables,
        (TensorSpec("input_ids", (length,), "int32"), TensorSpec("mask", (length,))),
        outputs,
        samples,
        min_psnr=float(config.export.encoder_min_psnr),
        quant=config.export.encoder_quant,
        files={"tokenizer.json": encoder.tokenizer_json.encode()},
    )


def export_specs(restored: Restored, batch: int = 1) -> list[ExportSpec]:
    """``generator`` and, with ``export.text_encoder = "tflite"``, ``text_encoder``."""
    del batch  # the exporter's static batch does not change the specs
    table = cached_table(restored.config.data)
    specs = [_generator_spec(restored, table)]
    if restored.config.export.text_encoder == "tflite":
        with_tokens = restored.config.model.generator.fusion == "cross_attention"
        specs.append(encoder_spec(restored.config, table, with_tokens))
    return specs


def bundle_fields(restored: Restored) -> dict:
    """Generator shapes and inputs, the encoder, the prompts per class and split, and in table
    mode the prompt table ``{prompt: {input name: nested lists}}``."""
    config, table = restored.config, cached_table(restored.config.data)
    generator = generator_module(config)
    names = generator_inputs(generator)
    fields = {
        "image_shape": [int(d) for d in generator.image_shape],
        "latent_dim": int(generator.latent_dim),
        "text_dim": int(generator.text_dim),
        "fusion": generator.fusion,
        "encoder": config.data.captions.encoder,
        "max_tokens": int(config.data.captions.max_tokens),
        "generator_inputs": list(names),
        "text_source": config.export.text_encoder,
        "prompts": {s: [table.captions[r].tolist() for r in prompt_rows(table, s, 10)]
                    for s in ("train", "heldout")},
    }  # fmt: skip
    if config.export.text_encoder == "table":
        encode = _table_encode(table)
        fields["prompt_table"] = {
            p: {k: np.round(v[0], TABLE_DIGITS).tolist() for k, v in encode([p]).items()
                if k in names}
            for p in table.captions.tolist()
        }  # fmt: skip
    return fields
