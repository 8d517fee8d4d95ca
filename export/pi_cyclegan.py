"""The ``cyclegan`` path of ``export/pi_infer.py``: translate photos with one of the bundle's two
generators.

A sibling of ``pi_infer.py`` and ``pi_images.py`` (keep the three together); only numpy and the
functions of ``pi_infer`` it is handed. ``--direction a2b`` runs the bundle's ``generator_ab``
(domain A → B), ``b2a`` its ``generator_ba``; ``bundle.json``'s ``fields.directions`` names the
model of each direction and ``fields.domains`` the domains. Every ``--input`` image (a PNG/JPEG
file or folder, fitted to the model's shape by ``pi_images.read_images``) is translated at the
bundle's static batch and written as a PNG (``pi_infer.write_images``: ``--out`` is a ``.png`` for
one input, else a folder); ``--npy`` also saves ``images`` (uint8 ``[N, H, W, C]``) and ``names``;
``--benchmark K`` times K translations of one image.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

MODEL_INPUTS = ["image"]


def direction_model(metadata: dict[str, Any], direction: str) -> str:
    """The model name of ``direction`` in ``bundle.json``'s fields.

    Raises:
      ValueError: if the bundle has no such direction.
    """
    directions = metadata["fields"].get("directions", {})
    if direction not in directions:
        raise ValueError(f"bundle has no direction {direction!r} (has {sorted(directions)})")
    return directions[direction]


def translate(args: argparse.Namespace, metadata: dict[str, Any], pi_infer: Any) -> None:
    """Reads ``--input``, translates it in ``--direction`` and writes ``--out`` (and ``--npy``).

    Args:
      args: pi_infer's parsed flags.
      metadata: the validated ``bundle.json``.
      pi_infer: the ``pi_infer`` module (its model, image and output helpers).

    Raises:
      ValueError: without ``--input``, on an unknown direction, a model that is not
        ``image -> one output``, or an unreadable input (naming the file).
    """
    if args.input is None:
        raise ValueError("a cyclegan bundle translates images: pass --input FILE_OR_FOLDER")
    name = direction_model(metadata, args.direction)
    model = pi_infer.checked_model(metadata, name, MODEL_INPUTS)
    height, width, channels = model["inputs"][0]["shape"][1:]
    images, names = pi_infer.sibling_module("pi_images").read_images(
        args.input, height, width, channels
    )
    translator = pi_infer.open_model(args, metadata, name, model)
    x = images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    (out,) = translator.run(image=x).values()
    out = pi_infer.to_uint8(out)
    domains = metadata["fields"].get("domains", {})
    source, target = args.direction[0], args.direction[-1]
    print(f"translated {len(out)} image(s) {domains.get(source, source)} -> "
          f"{domains.get(target, target)} with {name}")  # fmt: skip
    pi_infer.write_images(args.out, out, names)
    if args.npy:
        pi_infer.save_npy(args.npy, out, names=np.array(names))
    if args.benchmark:
        median, p90 = pi_infer.benchmark(translator, {"image": x[:1]}, args.benchmark)
        print(
            f"benchmark: {args.benchmark} invocations at batch {translator.batch}, "
            f"{args.threads} thread(s): median {median:.3f} ms/image, p90 {p90:.3f} ms/image"
        )
