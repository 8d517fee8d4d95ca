"""Runs ``export/pi_infer.py`` on a bundle under emulated Raspberry Pi CPUs and compares with x86.

    python export/pi_check.py --bundle=DIR [--cache=DIR] [--cpus=cortex-a72,cortex-a76] \\
        [--setup_only]

``make pi-check [BUNDLE=DIR]`` runs it. The Pi side is Raspberry Pi OS bookworm 64-bit as far as
the script can tell: Debian bookworm arm64 ``python3.11`` (``export/pi_sysroot.sh`` unpacks it
with its libraries under ``CACHE/sysroot``) and the aarch64 wheels of the numpy, Pillow and
ai-edge-litert versions that ``setup.py`` pins (``CACHE/site-packages-*``), run by
``qemu-aarch64-static`` (installed with apt-get when missing) as a Cortex-A72 (Pi 4) and a
Cortex-A76 (Pi 5). Each CPU model gets its own view of the root with a Pi-like ``/proc/cpuinfo``:
LiteRT's CPU detection crashes on the host's x86 one, and the CPU model is always pinned because
qemu's default (``max``) advertises SME, on which XNNPACK computes wrong images.

The same inputs (``FAMILY_ARGS`` of the bundle's family) run on this machine's Python, and the
``images`` arrays of the ``--npy`` outputs are compared. Emulated timing means nothing, so only the
images are compared. XNNPACK gives the same bytes on ARM and x86; LiteRT's builtin kernels (used
when XNNPACK refuses a graph: sparse INT8) may differ by up to 8 levels. The table lists family,
quant, runtime path, CPU, the largest difference and whether the images are identical. Exit code
1 when a CPU exceeds its path's tolerance, 2 (one line) for a bad bundle, flag or failed setup.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn.datasets
from absl import flags
from PIL import Image

from lwgen import cli
from lwgen.errors import BundleError, LwgenError
from lwgen.io import atomic_write_text

HERE = Path(__file__).resolve().parent
PI_INFER = HERE / "pi_infer.py"
SYSROOT_SCRIPT = HERE / "pi_sysroot.sh"
SETUP_PY = HERE.parent / "setup.py"
QEMU = "qemu-aarch64-static"
RUN_TIMEOUT_S = 900

SAMPLE_PHOTO = str(Path(sklearn.datasets.__file__).parent / "images" / "china.jpg")
# The arguments every family's pi_infer run gets besides --bundle, --out and --npy: fixed seeds
# and inputs. A new family adds one entry.
FAMILY_ARGS: dict[str, list[str]] = {
    "dcgan": ["--num", "2", "--seed", "0"],  # every class, 2 samples each
    "tinygan": ["--num", "2", "--seed", "0"],
    "diffusion": ["--labels", "0,7", "--num", "2", "--seed", "0"],  # the bundle's own steps
    "cyclegan": ["--direction", "a2b", "--input", str(HERE / "pi_check_input.png")],
    "upscaler": ["--input", SAMPLE_PHOTO],  # scikit-learn's china.jpg, enlarged
    "textgan": ["--prompt", "a handwritten seven", "--num", "2", "--seed", "0"],  # needs tokenizers
    "style": ["--style", "{first_style}", "--input", "{photo}"],  # see `expand_args`
}

# Largest allowed difference (uint8 levels) from the x86 images, per LiteRT runtime path.
# A sampler that calls its model N times in sequence (diffusion: one call per step) compounds the
# per-call differences: its tolerance is N times the path's (measured on the 4-step Fashion-MNIST
# bundle with builtin kernels: 18 levels).
TOLERANCE = {"XNNPACK": 0, "builtin": 8}
INT8_MODES = ("int8", "int8_io")

# Device-side packages, pinned in setup.py; installed for Python 3.11 on glibc 2.36 (bookworm).
DEVICE_PACKAGES = ("numpy", "Pillow", "ai-edge-litert")
# Optional device packages a family's bundles need (text bundles tokenize the prompt on the Pi).
FAMILY_PACKAGES = {"textgan": ("tokenizers",)}
PYTHON_VERSION = "3.11"
GLIBC_MINOR = (17, 36)


@dataclass(frozen=True)
class PiCpu:
    """What a Raspberry Pi's ``/proc/cpuinfo`` says about its four cores."""

    model: str
    revision_code: str
    features: str
    variant: str
    part: str
    revision: int


