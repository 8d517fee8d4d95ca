"""Captioned images for text-conditioned generation: templates, held-out paraphrases, JSONL
captions, and the embedding cache the training data reads.

Labelled sources (``digits``, ``fashion_mnist_idx``) get captions from templates: at least five
training templates per class and at least three held-out paraphrases per class that training
never sees (`class_captions`). A user source is an image folder plus a JSONL file of
``{"file": ..., "caption": ...}`` lines (`read_jsonl_captions`).

Embeddings are computed once per data set and encoder (``lwgen.families.textgan`` does it with
`write_cache`) into one ``.npz`` per (data set, encoder), recorded with the encoder's checksum and
the file's own sha256; training batches only read it (`CaptionSource`), so the encoder never runs
per step. Batches add ``text`` (sentence embedding ``[B, D]``), ``tokens`` (``[B, L, D]``),
``token_mask`` (``[B, L]``) and ``wrong_text`` (a mismatched caption's embedding, for the
matching-aware loss of Reed et al. 2016, §4.1).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Mapping, Sequence

import ml_collections
import numpy as np

from lwgen.data.source import ArraySource, to_unit_range
from lwgen.errors import DataError, MissingFileError
from lwgen.io import atomic_write_bytes, file_sha256

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TRAIN = (
    "a handwritten {w}", "the digit {w}", "a drawing of the number {w}",
    "the number {w} written by hand", "a scanned digit {w}",
)  # fmt: skip
DIGIT_HELDOUT = ("the numeral {d}", "a pen sketch of {w}", "someone wrote {d} on paper")
# Fashion-MNIST training material, written without sight of FASHION_HELDOUT (see
# `class_captions`): per class, names that fit the caption frames, and descriptions by look or
# use. Four names the writer also chose were dropped because they are held-out prompts (up to
# article and plural): "a pair of pants", "a pair of flip-flops", "a chelsea boot",
# "a short leather boot".
FASHION_NAMES = (
    ("a t-shirt", "a tee", "a tank top", "a crop top", "a sleeveless top", "a camisole",
     "a graphic tee", "a singlet"),
    ("a pair of trousers", "a pair of jeans", "a pair of slacks", "a pair of chinos",
     "a pair of leggings", "a pair of sweatpants", "a pair of joggers"),
    ("a pullover", "a sweater", "a jumper", "a knitted sweater", "a sweatshirt",
     "a turtleneck sweater", "a crewneck jumper", "a wool pullover"),
    ("a dress", "a sundress", "a maxi dress", "a cocktail dress", "an evening gown",
     "a shift dress", "a frock", "a wrap dress"),
    ("a coat", "a jacket", "an overcoat", "a raincoat", "a parka", "a trench coat",
     "a winter coat", "a puffer jacket"),
    ("a sandal", "a pair of sandals", "a pair of strappy sandals", "a pair of open-toed sandals",
     "a pair of slides", "a pair of gladiator sandals", "a pair of heeled sandals"),
    ("a shirt", "a button-up shirt", "a button-down shirt", "a collared shirt", "a blouse",
     "a flannel shirt", "a checked shirt", "an oxford shirt"),
    ("a sneaker", "a pair of sneakers", "a pair of trainers", "a running shoe",
     "a pair of tennis shoes", "a pair of athletic shoes", "a pair of plimsolls",
     "a low-top sneaker"),
    ("a bag", "a handbag", "a purse", "a tote bag", "a backpack", "a shoulder bag",
     "a clutch bag", "a satchel"),
    ("an ankle boot", "a pair of ankle boots", "an ankle bootie", "a pair of chukka boots",
     "a heeled ankle boot", "a lace-up ankle boot"),
)  # fmt: skip
FASHION_DESCRIPTIONS = (
    ("a short-sleeved casual cotton top", "a collarless top with short sleeves",
     "a sleeveless top for warm weather", "a basic top without buttons",
     "a light top for hot days", "a casual top with a printed logo"),
    ("long pants covering both legs", "legwear reaching down to the ankles",
     "something worn on the legs", "denim worn from waist to ankle",
     "two long legs and a waistband", "clothing for the lower body"),
    ("a warm knitted top with long sleeves", "a cosy woollen top for winter",
     "knitwear pulled on over the head", "a thick top for cold days",
     "something knitted to keep you warm", "a chunky knit for chilly weather"),
    ("a one-piece garment with a skirt", "a women's outfit from shoulders to knees",
     "an elegant outfit for a party", "a flowing garment worn by women",
     "top and skirt in one piece", "a long flowing summer outfit"),
    ("outerwear to keep out the cold", "something warm to wear outside",
     "a heavy long-sleeved outer layer", "a zip-up layer for cold weather",
     "a buttoned outer garment for winter", "a warm layer worn over clothes"),
    ("open footwear with straps", "a strappy shoe for the beach",
     "summer footwear that shows the toes", "a shoe with open toes", "footwear for hot weather",
     "a flat sole held on with straps"),
    ("a collared top with front buttons", "a long-sleeved top with a collar",
     "a smart buttoned top for work", "formal office wear for the torso",
     "a plaid long-sleeved top with buttons", "a crisp buttoned top with cuffs"),
    ("a sporty shoe with laces", "footwear for running and sports",
     "a casual lace-up sports shoe", "comfortable shoes for the gym",
     "a rubber-soled athletic shoe", "a low casual shoe with laces"),
    ("something to carry your things in", "an accessory with handles for carrying",
     "a leather accessory with a strap", "a container carried on the shoulder",
     "something to hold a wallet and keys", "a carryall with a zip"),
    ("footwear that covers the ankle", "a short boot for autumn",
     "a sturdy shoe rising above the ankle", "a heeled shoe covering the ankle",
     "winter footwear reaching above the ankle", "chunky leather footwear for cold weather"),
)  # fmt: skip
FASHION_FRAMES = (
    "a photo of {x}", "a picture of {x}", "a product photo of {x}",
    "{x} on a black background", "a grayscale image of {x}", "a small low-resolution photo of {x}",
)  # fmt: skip
FASHION_HELDOUT = (
    ("a short-sleeved tee", "a cotton top with a round neck", "a casual summer top"),
    ("a pair of pants", "long jeans", "slacks for the office"),
    ("a warm knitted sweater", "a wool jumper", "a long-sleeved knit"),
    ("an elegant gown", "a summer frock", "a one-piece dress for a party"),
    ("a winter jacket", "a warm overcoat", "a parka with buttons"),
    ("an open summer shoe with straps", "a flip-flop", "a strappy beach shoe"),
    ("a button-up blouse", "a collared office top", "a long-sleeved dress shirt"),
    ("a sporty running shoe", "a trainer for the gym", "a canvas athletic shoe"),
    ("a leather handbag", "a tote for shopping", "a purse with a handle"),
    ("a short leather boot", "a chelsea boot", "a boot that covers the ankle"),
)
SPLITS = ("train", "heldout")
DEFAULT_CACHE_DIR = "~/.cache/lwgen/captions"


def class_captions(source: str, split: str) -> list[list[str]]:
    """The caption templates of a labelled source, filled in per class.

    Digits: five templates around the digit's word. Fashion-MNIST: every frame around every name
    of the class, plus its descriptions (``FASHION_NAMES``, ``FASHION_FRAMES``,
    ``FASHION_DESCRIPTIONS``). Held-out: three paraphrases per class.

    Args:
      source: ``"digits"`` or ``"fashion_mnist_idx"``.
      split: ``"train"`` (training templates) or ``"heldout"`` (paraphrases training never sees).

    Returns:
      One list of captions per class (10 classes).

    Raises:
      DataError: for a source without templates or an unknown split.
    """
    if split not in SPLITS:
        raise DataError(f"caption split must be one of {SPLITS}, got {split!r}")
    if source == "digits":
        templates = DIGIT_TRAIN if split == "train" else DIGIT_HELDOUT
        return [[t.format(w=w, d=d) for t in templates] for d, w in enumerate(DIGIT_WORDS)]
    if source == "fashion_mnist_idx":
        if split == "train":
            return [
                [f.format(x=n) for f in FASHION_FRAMES for n in names] + list(descriptions)
                for names, descriptions in zip(FASHION_NAMES, FASHION_DESCRIPTIONS, strict=True)
            ]
        return [list(c) for c in FASHION_HELDOUT]
    raise DataError(f"no caption templates for data.source {source!r} (digits, fashion_mnist_idx)")


def read_jsonl_captions(jsonl: str, folder: str) -> tuple[list[str], list[str]]:
    """Reads a JSONL caption file for an image folder.

    Args:
      jsonl: a file with one ``{"file": name relative to folder, "caption": text}`` per line.
      folder: the image folder.

    Returns:
      ``(files, captions)``: absolute image paths and their captions, in file order.

    Raises:
      MissingFileError: if the JSONL file or an image it names does not exist.
      DataError: naming the line that is not JSON or lacks a non-empty ``file`` or ``caption``.
    """
    if not os.path.isfile(jsonl):
        raise MissingFileError(f"caption file {jsonl!r} does not exist")
    files, captions = [], []
    with open(jsonl, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{jsonl}:{number} is not JSON: {e}") from e
            for key in ("file", "caption"):
                if not isinstance(entry, dict) or not str(entry.get(key) or "").strip():
                    raise DataError(f'{jsonl}:{number} needs a non-empty "{key}", got {line!r}')
            path = os.path.join(folder, entry["file"])
            if not os.path.isfile(path):
                raise MissingFileError(f"{jsonl}:{number} names {path!r}, which does not exist")
            files.append(path)
            captions.append(str(entry["caption"]).strip())
    if not files:
        raise DataError(f"caption file {jsonl!r} has no captions")
    return files, captions


@dataclasses.dataclass(frozen=True)
class CaptionTable:
    """Every caption of a data set with its cached encoding.

    Attributes:
      captions: ``[T]`` caption strings.
      splits: ``[T]`` ``"train"`` or ``"heldout"`` per caption.
      owners: int32 ``[T]``: the class a template caption describes (labelled sources) or the
        image index in its split (JSONL captions).
      embeddings: float32 ``[T, D]`` sentence embeddings.
      tokens: float32 ``[T, L, D]`` token states; token_mask float32 ``[T, L]``.
      encoder_checksum: the encoder's checksum the table was computed with.
    """

    captions: np.ndarray
    splits: np.ndarray
    owners: np.ndarray
    embeddings: np.ndarray
    tokens: np.ndarray
    token_mask: np.ndarray
    encoder_checksum: str

    def select(self, split: str) -> np.ndarray:
        """Indices of the captions of ``split``."""
        return np.flatnonzero(self.splits == split)

    def nearest_caption_accuracy(self) -> float:
        """How far the encoder alone carries the held-out prompts: the fraction of held-out
        template captions whose nearest training caption (cosine of the sentence embeddings)
        describes the same class. A text-conditioned generator that maps a new prompt by its
        similarity to the training captions cannot be expected to beat it. Labelled sources only.
        """
        train, heldout = self.select("train"), self.select("heldout")
        unit = self.embeddings / np.linalg.norm(self.embeddings, axis=-1, keepdims=True)
        nearest = train[np.argmax(unit[heldout] @ unit[train].T, axis=-1)]
        return float(np.mean(self.owners[nearest] == self.owners[heldout]))


def cache_path(data_config: Mapping) -> str:
    """The cache file of a captioned data config: ``CACHE_DIR/NAME-ENCODER-L<max_tokens>.npz``
    where NAME is the base source, or ``jsonl-`` and the JSONL file's sha256 prefix.

    Raises:
      MissingFileError: if a JSONL caption file does not exist.
    """
    c = data_config["captions"]
    name = c["base"]
    if name == "jsonl":
        if not os.path.isfile(c["jsonl"] or ""):
            raise MissingFileError(f"caption file {c['jsonl']!r} does not exist")
        name = f"jsonl-{file_sha256(c['jsonl'])[:12]}"
    cache_dir = os.path.expanduser(c["cache_dir"] or DEFAULT_CACHE_DIR)
    return os.path.join(cache_dir, f"{name}-{c['encoder']}-L{int(c['max_tokens'])}.npz")


def write_cache(path: str, table: CaptionTable) -> None:
    """Writes ``table`` as ``.npz`` atomically, with its sha256 in ``PATH.sha256``."""
    buffer = io.BytesIO()
    np.savez(
        buffer, **{f.name: np.asarray(getattr(table, f.name)) for f in dataclasses.fields(table)}
    )
    atomic_write_bytes(path, buffer.getvalue())
    atomic_write_bytes(path + ".sha256", file_sha256(path).encode())


def read_cache(path: str) -> CaptionTable:
    """Reads a cache written by `write_cache`, checking its sha256 (no pickle).

    Raises:
      MissingFileError: if the cache or its checksum file does not exist.
      DataError: if the file's sha256 differs from the recorded one (corrupt or edited).
    """
    for file in (path, path + ".sha256"):
        if not os.path.isfile(file):
            raise MissingFileError(f"caption embedding cache {file!r} does not exist")
    with open(path + ".sha256") as f:
        recorded = f.read().strip()
    if file_sha256(path) != recorded:
        raise DataError(f"caption embedding cache {path!r} fails its sha256 check; delete it")
    with np.load(path, allow_pickle=False) as data:
        fields = {f.name: data[f.name] for f in dataclasses.fields(CaptionTable)}
    fields["encoder_checksum"] = str(fields["encoder_checksum"])
    return CaptionTable(**fields)


def table_captions(data_config: Mapping, base: ArraySource | None = None):
    """``(captions, splits, owners)`` the data set's table holds, before encoding.

    Labelled sources: every training template then every held-out paraphrase of every class.
    ``"jsonl"``: the captions of ``data.captions.jsonl`` (all ``"train"``, owner = image index).
    """
    captions_config = data_config["captions"]
    if captions_config["base"] == "jsonl":
        _, captions = read_jsonl_captions(captions_config["jsonl"], data_config["path"])
        return captions, ["train"] * len(captions), list(range(len(captions)))
    rows = [
        (caption, split, k)
        for split in SPLITS
        for k, per_class in enumerate(class_captions(captions_config["base"], split))
        for caption in per_class
    ]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


@dataclasses.dataclass(frozen=True)
class CaptionSource:
    """An image split with captions: deterministic batches with their cached encodings.

    Attributes:
      images: the base `ArraySource` (labels = classes, or image indices for JSONL data).
      table: the cached `CaptionTable`.
      labelled: captions come from class templates (else one caption per image).
      interpolate: the ``text`` of a labelled sample is ``normalize(β t1 + (1 - β) t2)`` for two
        training captions of its class, ``β ~ U(0, 1)`` (the manifold interpolation of GAN-INT,
        Reed et al. 2016 §4.3, within a class so that the pair still matches); its ``tokens``
        are those of ``t1``.
    """

    images: ArraySource
    table: CaptionTable
    labelled: bool
    interpolate: bool = False

    def __len__(self) -> int:
        return len(self.images)

    def caption_choice(self, labels: np.ndarray, rng: np.random.Generator, wrong: bool):
        """One training caption index per label: a template of the class (or the image's own
        caption); with ``wrong``, one of another class (or another image)."""
        train = self.table.select("train")
        owners = self.table.owners[train]
        picks = []
        for label in labels:
            pool = train[owners != label] if wrong else train[owners == label]
            picks.append(rng.choice(pool))
        return np.asarray(picks)

    def batch(self, step: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
        """Batch ``step``: the base batch plus ``text``, ``tokens``, ``token_mask`` and
        ``wrong_text`` (see the module docstring); a pure function of its arguments."""
        idx = self.images.indices(step, batch_size, seed)
        labels = self.images.labels[idx]
        rng = np.random.default_rng([seed, step, 7])
        owner = labels if self.labelled else idx
        right = self.caption_choice(owner, rng, wrong=False)
        wrong = self.caption_choice(owner, rng, wrong=True)
        text = self.table.embeddings[right]
        if self.interpolate and self.labelled:
            other = self.table.embeddings[self.caption_choice(owner, rng, wrong=False)]
            beta = rng.uniform(size=(len(idx), 1)).astype(np.float32)
            text = beta * text + (1.0 - beta) * other
            text = text / np.maximum(np.linalg.norm(text, axis=-1, keepdims=True), 1e-12)
        return {
            "image": to_unit_range(self.images.images[idx]),
            "label": labels,
            "text": text,
            "tokens": self.table.tokens[right],
            "token_mask": self.table.token_mask[right],
            "wrong_text": self.table.embeddings[wrong],
        }


def caption_source(
    base: ArraySource, table: CaptionTable, labelled: bool, interpolate: bool = False
) -> CaptionSource:
    """A `CaptionSource`, checking that the table covers every class (or image).

    Raises:
      DataError: if a class or image has no training caption in the table.
    """
    owners = set(table.owners[table.select("train")].tolist())
    needed = range(base.num_classes) if labelled else range(len(base))
    missing = [k for k in needed if k not in owners]
    if missing:
        raise DataError(f"caption table has no training caption for {missing[:5]}")
    return CaptionSource(base, table, labelled, interpolate)


def load_caption_source(
    data_config: Mapping, split: str, *, load_base, load_image
) -> CaptionSource:
    """One split of a captioned data set (``data.source = "captions"``), read from the cache.

    Args:
      data_config: ``captions.base`` (``"digits"``, ``"fashion_mnist_idx"`` or ``"jsonl"``),
        ``captions.encoder``, ``captions.max_tokens``, ``captions.cache_dir``, for JSONL
        ``captions.jsonl`` and ``path``, optional ``captions.interpolate`` (see `CaptionSource`);
        the base source's own entries.
      split: ``"train"`` or ``"heldout"`` (a JSONL data set has one split: both give it).
      load_base: ``(data_config, split) -> ArraySource`` of the base source.
      load_image: the folder decoder (see `jsonl_image_source`).

    Raises:
      MissingFileError: if the cache was not built (``lwgen.families.textgan`` builds it) or a
        file is missing; DataError: on a corrupt cache or one lacking a class's captions.
    """
    table = read_cache(cache_path(data_config))
    if data_config["captions"]["base"] == "jsonl":
        return caption_source(jsonl_image_source(data_config, load_image), table, False)
    base = load_base(base_data_config(data_config), split)
    return caption_source(base, table, True, bool(data_config["captions"].get("interpolate")))


def base_data_config(data_config: Mapping) -> ml_collections.ConfigDict:
    """The data config of the images under the captions (``source = captions.base``): what the
    judges score against."""
    fields = data_config.to_dict() if hasattr(data_config, "to_dict") else dict(data_config)
    fields["source"] = fields.pop("captions")["base"]
    return ml_collections.ConfigDict(fields)


def jsonl_image_source(data_config: Mapping, load_image) -> ArraySource:
    """The images a JSONL caption file names, labelled by their index (one caption each).

    Args:
      data_config: ``path`` (image folder), ``image_size``, ``channels``, ``captions.jsonl``.
      load_image: ``(file, image_size, channels) -> uint8 [H, W, C]`` (the folder decoder).
    """
    files, _ = read_jsonl_captions(data_config["captions"]["jsonl"], data_config["path"])
    size, channels = int(data_config["image_size"]), int(data_config["channels"])
    images = np.stack([load_image(f, size, channels) for f in files])
    return ArraySource(
        images, np.arange(len(files)), len(files), [os.path.basename(f) for f in files]
    )


def prompt_rows(table: CaptionTable, split: str, num_classes: int) -> list[list[int]]:
    """Table indices of ``split``'s template captions, one list per class."""
    chosen = table.select(split)
    return [chosen[table.owners[chosen] == k].tolist() for k in range(num_classes)]


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """Prompts as stripped non-empty strings.

    Raises:
      DataError: on an empty prompt.
    """
    out = [str(p).strip() for p in prompts]
    if not all(out):
        raise DataError(f"prompts must be non-empty, got {list(prompts)!r}")
    return out
