"""Text-to-image report: every fusion × encoder, JAX float and through the Pi path, with goals.

    python bench/text_report.py --workdirs=runs/text_digits_film,runs/text_digits_concat,... \\
        --out=runs/text_report [--llama_steps=300] [--per_class=100]

Each ``--workdirs`` entry is a trained ``textgan`` workdir; its measurements come from
``lwgen.demo_text.run_text_demo`` (``WORKDIR/report.json``, made now if missing: training
resumes, so a finished workdir is only evaluated, exported and timed). ``--llama_steps > 0`` adds
a plumbing row: the digits config with a randomly initialised tiny Llama encoder
(``lwgen.models.llm_text.write_tiny_llama``, 32-d) trained that many steps, exported with a prompt
table (its quality means nothing). Rows (fusion, encoder, path): generator params and MACs per
image (``lwgen.eval.profile``), encoder params, held-out- and training-prompt class accuracy,
the nearest-caption accuracy (held-out prompts whose nearest training caption is of their
class: how far the encoder alone carries them), Fréchet distance (held-out prompts) and, on the
Pi path, ``pi_infer.py`` ms per prompt for the encoder and per image for the generator (batch 1,
1 thread). A second table exports each MiniLM run's encoder as float16 and as dynamic-range INT8
and gives the cosine of its embeddings to the float encoder's on the held-out prompts, file size
and ms per prompt. Goals (issue 12) are printed as met or not met. Writes
``OUT/text_report.md`` and ``.json``; lwgen's user errors print one line and exit 2.
"""

from __future__ import annotations

import json
import os
import time

import jax.numpy as jnp
import numpy as np
from absl import flags

from lwgen import cli
from lwgen.demo_text import run_text_demo
from lwgen.eval.profile import profile_model
from lwgen.export.convert import convert
from lwgen.export.runtime import TFLiteRunner
from lwgen.families.textgan import textgan_config
from lwgen.families.textgan_export import encoder_spec
from lwgen.families.textgan_prompts import (
    cached_table,
    generator_inputs,
    generator_module,
    load_text_encoder,
)
from lwgen.io import atomic_write_json, atomic_write_text
from lwgen.train.checkpoint import read_config, restore_inference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PI_SCRIPT = os.path.join(ROOT, "export", "pi_infer.py")
GOAL_ACCURACY = {"digits": 0.85, "fashion_mnist_idx": 0.75}
GOAL_COSINE, GOAL_MS = 0.99, 50.0
TIMED_PROMPTS = 20


def generator_profile(workdir: str) -> dict:
    """Params and MACs per image of a workdir's generator (batch 1, inference mode)."""
    restored = restore_inference(workdir)
    generator = generator_module(restored.config)
    length = int(restored.config.data.captions.max_tokens)
    shapes = {"z": (generator.latent_dim,), "text": (generator.text_dim,)}
    shapes |= {"tokens": (length, generator.text_dim), "token_mask": (length,)}
    inputs = [jnp.ones((1, *shapes[n])) for n in generator_inputs(generator)]
    profile = profile_model(generator, restored.variables["generator"], *inputs, train=False)
    return {"params": profile["params"], "macs": profile["macs"]}


def encoder_quant_rows(config) -> list[dict]:
    """The MiniLM encoder as float16 and dynamic INT8: cosine to float on held-out prompts."""
    table = cached_table(config.data)
    rows = table.select("heldout")
    c = config.data.captions
    tokenize = load_text_encoder(c.encoder, c.encoder_path, int(c.max_tokens)).tokenize
    ids, mask = tokenize(table.captions[rows].tolist())
    out = []
    for quant in ("float16", "dynamic"):
        config.export.encoder_quant = quant
        content = convert(encoder_spec(config, table, False), quant=quant, batch=1)
        runner = TFLiteRunner(content, num_threads=1)
        tflite = runner(input_ids=ids, mask=mask)["embedding"]
        reference = table.embeddings[rows]
        cosine = np.sum(tflite * reference, -1) / np.linalg.norm(tflite, axis=-1)
        start = time.perf_counter()
        for i in range(TIMED_PROMPTS):
            runner.invoke(input_ids=ids[i % len(ids)][None], mask=mask[i % len(ids)][None])
        ms = (time.perf_counter() - start) * 1e3 / TIMED_PROMPTS
        out.append({
            "quant": quant, "bytes": len(content), "cosine_mean": float(np.mean(cosine)),
            "cosine_min": float(np.min(cosine)), "ms_per_prompt": ms,
        })  # fmt: skip
    return out


def llama_workdir(out: str, steps: int) -> str:
    """Trains (or resumes) the tiny-Llama digits run under ``OUT/llama`` and returns it."""
    import zipfile

    from lwgen.models.llm_text import write_tiny_llama
    from lwgen.models.text import minilm_zip_path

    with zipfile.ZipFile(minilm_zip_path()) as archive:
        tokenizer_json = archive.read("tokenizer.json").decode()
    config = textgan_config("digits", (32, 32, 1), fusion="film", encoder="llama")
    config.data.captions.encoder_path = write_tiny_llama(f"{out}/tiny_llama", tokenizer_json)
    config.model.generator.text_dim = 32
    config.num_train_steps = steps
    workdir = f"{out}/llama"
    if not os.path.isfile(f"{workdir}/report.json"):
        run_text_demo(config, workdir, PI_SCRIPT, per_class=100)
    return workdir


