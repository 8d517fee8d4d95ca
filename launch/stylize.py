"""Optimisation-based style transfer (Gatys et al. 2016) of one photo.

  python launch/stylize.py --content=PHOTO --style=PAINTING --out=OUT.png [--size=256]
      [--steps=200] [--lr=0.05] [--style_weight=10] [--content_weight=1] [--tv_weight=10]

``--style`` is an image file or a catalogue name (``lwgen.data.styles.STYLES``, e.g.
``starry_night``). Needs the VGG16 weights (``make vgg-weights``). Errors print one line on stderr
and exit with code 2.
"""

from absl import flags

from lwgen import cli
from lwgen.style_transfer import stylize_files

_CONTENT = flags.DEFINE_string("content", None, "Content photo (PNG/JPEG).", required=True)
_STYLE = flags.DEFINE_string("style", None, "Style image file or catalogue name.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output PNG.", required=True)
_SIZE = flags.DEFINE_integer("size", 256, "Shorter side of the content and style images (px).")
_STEPS = flags.DEFINE_integer("steps", 200, "Adam steps.")
_LR = flags.DEFINE_float("lr", 0.05, "Adam learning rate.")
_CONTENT_W = flags.DEFINE_float("content_weight", 1.0, "alpha of Gatys eq. 7.")
_STYLE_W = flags.DEFINE_float("style_weight", 10.0, "beta of Gatys eq. 7.")
_TV_W = flags.DEFINE_float("tv_weight", 10.0, "Total-variation weight.")


def main() -> None:
    losses = stylize_files(
        _CONTENT.value,
        _STYLE.value,
        _OUT.value,
        size=_SIZE.value,
        steps=_STEPS.value,
        lr=_LR.value,
        weights={
            "content_weight": _CONTENT_W.value,
            "style_weight": _STYLE_W.value,
            "tv_weight": _TV_W.value,
        },
    )
    print(f"wrote {_OUT.value}: " + ", ".join(f"{k}={v:.4g}" for k, v in losses.items()))


if __name__ == "__main__":
    cli.run("stylize", main)
