"""Images/s of the jitted data-parallel train step (one D and one G update) for the demo model.

  python bench/train_throughput.py [--config=configs/dcgan_digits.py] [--batch_sizes=64,256]
      [--upsample=transpose,resize_conv,subpixel] [--steps=20] [--out=train_throughput.json]

Every upsampling mode of the generator is timed at every batch size in the same run; the table
gives images/s and the ratio to the ``transpose`` (``nn.ConvTranspose``) model at the same batch
size, the reference. Timing starts after one compile-and-warm-up step.
"""

import json
import os
import time

import jax
from absl import app, flags
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import config_flags

from lwgen.data import load_source, shard_batch
from lwgen.train.checkpoint import atomic_write_text
from lwgen.train.loop import compile_step, make_setup
from lwgen.train.steps import AXIS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(ROOT, "configs", "dcgan_digits.py"), "Experiment config file."
)
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["64", "256"], "Global batch sizes.")
_UPSAMPLE = flags.DEFINE_list(
    "upsample", ["transpose", "resize_conv", "subpixel"], "Generator upsampling modes."
)
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per setting.")
_OUT = flags.DEFINE_string("out", "train_throughput.json", "JSON output path.")


def images_per_second(config, upsample: str, batch_size: int, steps: int) -> float:
    """Times ``steps`` jitted train steps after one warm-up step; returns images/s."""
    config = config.copy_and_resolve_references()
    config.model.generator.upsample = upsample
    config.batch_size = batch_size
    mesh = jax.make_mesh((jax.device_count(),), (AXIS,))
    setup = make_setup(config)
    state = jax.device_put(setup.init_state(), NamedSharding(mesh, P()))
    step_fn = compile_step(setup, config, mesh)
    source = load_source(config.data, "train")
    batches = [shard_batch(source.batch(i, batch_size, config.seed), mesh) for i in range(2)]
    state, metrics = step_fn(state, batches[0])
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for i in range(steps):
        state, metrics = step_fn(state, batches[i % 2])
    jax.block_until_ready((state, metrics))
    return batch_size * steps / (time.perf_counter() - start)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    batch_sizes = [int(b) for b in _BATCH_SIZES.value]
    rows = []
    for batch_size in batch_sizes:
        reference = None
        for upsample in _UPSAMPLE.value:
            ips = images_per_second(_CONFIG.value, upsample, batch_size, _STEPS.value)
            reference = reference or ips
            rows.append(
                {
                    "upsample": upsample,
                    "batch_size": batch_size,
                    "images_per_s": ips,
                    "ratio_vs_reference": ips / reference,
                }
            )
    result = {
        "devices": jax.device_count(),
        "platform": jax.devices()[0].platform,
        "reference": f"upsample={_UPSAMPLE.value[0]} at the same batch size",
        "rows": rows,
    }
    print(f"{'upsample':<12} {'batch':>6} {'images/s':>10} {'ratio':>7}")
    for r in rows:
        print(
            f"{r['upsample']:<12} {r['batch_size']:>6} {r['images_per_s']:>10.1f} "
            f"{r['ratio_vs_reference']:>7.2f}"
        )
    atomic_write_text(_OUT.value, json.dumps(result, indent=2) + "\n")
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