def measure(workdir: str, per_class: int) -> dict:
    """The demo report of ``workdir`` (made if missing) plus the generator profile."""
    path = os.path.join(workdir, "report.json")
    if not os.path.isfile(path):
        run_text_demo(read_config(workdir), workdir, PI_SCRIPT, per_class)
    with open(path) as f:
        report = json.load(f)
    config = read_config(workdir)
    c = config.data.captions
    encoder = load_text_encoder(c.encoder, c.encoder_path, int(c.max_tokens))
    return {**report, "workdir": workdir, "generator": generator_profile(workdir),
            "encoder": c.encoder, "encoder_params": encoder.num_params}  # fmt: skip


def table_lines(runs: list[dict]) -> list[str]:
    """The main table in Markdown."""
    lines = [
        "| data | fusion | encoder | path | G params | G MACs | enc. params | held-out acc | "
        "train acc | nearest-caption acc | Fréchet | precision / recall | enc. ms/prompt | "
        "G ms/image |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        ceiling = r.get("nearest_caption_accuracy")
        nearest = "–" if ceiling is None else f"{ceiling:.4f}"
        for path, e in (("JAX float", r["eval_float"]), ("Pi (TFLite)", r["eval_pi"])):
            pi = r["pi_infer"] if path.startswith("Pi") else None
            ms = (
                f"{pi['encoder_ms_per_prompt']:.2f} | {pi['generator_ms_per_image']:.3f}"
                if pi
                else "– | –"
            )
            lines.append(
                f"| {r['data']} | {r['fusion']} | {r['encoder']} | {path} | "
                f"{r['generator']['params']:,} | {r['generator']['macs']:,} | "
                f"{r['encoder_params']:,} | {e['heldout_class_accuracy']:.4f} | "
                f"{e['train_class_accuracy']:.4f} | {nearest} | "
                f"{e['heldout_frechet_distance']:.2f} | "
                f"{e['heldout_precision']:.3f} / {e['heldout_recall']:.3f} | {ms} |"
            )
    return lines


def goal_lines(runs: list[dict], quant_rows: list[dict]) -> list[str]:
    """Each goal of issue 12, met or not, with the measured value."""
    lines = []
    for data, goal in GOAL_ACCURACY.items():
        mine = [r for r in runs if r["data"] == data and r["encoder"] == "minilm"]
        if not mine:
            lines.append(f"- {data}: held-out accuracy >= {goal} through the Pi path: not measured")
            continue
        best = max(mine, key=lambda r: r["eval_pi"]["heldout_class_accuracy"])
        value = best["eval_pi"]["heldout_class_accuracy"]
        verdict = "met" if value >= goal else "NOT met"
        lines.append(f"- {data}: best Pi-path held-out accuracy {value:.4f} ({best['fusion']}) "
                     f">= {goal}: {verdict}")  # fmt: skip
    for row in quant_rows:
        verdict = "met" if row["cosine_min"] >= GOAL_COSINE else "NOT met"
        lines.append(f"- encoder {row['quant']} min cosine {row['cosine_min']:.5f} >= "
                     f"{GOAL_COSINE}: {verdict}")  # fmt: skip
    for r in runs:
        total = r["pi_infer"]["encoder_ms_per_prompt"] + r["pi_infer"]["generator_ms_per_image"]
        verdict = "met" if total <= GOAL_MS else "NOT met"
        lines.append(f"- {r['data']}/{r['fusion']}/{r['encoder']}: encoder + generator "
                     f"{total:.2f} ms <= {GOAL_MS} ms: {verdict}")  # fmt: skip
    return lines


_WORKDIRS = flags.DEFINE_list("workdirs", None, "Trained textgan workdirs.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output folder.", required=True)
_LLAMA_STEPS = flags.DEFINE_integer("llama_steps", 0, "Steps of the tiny-Llama row (0: none).")
_PER_CLASS = flags.DEFINE_integer("per_class", 100, "Images per class and prompt split.")


def main() -> None:
    workdirs = list(_WORKDIRS.value)
    if _LLAMA_STEPS.value > 0:
        workdirs.append(llama_workdir(_OUT.value, _LLAMA_STEPS.value))
    runs = [measure(w, _PER_CLASS.value) for w in workdirs]
    quant_rows = encoder_quant_rows(read_config(runs[0]["workdir"]))
    quant_lines = ["| encoder quant | bytes | cosine mean | cosine min | ms/prompt |",
                   "|---|---|---|---|---|"] + [
        f"| {q['quant']} | {q['bytes']:,} | {q['cosine_mean']:.5f} | {q['cosine_min']:.5f} | "
        f"{q['ms_per_prompt']:.2f} |" for q in quant_rows
    ]  # fmt: skip
    text = "\n".join(["# Text-to-image report", "", *table_lines(runs), "", *quant_lines, "",
                      "Goals:", *goal_lines(runs, quant_rows), ""])  # fmt: skip
    print(text)
    atomic_write_json(
        os.path.join(_OUT.value, "text_report.json"), {"runs": runs, "encoder_quant": quant_rows}
    )
    atomic_write_text(os.path.join(_OUT.value, "text_report.md"), text)


if __name__ == "__main__":
    cli.run("text_report", main)
