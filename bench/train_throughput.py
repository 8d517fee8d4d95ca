"""Images/s of the demo GAN's train step in lwgen (jitted) and in a PyTorch eager twin.

  python bench/train_throughput.py [--config=configs/dcgan_digits.py] [--batch_sizes=64,256]
      [--upsample=resize_conv,transpose,subpixel] [--steps=10] [--rounds=5]
      [--out=train_throughput.json]

A step is one discriminator and one generator update plus the EMA of G, on the config's data
(``lwgen.families.conditional_gan.adversarial_step``; its PyTorch twin, layer for layer the same
networks, is ``bench/torch_twin.py``, timed when torch is installed: ``pip install .[bench]``).
For every upsampling mode (default: the config's) and batch size, both run in this process on
the same two batches, PyTorch with as many threads as XLA's CPU thread pool (the CPUs this
process may run on). After warm-up (lwgen: compile and one step; PyTorch: two steps),
``--rounds`` rounds of ``--steps`` steps alternate between the two, so that load from other
processes hits both alike; the table gives each side's best round (the one least slowed by other
processes) in images/s and their ratio, the JSON also every round. The parameter counts of G and D
are asserted equal between the two.

Run it on an otherwise idle machine: PyTorch's OpenMP threads wait for each other at every op, so
one busy core slows PyTorch several times more than XLA (on 2 cores, other processes took the
twin from about 900 to 50–160 images/s at batch 64, and lwgen from about 870 to 500–740). The JSON
records how many cores other processes kept busy meanwhile (from ``/proc/stat``, Linux), and a
warning is printed when that exceeds ``IDLE_OTHERS_CORES``.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import time
from collections.abc import Callable

import jax
import numpy as np
from absl import flags
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import config_flags

from lwgen import cli
from lwgen.data import load_source
from lwgen.errors import ConfigError
from lwgen.families.registry import make_trainer
from lwgen.io import atomic_write_json
from lwgen.train.loop import compile_step, global_batch
from lwgen.train.steps import AXIS

HAS_TORCH = importlib.util.find_spec("torch") is not None
if HAS_TORCH:
    import torch
    import torch_twin  # bench/torch_twin.py, beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

G, D = "generator", "discriminator"
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(ROOT, "configs", "dcgan_digits.py"), "Experiment config file."
)
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["64", "256"], "Global batch sizes.")
_UPSAMPLE = flags.DEFINE_list(
    "upsample", [], "Generator upsampling modes (default: model.generator.upsample)."
)
_STEPS = flags.DEFINE_integer("steps", 10, "Steps per timed round.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds per framework and setting.")
_OUT = flags.DEFINE_string("out", "train_throughput.json", "JSON output path.")

Runner = Callable[[int], None]
IDLE_OTHERS_CORES = 0.1  # CPU use by other processes that makes the PyTorch timings unreliable


def num_params(tree) -> int:
    """Number of scalars in a pytree of arrays."""
    return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(tree))


def lwgen_runner(config, batches: list[dict[str, np.ndarray]]) -> tuple[Runner, dict, object]:
    """Compiles the config's train step and runs one warm-up step.

    Returns:
      ``run(steps)`` (blocks until the last step is done), ``{network: parameter count}`` and
      the trainer (its modules describe the networks for the twin).
    """
    trainer = make_trainer(config)
    mesh = jax.make_mesh((jax.device_count(),), (AXIS,))
    state = jax.device_put(trainer.init_state(), NamedSharding(mesh, P()))
    params = {name: num_params(state.networks[name].params) for name in (G, D)}
    step_fn = compile_step(trainer, mesh)
    device_batches = [global_batch(b, mesh, config.batch_size) for b in batches]
    state, metrics = step_fn(state, device_batches[0])
    jax.block_until_ready(metrics)

    def run(steps: int) -> None:
        nonlocal state
        for i in range(steps):
            state, metrics = step_fn(state, device_batches[i % len(device_batches)])
        jax.block_until_ready((state, metrics))

    return run, params, trainer


def torch_runner(config, trainer, batches: list[dict[str, np.ndarray]]) -> tuple[Runner, dict]:
    """Builds the PyTorch twin of ``trainer``'s networks and runs two warm-up steps.

    Returns:
      ``run(steps)`` and ``{network: parameter count}``.

    Raises:
      ConfigError: if the config trains something the twin does not implement.
    """
    trained = (config.model.family, config.train.loss, config.train.r1_weight)
    if trained != ("dcgan", "hinge", 0):
        raise ConfigError(
            "the PyTorch twin implements model.family='dcgan' with train.loss='hinge' and "
            f"train.r1_weight=0, got {trained}"
        )
    generator, discriminator = trainer.modules[G], trainer.modules[D]
    channels = generator.image_shape[-1]
    torch.manual_seed(config.seed)
    twin = torch_twin.TwinTrainer(
        torch_twin.Generator(
            generator.num_classes,
            generator.latent_dim,
            generator.block_widths(),
            channels,
            generator.upsample,
        ),
        torch_twin.Discriminator(
            discriminator.num_classes,
            discriminator.block_widths(),
            channels,
            discriminator.spectral_norm,
        ),
        config.optim,
    )
    params = {
        G: torch_twin.num_params(twin.generator),
        D: torch_twin.num_params(twin.discriminator),
    }
    torch_batches = [
        (
            torch.from_numpy(b["image"]).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(b["label"]).long(),
        )
        for b in batches
    ]

    def run(steps: int) -> None:
        for i in range(steps):
            twin.step(*torch_batches[i % len(torch_batches)])

    run(2)
    return run, params


def images_per_second(run: Runner, batch_size: int, steps: int) -> float:
    """Times ``run(steps)``; returns images/s."""
    start = time.perf_counter()
    run(steps)
    return batch_size * steps / (time.perf_counter() - start)


def measure(config, upsample: str, batch_size: int, steps: int, rounds: int) -> dict:
    """One table row: both frameworks at one upsampling mode and batch size."""
    config = config.copy_and_resolve_references()
    config.model.generator.upsample = upsample
    config.batch_size = batch_size
    source = load_source(config.data, "train")
    batches = [source.batch(i, batch_size, config.seed) for i in range(2)]
    runners = {}
    runners["lwgen"], params, trainer = lwgen_runner(config, batches)
    if HAS_TORCH:
        runners["torch"], torch_params = torch_runner(config, trainer, batches)
        if torch_params != params:
            raise AssertionError(f"parameter counts differ: lwgen {params}, torch {torch_params}")
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            times[name].append(images_per_second(run, batch_size, steps))
    ips = {name: max(t) for name, t in times.items()}
    return {
        "upsample": upsample,
        "batch_size": batch_size,
        "params": params,
        "lwgen_images_per_s": ips["lwgen"],
        "torch_images_per_s": ips.get("torch"),
        "ratio_lwgen_to_torch": ips["lwgen"] / ips["torch"] if "torch" in ips else None,
        "rounds_images_per_s": times,
    }


def print_table(rows: list[dict]) -> None:
    """Prints one line per row; torch columns read ``-`` without torch."""
    print(
        f"{'upsample':<12} {'batch':>5} {'G params':>9} {'D params':>9} {'lwgen img/s':>12} "
        f"{'torch img/s':>12} {'lwgen/torch':>12}"
    )
    for r in rows:
        torch_ips = r["torch_images_per_s"]
        torch_col = "-" if torch_ips is None else f"{torch_ips:.1f}"
        ratio_col = "-" if torch_ips is None else f"{r['ratio_lwgen_to_torch']:.2f}"
        print(
            f"{r['upsample']:<12} {r['batch_size']:>5} {r['params'][G]:>9} {r['params'][D]:>9} "
            f"{r['lwgen_images_per_s']:>12.1f} {torch_col:>12} {ratio_col:>12}"
        )


def _cpu_seconds() -> tuple[float, float, float | None]:
    """``(wall, this process's CPU, whole machine's busy CPU)`` seconds; the last is None where
    ``/proc/stat`` is missing."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/stat") as f:
            user, nice, system, _, _, irq, softirq, steal = map(int, f.readline().split()[1:9])
        machine = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except FileNotFoundError:
        machine = None
    return time.perf_counter(), usage.ru_utime + usage.ru_stime, machine


