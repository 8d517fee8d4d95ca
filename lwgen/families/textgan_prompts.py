"""What the ``textgan`` family's training, evaluation and export share: the generator module, the
caption cache, and generator inputs drawn for prompts.

Generator inputs for a list of caption rows of the `CaptionTable` are ``z ~ N(0, I)`` from
``numpy.random.default_rng([seed, stream])`` plus each row's cached ``text``, ``tokens`` and
``token_mask``: sampling, evaluation, export calibration (stream 0) and verification (stream 1)
all draw them here.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from lwgen.data.captions import (
    CaptionTable,
    cache_path,
    read_cache,
    table_captions,
    write_cache,
)
from lwgen.errors import ConfigError, DataError
from lwgen.models.text import TextEncoder, load_minilm
from lwgen.models.text_gan import TextGenerator

COND_KEYS = ("text", "tokens", "token_mask")


ENCODERS = ("minilm", "llama")


def load_text_encoder(name: str, path: str | None, max_tokens: int) -> TextEncoder:
    """The `TextEncoder` called ``name``: ``"minilm"`` (`load_minilm`; ``path`` None for the
    installed package) or ``"llama"`` (``lwgen.models.llm_text.load_llama``, ``path`` a local
    Hugging Face Llama folder; needs the ``llm`` extra).

    Raises:
      ConfigError: for another name; MissingFileError: for a missing model.
    """
    if name == "minilm":
        return load_minilm(path, max_tokens)
    if name == "llama":
        from lwgen.models.llm_text import load_llama  # transformers only for this encoder

        return load_llama(path, max_tokens)
    raise ConfigError(f"text encoder {name!r} is not one of {ENCODERS}")


def generator_module(config: ml_collections.ConfigDict) -> TextGenerator:
    """``TextGenerator(**config.model.generator)`` (``axis_name=None``)."""
    kwargs = config.model.generator.to_dict()
    return TextGenerator(**{**kwargs, "image_shape": tuple(kwargs["image_shape"])})


def ensure_caption_cache(data_config) -> tuple[CaptionTable, bool]:
    """The data set's caption table, reused from the cache when the file checks out and was made
    by this encoder (same checksum) from the same captions; else encoded now and written.

    Returns:
      ``(table, reused)``.

    Raises:
      MissingFileError: if the encoder or a caption file is missing.
    """
    c = data_config.captions
    path = cache_path(data_config)
    encoder = load_text_encoder(c.encoder, c.encoder_path, int(c.max_tokens))
    captions, splits, owners = table_captions(data_config)
    if os.path.isfile(path):
        try:
            table = read_cache(path)
            if table.encoder_checksum == encoder.checksum and table.captions.tolist() == captions:
                return table, True
        except DataError:
            pass  # a corrupt cache is rebuilt below
    embeddings, tokens, mask = encoder.encode_all(captions)
    table = CaptionTable(
        np.array(captions), np.array(splits), np.array(owners, np.int32), embeddings, tokens,
        mask, encoder.checksum,
    )  # fmt: skip
    write_cache(path, table)
    return table, False


def cached_table(data_config) -> CaptionTable:
    """The caption table of ``data_config``, built first if needed (`ensure_caption_cache`)."""
    return ensure_caption_cache(data_config)[0]


def cycled_rows(rows_per_class: list[list[int]], per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` table rows per class, cycling through the class's captions, in class order.

    Returns:
      ``(rows int64 [K · per_class], labels int32 [K · per_class])``.

    Raises:
      DataError: if a class has no caption.
    """
    if not all(rows_per_class):
        raise DataError("every class needs at least one caption")
    rows = [np.resize(np.asarray(r), per_class) for r in rows_per_class]
    labels = np.repeat(np.arange(len(rows), dtype=np.int32), per_class)
    return np.concatenate(rows), labels


def prompt_inputs(
    table: CaptionTable, rows: np.ndarray, latent_dim: int, seed: int, stream: int = 0
) -> dict[str, np.ndarray]:
    """Generator inputs for table ``rows``: ``z`` float32 ``[N, latent_dim]`` and the rows'
    ``text [N, D]``, ``tokens [N, L, D]``, ``token_mask [N, L]``."""
    rng = np.random.default_rng([seed, stream])
    z = rng.standard_normal((len(rows), latent_dim), dtype=np.float32)
    return {
        "z": z,
        "text": table.embeddings[rows],
        "tokens": table.tokens[rows],
        "token_mask": table.token_mask[rows],
    }


def generator_inputs(generator: TextGenerator) -> tuple[str, ...]:
    """The generator's named inputs: ``z``, ``text`` and, for cross-attention, the tokens."""
    if generator.fusion == "cross_attention":
        return ("z", *COND_KEYS)
    return ("z", "text")