CPUS = {
    "cortex-a72": PiCpu(
        "Raspberry Pi 4 Model B Rev 1.4",
        "c03114",
        "fp asimd evtstrm crc32 cpuid",
        "0x0",
        "0xd08",
        3,
    ),
    "cortex-a76": PiCpu(
        "Raspberry Pi 5 Model B Rev 1.0",
        "d04170",
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
        "dcpop asimddp",
        "0x4",
        "0xd0b",
        1,
    ),
}

flags.DEFINE_string("bundle", None, "Bundle directory to check.")
flags.DEFINE_string(
    "cache",
    os.environ.get("PI_CACHE", os.path.expanduser("~/.cache/lwgen/pi-sysroot")),
    "Folder for the arm64 root, the aarch64 wheels and the per-CPU views (kept between runs).",
)
flags.DEFINE_list("cpus", list(CPUS), f"CPU models to emulate, among {list(CPUS)}.")
flags.DEFINE_bool("setup_only", False, "Only set up the cache (qemu, root, wheels), then stop.")
FLAGS = flags.FLAGS


class SetupError(LwgenError, RuntimeError):
    """qemu, the arm64 root or the aarch64 wheels cannot be installed on this machine."""


@dataclass(frozen=True)
class Row:
    """One emulated CPU's images compared with the x86 images."""

    family: str
    quant: str
    path: str
    cpu: str
    max_diff: int
    num_differing: int
    num_values: int
    sequential_calls: int = 1

    @property
    def tolerance(self) -> int:
        """The path's tolerance times the model calls in sequence per image."""
        return TOLERANCE[self.path] * self.sequential_calls

    @property
    def ok(self) -> bool:
        """Whether the largest difference is within the tolerance."""
        return self.max_diff <= self.tolerance


def cpuinfo_text(cpu: PiCpu, cores: int = 4) -> str:
    """A Raspberry Pi OS ``/proc/cpuinfo`` (64-bit kernel) for ``cores`` identical cores."""
    core = (
        "processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {c.features}\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {c.variant}\n"
        "CPU part\t: {c.part}\nCPU revision\t: {c.revision}\n\n"
    )
    cores_text = "".join(core.format(i=i, c=cpu) for i in range(cores))
    return (
        f"{cores_text}Revision\t: {cpu.revision_code}\nSerial\t\t: 10000000c0ffee00\n"
        f"Model\t\t: {cpu.model}\n"
    )


def platform_tags() -> list[str]:
    """pip ``--platform`` tags of the PyPI wheels a bookworm aarch64 Python runs (glibc 2.36),
    newest first: pip does not expand ``manylinux_2_36`` to the older tags by itself."""
    low, high = GLIBC_MINOR
    tags = [f"manylinux_2_{minor}_aarch64" for minor in range(high, low - 1, -1)]
    return [*tags, "manylinux2014_aarch64"]


def device_requirements(setup_text: str, family: str | None = None) -> list[str]:
    """``["numpy==X", "Pillow==Y", "ai-edge-litert==Z"]`` as pinned in ``setup.py``'s text, plus
    the pins of ``family``'s optional device packages (`FAMILY_PACKAGES`).

    Raises:
      SetupError: if a device package is not pinned with ``==``.
    """
    requirements = []
    for package in DEVICE_PACKAGES + FAMILY_PACKAGES.get(family, ()):
        match = re.search(rf'"({re.escape(package)}==[^"\s;]+)"', setup_text)
        if match is None:
            raise SetupError(f"setup.py pins no {package}==VERSION for the device")
        requirements.append(match.group(1))
    return requirements


def bundle_summary(bundle: str) -> tuple[str, str, str]:
    """``(family, quant, runtime path)`` of a bundle directory from its ``bundle.json``.

    The path is ``builtin`` when a model is sparse INT8 (XNNPACK refuses it and ``pi_infer.py``
    falls back to LiteRT's builtin kernels), else ``XNNPACK``.

    Raises:
      BundleError: for a missing or unreadable bundle, or a family without ``FAMILY_ARGS``.
    """
    meta_path = Path(bundle) / "bundle.json"
    if not meta_path.is_file():
        raise BundleError(f"no bundle at {bundle}: {meta_path} not found")
    try:
        metadata = json.loads(meta_path.read_text())
        family, models = metadata["family"], list(metadata["models"].values())
        quants = sorted({model["quant"] for model in models})
        sparse = any(model["sparsity"] and model["quant"] in INT8_MODES for model in models)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BundleError(f"{meta_path}: not a format-2 bundle.json ({e!r})") from None
    if family not in FAMILY_ARGS:
        raise BundleError(
            f"bundle family {family!r} has no pi-check inputs: add it to FAMILY_ARGS in "
            f"export/pi_check.py (known: {sorted(FAMILY_ARGS)})"
        )
    return family, "+".join(quants), "builtin" if sparse else "XNNPACK"


