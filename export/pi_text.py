"""Prompt -> image on the device for ``textgan`` bundles (used by ``export/pi_infer.py``; keep the
two files side by side). Needs numpy, Pillow and a LiteRT interpreter, plus the ``tokenizers``
package only for bundles that carry the TFLite text encoder.

A prompt is tokenized with the bundle's ``tokenizer.json`` (WordPiece, lower-case, padded to the
bundle's ``max_tokens``), encoded by ``text_encoder.tflite`` (sentence embedding, and token states
for cross-attention), then ``generator.tflite`` maps ``(z, text[, tokens, token_mask])`` to
images. A bundle with a prompt table (``fields.text_source == "table"``) looks the prompt up
instead; an unknown prompt is an error listing the known ones (exit 2).

    python export/pi_infer.py --bundle B --prompt "a handwritten seven" \\
        [--prompt "the numeral 3" ...] --num 8 --out grid.png [--benchmark K]

Each prompt is one row of the grid, written at the row's left.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

TOKENIZER_FILE = "tokenizer.json"
TOKENIZERS_HINT = "pip install tokenizers==0.22.1"
CAPTION_WIDTH_PX = 200


def load_tokenizer(bundle_dir: str, entry: dict[str, Any], max_tokens: int, pi: ModuleType):
    """``prompts -> (input_ids int32 [N, L], mask float32 [N, L])`` from the bundle's verified
    ``tokenizer.json``.

    Raises:
      ValueError: if ``tokenizers`` is not installed or the file is missing or altered.
    """
    try:
        import tokenizers
    except ImportError as e:
        raise ValueError(
            f"this bundle's text encoder needs the tokenizers package: {TOKENIZERS_HINT}"
        ) from e
    sha256 = entry.get("extra_files", {}).get(TOKENIZER_FILE)
    if sha256 is None:
        raise ValueError(f"bundle.json: model 'text_encoder' lists no {TOKENIZER_FILE}")
    tokenizer = tokenizers.Tokenizer.from_str(
        pi._verified_bytes(Path(bundle_dir) / TOKENIZER_FILE, sha256).decode()
    )
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(length=max_tokens)

    def tokenize(prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = tokenizer.encode_batch(prompts)
        ids = np.array([e.ids for e in encodings], np.int32)
        return ids, np.array([e.attention_mask for e in encodings], np.float32)

    return tokenize


def table_encoder(fields: dict[str, Any]):
    """``prompts -> {input name: float32 [N, ...]}`` from the bundle's prompt table.

    Raises:
      ValueError: for a prompt not in the table, listing the known prompts.
    """
    table = fields["prompt_table"]

    def encode(prompts: list[str]) -> dict[str, np.ndarray]:
        unknown = [p for p in prompts if p not in table]
        if unknown:
            known = "; ".join(sorted(table))
            raise ValueError(f"prompt {unknown[0]!r} is not in the bundle's table: {known}")
        return {
            k: np.asarray([table[p][k] for p in prompts], np.float32) for k in table[prompts[0]]
        }

    return encode


def prompt_encoder(args, metadata: dict[str, Any], pi: ModuleType):
    """``prompts -> generator inputs`` (``text``, ``tokens``, ``token_mask``) and the encoder
    model (None for a table bundle)."""
    fields = metadata["fields"]
    if fields["text_source"] == "table":
        return table_encoder(fields), None
    entry = metadata["models"].get("text_encoder")
    if entry is None:
        raise ValueError("bundle.json: a 'tflite' text bundle needs the model 'text_encoder'")
    tokenize = load_tokenizer(args.bundle, entry, int(fields["max_tokens"]), pi)
    encoder = pi.open_model(args, metadata, "text_encoder", entry)

    def encode(prompts: list[str]) -> dict[str, np.ndarray]:
        ids, mask = tokenize(prompts)
        out = encoder.run(input_ids=ids, mask=mask)
        return {
            "text": out["embedding"],
            "token_mask": mask,
            **({"tokens": out["tokens"]} if "tokens" in out else {}),
        }

    return encode, encoder


def caption_rows(grid: Image.Image, prompts: list[str]) -> Image.Image:
    """The grid with each row's prompt written in a white band at its left."""
    out = Image.new("RGB", (grid.width + CAPTION_WIDTH_PX, grid.height), "white")
    out.paste(grid.convert("RGB"), (CAPTION_WIDTH_PX, 0))
    draw, row_height = ImageDraw.Draw(out), grid.height / len(prompts)
    for i, prompt in enumerate(prompts):
        draw.text((4, int((i + 0.5) * row_height) - 5), prompt[:32], fill="black")
    return out


def _time_ms(fn, k: int) -> float:
    fn()
    times = []
    for _ in range(k):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def text_generator(args, metadata: dict[str, Any], pi: ModuleType) -> None:
    """The ``textgan`` path of ``pi_infer``: ``--prompt`` (repeatable) → ``--num`` images each,
    as a grid with each row's prompt (``--out``) and, with ``--npy``, the uint8 images."""
    prompts = [p.strip() for p in (args.prompt or [])]
    if not prompts or not all(prompts):
        raise ValueError('a textgan bundle needs --prompt "..." (non-empty, repeatable)')
    fields = metadata["fields"]
    names = fields["generator_inputs"]
    encode, encoder = prompt_encoder(args, metadata, pi)
    generator = pi.open_model(args, metadata, "generator", metadata["models"]["generator"])
    cond = encode(prompts)
    rows = np.repeat(np.arange(len(prompts)), args.num)
    z = np.random.default_rng(args.seed).standard_normal(
        (len(rows), fields["latent_dim"]), np.float32
    )
    inputs = {"z": z, **{k: v[rows] for k, v in cond.items()}}
    (images,) = generator.run(**{n: inputs[n] for n in names}).values()
    images = pi.to_uint8(pi.upscaled(args, images))  # --upscale UPSCALER_BUNDLE, if given
    grid = caption_rows(pi.make_grid(images, len(prompts), args.scale), prompts)
    pi.atomic_write(args.out, lambda f: grid.save(f, format="PNG"))
    print(
        f"wrote {args.out}: {len(prompts)} prompts x {args.num} samples, {grid.width}x{grid.height}"
    )
    if args.npy:
        pi.save_npy(args.npy, images, prompts=np.asarray(prompts)[rows])
    if args.benchmark:
        encode_ms = _time_ms(lambda: encode(prompts[:1]), args.benchmark) if encoder else 0.0
        one = {n: inputs[n][:1] for n in names}
        generate_ms = _time_ms(lambda: generator.run_batch(**generator.pad(**one)), args.benchmark)
        print(
            f"benchmark: {args.benchmark} runs, {args.threads} thread(s): encoder "
            f"{encode_ms:.3f} ms/prompt, generator {generate_ms:.3f} ms/image, "
            f"total {encode_ms + generate_ms:.3f} ms/prompt"
        )