def _others_cores(start: tuple, end: tuple) -> float | None:
    """Average cores kept busy by other processes between two `_cpu_seconds` readings."""
    if start[2] is None or end[2] is None:
        return None
    return max(0.0, (end[2] - start[2]) - (end[1] - start[1])) / (end[0] - start[0])


def main() -> None:
    config = _CONFIG.value
    threads = len(os.sched_getaffinity(0))
    if HAS_TORCH:
        torch.set_num_threads(threads)
    modes = _UPSAMPLE.value or [config.model.generator.upsample]
    start = _cpu_seconds()
    rows = [
        measure(config, mode, int(batch_size), _STEPS.value, _ROUNDS.value)
        for batch_size in _BATCH_SIZES.value
        for mode in modes
    ]
    result = {
        "devices": jax.device_count(),
        "platform": jax.devices()[0].platform,
        "cpu_threads": threads,
        "jax": jax.__version__,
        "torch": torch.__version__ if HAS_TORCH else None,
        "steps_per_round": _STEPS.value,
        "other_processes_cores": _others_cores(start, _cpu_seconds()),
        "rows": rows,
    }
    print_table(rows)
    others = result["other_processes_cores"]
    if others is not None and others > IDLE_OTHERS_CORES:
        print(
            f"warning: other processes kept {others:.2f} cores busy during the run; the PyTorch "
            "column suffers from them far more than lwgen's (run on an idle machine)"
        )
    atomic_write_json(_OUT.value, result)
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    cli.run("train_throughput", main)
