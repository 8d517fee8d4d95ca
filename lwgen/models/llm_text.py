"""The LLM text encoder of the seed's "LLaMA embeddings" path: a Hugging Face Llama model from a
local folder, its hidden states pooled into a prompt embedding.

Needs the optional ``llm`` extra (``transformers``, its Flax Llama, which runs on JAX without
PyTorch). Nothing is downloaded: ``path`` is a folder the user provides with ``config.json``,
Flax weights (``flax_model.msgpack``, as ``FlaxLlamaModel.save_pretrained`` writes them) and
``tokenizer.json``. The prompt embedding is the masked mean of the last hidden states, L2
normalised (the pooling of ``lwgen.models.text.mean_pool``; Touvron et al. 2023, "LLaMA", for
the network). Its bundle carries a table of prompt embeddings (no TFLite encoder).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from lwgen.errors import ConfigError, MissingFileError
from lwgen.io import file_sha256
from lwgen.models.text import TextEncoder, make_tokenize

LLM_FILES = ("config.json", "flax_model.msgpack", "tokenizer.json")
LLM_INSTALL = "pip install transformers==4.57.3 (the lwgen[llm] extra)"


def load_llama(path: str | None, max_tokens: int) -> TextEncoder:
    """A local Llama folder as a `TextEncoder` (``dim`` = its hidden size).

    Args:
      path: folder with ``LLM_FILES`` (``data.captions.encoder_path``).
      max_tokens: tokens per prompt (padded with id 0, masked).

    Raises:
      ConfigError: if ``path`` is unset or ``transformers`` is not installed.
      MissingFileError: if the folder or one of its files is missing.
    """
    if not path:
        raise ConfigError("the llama text encoder needs data.captions.encoder_path (a folder)")
    missing = [f for f in LLM_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise MissingFileError(f"Llama folder {path!r} lacks {missing}")
    try:
        from transformers import FlaxLlamaModel
    except ImportError as e:
        raise ConfigError(f"the llama text encoder needs transformers: {LLM_INSTALL}") from e
    model = FlaxLlamaModel.from_pretrained(path, local_files_only=True)
    with open(os.path.join(path, "tokenizer.json")) as f:
        tokenizer_json = f.read()

    def states_fn(params, input_ids, mask):
        out = model(
            jnp.asarray(input_ids), attention_mask=jnp.asarray(mask, jnp.int32), params=params
        )
        return out.last_hidden_state

    digest = "".join(file_sha256(os.path.join(path, f)) for f in LLM_FILES)
    return TextEncoder(
        name="llama",
        dim=int(model.config.hidden_size),
        max_tokens=max_tokens,
        tokenize=make_tokenize(tokenizer_json, max_tokens),
        states_fn=states_fn,
        variables=model.params,
        checksum=f"{digest}mean:{max_tokens}",
        tokenizer_json=tokenizer_json,
        num_params=int(sum(np.size(x) for x in jax.tree.leaves(model.params))),
    )


def write_tiny_llama(out_dir: str, tokenizer_json: str, hidden: int = 32, seed: int = 0) -> str:
    """Writes a randomly initialised 2-layer Llama folder (``LLM_FILES``) for plumbing tests and
    the text report's Llama row (it encodes nothing meaningful). Made once per folder.

    Args:
      out_dir: the folder to write.
      tokenizer_json: a ``tokenizers`` file's text; the vocabulary size follows it.
      hidden: hidden size (the embedding size D).
      seed: initialisation seed.

    Returns:
      ``out_dir``.
    """
    import tokenizers
    from transformers import FlaxLlamaModel, LlamaConfig

    if all(os.path.isfile(os.path.join(out_dir, f)) for f in LLM_FILES):
        return out_dir
    vocab = tokenizers.Tokenizer.from_str(tokenizer_json).get_vocab_size()
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    FlaxLlamaModel(config, seed=seed).save_pretrained(out_dir)
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        f.write(tokenizer_json)
    return out_dir
