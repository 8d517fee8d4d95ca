"""Progressive distillation of a trained diffusion workdir, round by round (Salimans & Ho 2022).

  python launch/distill_steps.py --teacher=runs/diffusion/teacher --root=runs/diffusion \
      --steps=8,4,2,1 [--num_train_steps=600] [--lr=3e-4]

Round ``k`` trains ``ROOT/steps_N`` (a normal workdir: rerun the command to resume) whose student
samples in ``N`` DDIM steps from the previous round's (the teacher samples in twice the first N).
"""

from absl import flags

from lwgen import cli
from lwgen.families.diffusion_rounds import progressive_rounds

_TEACHER = flags.DEFINE_string("teacher", None, "Trained diffusion workdir.")
_ROOT = flags.DEFINE_string("root", None, "Folder of the rounds' workdirs (ROOT/steps_N).")
_STEPS = flags.DEFINE_list("steps", ["8", "4", "2", "1"], "Student steps per round, halving.")
_NUM_TRAIN_STEPS = flags.DEFINE_integer("num_train_steps", 600, "Training steps per round.")
_LR = flags.DEFINE_float("lr", 3e-4, "Peak learning rate per round.")
flags.mark_flags_as_required(["teacher", "root"])


def main() -> None:
    steps = [int(n) for n in _STEPS.value]
    for workdir in progressive_rounds(
        _TEACHER.value, _ROOT.value, steps, _NUM_TRAIN_STEPS.value, _LR.value
    ):
        print(f"round done: {workdir}")


if __name__ == "__main__":
    cli.run("distill_steps", main)
