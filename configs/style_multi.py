"""One multi-style stylizer (Johnson et al. 2016 network, conditional instance norm) holding six
real styles, and its distilled student.

  python launch/train.py --config=configs/style_multi.py --workdir=runs/style/teacher
  python launch/train.py --config=configs/style_multi.py:student \
      --config.teacher.workdir=runs/style/teacher --workdir=runs/style/student

Needs the VGG16 weights (``make vgg-weights``) and the opencv-doc paintings (``make opencv-doc``).
"""

import ml_collections

from lwgen.families.style import student_config, style_config

STYLES = ("starry_night", "graf1", "immunohistochemistry", "brick", "grass", "gravel")


def get_config(variant: str = "teacher") -> ml_collections.ConfigDict:
    """``"teacher"``: the full-width network on 64-px crops of photos resized to 192 px, batch 6
    (one crop per style), 1000 steps (about 13 minutes on one CPU core); ``"student"``:
    widths (16, 32, 64), 3 residual blocks, norm inputs clipped tighter for INT8
    (``lwgen.families.style.student_config``), 600 steps distilled from ``teacher.workdir``
    (default ``runs/style/teacher``)."""
    config = style_config(STYLES, crop_size=64)
    config.data.photo_side = 192
    config.num_train_steps = 1000
    config.train.update(log_every=50, checkpoint_every=500, sample_every=1000)
    if variant == "student":
        config = student_config(config, "runs/style/teacher")
        config.num_train_steps = 600
        config.train.update(checkpoint_every=300, sample_every=600)
    elif variant != "teacher":
        raise ValueError(f"variant must be 'teacher' or 'student', got {variant!r}")
    return config