def sequential_calls(bundle: str) -> int:
    """Model calls in sequence per image: the sampler's steps (``fields.timesteps``) for a
    diffusion bundle, else 1."""
    metadata = json.loads((Path(bundle) / "bundle.json").read_text())
    return len(metadata["fields"].get("timesteps", [None]))


def compare(reference: np.ndarray, images: np.ndarray) -> tuple[int, int]:
    """``(largest absolute difference, number of differing values)`` of two uint8 arrays.

    Raises:
      ValueError: if the shapes differ.
    """
    if reference.shape != images.shape:
        raise ValueError(f"images of shape {images.shape} differ from x86's {reference.shape}")
    diff = np.abs(reference.astype(np.int16) - images.astype(np.int16))
    return int(diff.max(initial=0)), int(np.count_nonzero(diff))


def format_table(rows: list[Row]) -> str:
    """The rows as an aligned text table, one line per CPU, with a verdict column."""
    header = ("family", "quant", "path", "CPU", "max diff", "differing", "identical", "result")
    lines = [header]
    for row in rows:
        verdict = "ok" if row.ok else "FAIL"
        lines.append(
            (
                row.family,
                row.quant,
                row.path,
                row.cpu,
                str(row.max_diff),
                f"{row.num_differing}/{row.num_values}",
                "yes" if row.max_diff == 0 else "no",
                f"{verdict} (tolerance {row.tolerance})",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _run(command: list[str], what: str, **kwargs: Any) -> str:
    """Runs ``command``; returns its stdout, or raises SetupError with its last stderr line."""
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise SetupError(f"{what} failed (exit {done.returncode}): {last}")
    return done.stdout


def ensure_qemu() -> str:
    """The path of ``qemu-aarch64-static``, installed with apt-get (as root) when missing.

    Raises:
      SetupError: saying how to install it when it is missing and cannot be installed here.
    """
    found = shutil.which(QEMU)
    if found:
        return found
    how = f"{QEMU} not found: install it with `sudo apt-get install qemu-user-static`"
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise SetupError(f"{how} (Debian/Ubuntu), then run the check again")
    print("pi_check: installing qemu-user-static with apt-get", file=sys.stderr)
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "qemu-user-static"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(install, "apt-get install qemu-user-static", env=env)
    except SetupError:
        _run(["apt-get", "update", "-q"], "apt-get update", env=env)
        _run(install, "apt-get install qemu-user-static", env=env)
    found = shutil.which(QEMU)
    if not found:
        raise SetupError(f"{QEMU} still not found after installing qemu-user-static")
    return found


def ensure_site_packages(cache: Path, family: str | None = None) -> Path:
    """``CACHE/site-packages-<pins>``: the pinned aarch64 wheels for CPython 3.11 (and those of
    ``family``'s optional packages), installed once (downloaded to ``CACHE/wheels``, installed in
    a temporary folder, renamed into place)."""
    requirements = device_requirements(SETUP_PY.read_text(), family)
    site = cache / ("site-packages-" + "_".join(requirements).replace("==", "-"))
    if site.is_dir():
        return site
    target = [
        "--only-binary=:all:",
        f"--python-version={PYTHON_VERSION}",
        "--implementation=cp",
        "--abi=cp" + PYTHON_VERSION.replace(".", ""),
        "--abi=abi3",  # tokenizers ships one cp39-abi3 wheel for every CPython 3
        *(f"--platform={tag}" for tag in platform_tags()),
    ]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = cache / "wheels"
    _run([*pip, "download", *target, "-d", str(wheels), *requirements], "pip download")
    tmp = Path(tempfile.mkdtemp(prefix=site.name + ".", suffix=".tmp", dir=cache))
    try:
        install = [*pip, "install", *target, "--no-index", f"--find-links={wheels}"]
        _run([*install, f"--target={tmp}", *requirements], "pip install --target")
        tmp.rename(site)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return site


def cpu_view(cache: Path, sysroot: Path, cpu: str) -> Path:
    """``CACHE/cpu/CPU``: the root's top-level folders (symlinks) and that Pi's ``proc/cpuinfo``,
    for ``qemu -L`` (which redirects the program's absolute paths into it)."""
    view = cache / "cpu" / cpu
    (view / "proc").mkdir(parents=True, exist_ok=True)
    for entry in sysroot.iterdir():
        link = view / entry.name
        if not link.is_symlink():
            link.symlink_to(entry)
    atomic_write_text(view / "proc" / "cpuinfo", cpuinfo_text(CPUS[cpu]))
    return view


def setup(cache: Path, family: str | None = None) -> tuple[str, Path, Path]:
    """``(qemu, sysroot, site-packages)`` for ``family``'s bundles, installing or building
    whatever is missing."""
    qemu = ensure_qemu()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SetupError(f"cannot create the cache folder {cache}: {e}") from None
    _run(["sh", str(SYSROOT_SCRIPT), str(cache)], "export/pi_sysroot.sh")
    return qemu, cache / "sysroot", ensure_site_packages(cache, family)


def expand_args(args: list[str], bundle: str, folder: Path) -> list[str]:
    """``args`` with ``{first_style}`` (the bundle's first style name) and ``{photo}`` (a made
    64×64 gradient PNG in ``folder``) filled in, for image→image bundles."""
    fields = json.loads((Path(bundle) / "bundle.json").read_text())["fields"]
    photo = folder / "photo.png"
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    gradient = np.broadcast_arrays(ramp[:, None], ramp[None], np.uint8(128))
    Image.fromarray(np.stack(gradient, -1)).save(photo)
    names = {"first_style": (fields.get("style_names") or [""])[0], "photo": str(photo)}
    return [arg.format(**names) for arg in args]


def run_pi_infer(
    prefix: list[str], env: dict[str, str], bundle: str, family: str, out: Path, kernels: str
) -> Any:
    """Runs ``pi_infer.py --kernels KERNELS`` with ``FAMILY_ARGS[family]`` under ``prefix`` (a
    Python command); returns the ``images`` array of its ``--npy`` output.

    Raises:
      RuntimeError: with the script's stderr when it fails.
    """
    args = ["--bundle", bundle, "--out", f"{out}.png", "--npy", f"{out}.npz", "--kernels", kernels]
    args += expand_args(FAMILY_ARGS[family], bundle, out.parent)
    done = subprocess.run(
        [*prefix, str(PI_INFER), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(prefix[:3])}: pi_infer.py failed:\n{done.stderr}")
    with np.load(f"{out}.npz") as saved:
        return saved["images"]


def check(bundle: str, cache: Path, cpus: list[str]) -> list[Row]:
    """Runs the bundle on x86 and on each emulated CPU, with pi_infer's default kernels (the
    bundle's path, see `bundle_summary`) and with LiteRT's builtin kernels; one compared row per
    path and CPU."""
    family, quant, default_path = bundle_summary(bundle)
    calls = sequential_calls(bundle)
    qemu, sysroot, site = setup(cache, family)
    clean = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="pi_check.") as tmp:
        runs = {default_path: "auto", "builtin": "builtin"}  # a sparse bundle runs builtin once
        for path, kernels in runs.items():
            out = Path(tmp) / kernels
            reference = run_pi_infer([sys.executable], clean, bundle, family, out, kernels)
            for cpu in cpus:
                view = cpu_view(cache, sysroot, cpu)
                prefix = [qemu, "-cpu", cpu, "-L", str(view), str(view / "usr/bin/python3.11")]
                env = {**clean, "PYTHONPATH": str(site)}
                images = run_pi_infer(prefix, env, bundle, family, Path(f"{out}-{cpu}"), kernels)
                rows.append(
                    Row(family, quant, path, cpu, *compare(reference, images), images.size, calls)
                )
    return rows


def main() -> None:
    unknown = sorted(set(FLAGS.cpus) - set(CPUS))
    if unknown or not FLAGS.cpus:
        raise LwgenError(f"--cpus: {unknown or 'none'}: choose among {list(CPUS)}")
    cache = Path(FLAGS.cache).expanduser().resolve()
    start = time.perf_counter()
    if FLAGS.setup_only:
        setup(cache)
        print(f"pi_check: {cache} ready in {time.perf_counter() - start:.0f} s")
        return
    if FLAGS.bundle is None:
        raise LwgenError("--bundle is required (a bundle directory)")
    rows = check(FLAGS.bundle, cache, FLAGS.cpus)
    print(format_table(rows))
    seconds = time.perf_counter() - start
    print(f"pi_check: {FLAGS.bundle}: {len(rows)} runs (paths x CPUs) in {seconds:.0f} s")
    if not all(row.ok for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    cli.run("pi_check", main)
