"""The ``textgan`` family: captions and their cache, the three fusions, the matching-aware loss,
and a miniature end to end (train, export, ``pi_infer.py --prompt``)."""

import json
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lwgen.data import load_source
from lwgen.data.captions import (
    FASHION_DESCRIPTIONS,
    FASHION_NAMES,
    CaptionTable,
    class_captions,
    read_cache,
    read_jsonl_captions,
)
from lwgen.errors import DataError, MissingFileError
from lwgen.families.textgan import make_trainer
from lwgen.families.textgan_prompts import ensure_caption_cache
from lwgen.losses.gan import matching_aware_d_loss, mode_seeking_loss
from lwgen.models.text_gan import FUSIONS, TextGenerator
from tests.conftest import ROOT, load_script
from tests.tiny import tiny_textgan_config

PI_INFER = os.path.join(ROOT, "export", "pi_infer.py")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return str(tmp_path_factory.mktemp("textgan"))


@pytest.mark.parametrize("source", ["digits", "fashion_mnist_idx"])
def test_templates_per_class_and_heldout_paraphrases_are_new(source):
    train, heldout = class_captions(source, "train"), class_captions(source, "heldout")
    assert len(train) == len(heldout) == 10
    assert all(len(t) >= 5 for t in train) and all(len(h) >= 3 for h in heldout)
    assert not {c for t in train for c in t} & {c for h in heldout for c in h}


def test_fashion_heldout_prompts_are_not_training_phrases_up_to_article_and_plural():
    def core(phrase):
        return re.sub(r"^(a pair of|an|a) ", "", phrase).removesuffix("s")

    phrases = {core(p) for group in (*FASHION_NAMES, *FASHION_DESCRIPTIONS) for p in group}
    heldout = {core(p) for group in class_captions("fashion_mnist_idx", "heldout") for p in group}
    assert len(heldout) == 30 and not heldout & phrases
    assert all(len(t) >= 40 for t in class_captions("fashion_mnist_idx", "train"))


def test_caption_sampler_never_yields_a_heldout_caption(scratch):
    config = tiny_textgan_config(scratch)
    table, _ = ensure_caption_cache(config.data)
    source = load_source(config.data, "train")
    train_rows = table.select("train")
    for step in range(20):
        batch = source.batch(step, 16, seed=3)
        match = np.all(batch["text"][:, None] == table.embeddings[None], axis=-1)
        rows = np.argmax(match, axis=1)
        assert match.any(axis=1).all() and np.isin(rows, train_rows).all()
        assert (table.owners[rows] == batch["label"]).all()  # a caption of the image's class
        wrong = np.argmax(np.all(batch["wrong_text"][:, None] == table.embeddings[None], -1), 1)
        assert np.isin(wrong, train_rows).all() and (table.owners[wrong] != batch["label"]).all()
    again = source.batch(5, 16, seed=3)
    np.testing.assert_array_equal(again["text"], source.batch(5, 16, seed=3)["text"])
    config.data.captions.interpolate = True  # GAN-INT: within the span of the class's captions
    mixed = load_source(config.data, "train").batch(0, 16, seed=3)
    for text, label in zip(mixed["text"], mixed["label"], strict=True):
        basis = table.embeddings[train_rows[table.owners[train_rows] == label]].T
        residual = text - basis @ np.linalg.lstsq(basis, text, rcond=None)[0]
        assert np.linalg.norm(residual) < 1e-4 and abs(np.linalg.norm(text) - 1) < 1e-5


def test_embedding_cache_is_reused_checked_and_rebuilt(scratch, tmp_path):
    config = tiny_textgan_config(scratch)
    config.data.captions.cache_dir = str(tmp_path)
    first, reused = ensure_caption_cache(config.data)
    assert not reused
    second, reused = ensure_caption_cache(config.data)
    assert reused and np.array_equal(first.embeddings, second.embeddings)
    (path,) = [str(p) for p in tmp_path.glob("*.npz")]
    with open(path, "r+b") as f:  # corrupt one byte past the zip header
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DataError, match="sha256"):
        read_cache(path)
    rebuilt, reused = ensure_caption_cache(config.data)
    assert not reused and np.array_equal(rebuilt.embeddings, first.embeddings)
    config.data.captions.max_tokens = 8  # another encoding: another cache file
    assert not ensure_caption_cache(config.data)[1]


def test_jsonl_captions_name_the_bad_line(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"file": "a.png", "caption": "a person jumping"}) + "\n")
    files, captions = read_jsonl_captions(str(good), str(tmp_path))
    assert captions == ["a person jumping"] and files == [str(tmp_path / "a.png")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"file": "a.png", "caption": "ok"}\n{"file": "a.png"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2 needs a non-empty \"caption\""):
        read_jsonl_captions(str(bad), str(tmp_path))
    bad.write_text('{"file": "b.png", "caption": "x"}\n')
    with pytest.raises(MissingFileError, match="b.png"):
        read_jsonl_captions(str(bad), str(tmp_path))
    with pytest.raises(MissingFileError, match="missing.jsonl"):
        read_jsonl_captions(str(tmp_path / "missing.jsonl"), str(tmp_path))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_each_fusion_has_the_image_shape_and_follows_the_prompt(fusion):
    generator = TextGenerator((16, 16, 1), text_dim=12, latent_dim=4, cond_dim=6, base_width=4,
                              fusion=fusion, attention_dim=4)  # fmt: skip
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    z = jax.random.normal(keys[0], (2, 4))
    tokens = jax.random.normal(keys[1], (2, 5, 12))
    mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], jnp.float32)
    text = jnp.mean(tokens, axis=1)
    variables = generator.init(keys[2], z, text, tokens, mask)
    # Zero-initialised FiLM / attention outputs start as the identity: perturb every parameter.
    leaves, tree = jax.tree.flatten(variables["params"])
    noise = jax.random.split(keys[3], len(leaves))
    params = jax.tree.unflatten(
        tree, [p + 0.3 * jax.random.normal(k, p.shape) for p, k in zip(leaves, noise, strict=True)]
    )
    variables = {**variables, "params": params}
    image = generator.apply(variables, z, text, tokens, mask)
    assert image.shape == (2, 16, 16, 1) and float(jnp.max(jnp.abs(image))) <= 1.0
    other_tokens = tokens[::-1]
    changed = generator.apply(variables, z, jnp.mean(other_tokens, 1), other_tokens, mask[::-1])
    assert float(jnp.max(jnp.abs(changed - image))) > 1e-3
    padded = tokens.at[0, 3:].set(100.0)  # padding tokens never change the image
    same = generator.apply(variables, z, text, padded, mask)
    np.testing.assert_allclose(same, image, atol=1e-5)


def test_matching_aware_loss_counts_mismatched_captions_as_fake_with_half_weight():
    real, fake, wrong = jnp.array([0.5, 2.0]), jnp.array([0.0, -3.0]), jnp.array([1.0, -1.0])
    loss, aux = matching_aware_d_loss(real, fake, wrong, "hinge")
    expected = np.mean([0.5, 0.0]) + 0.5 * (np.mean([1.0, 0.0]) + np.mean([2.0, 0.0]))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    assert float(aux["d_mismatched"]) == 0.0
    loss_ns, _ = matching_aware_d_loss(real, fake, wrong, "non_saturating")
    sp = jax.nn.softplus
    expected_ns = jnp.mean(sp(-real)) + 0.5 * (jnp.mean(sp(fake)) + jnp.mean(sp(wrong)))
    np.testing.assert_allclose(float(loss_ns), float(expected_ns), rtol=1e-6)


def test_mode_seeking_loss_punishes_a_generator_that_ignores_z():
    z_1, z_2 = jnp.zeros((2, 4)), jnp.full((2, 4), 2.0)  # |z_1 - z_2| = 2 per entry
    image = jnp.zeros((2, 3, 3, 1))
    collapsed, aux = mode_seeking_loss(image, image, z_1, z_2)
    assert float(aux["mode_seeking_ratio"]) == 0.0 and float(collapsed) > 1e4
    varied = image.at[0].set(1.0).at[1].set(0.5)  # ratios 1/2 and 1/4: loss mean(2, 4)
    loss, aux = mode_seeking_loss(varied, image, z_1, z_2)
    np.testing.assert_allclose(float(loss), 3.0, rtol=1e-4)
    np.testing.assert_allclose(float(aux["mode_seeking_ratio"]), 0.375, rtol=1e-6)
    wider, _ = mode_seeking_loss(2 * varied, image, z_1, z_2)
    assert float(wider) < float(loss)


def test_perturbed_text_stays_on_the_sphere_at_the_asked_distance():
    from lwgen.families.textgan import perturbed_text

    keys = jax.random.split(jax.random.PRNGKey(0), 256)
    text = jnp.tile(jnp.eye(1, 384), (256, 1))
    out = perturbed_text(keys, text, 0.5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)
    cosine = np.asarray(out[:, 0])  # |t + n| ≈ sqrt(1 + 0.25): cosine ≈ 1 / 1.118
    np.testing.assert_allclose(np.mean(cosine), 1 / np.sqrt(1.25), atol=0.02)
    np.testing.assert_array_equal(out, perturbed_text(keys, text, 0.5))
    assert not np.allclose(out[0], out[1])


def test_nearest_caption_accuracy_counts_heldout_prompts_nearest_their_class():
    embeddings = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.8, 0.6], [0.2, 0.9]], np.float32)
    table = CaptionTable(
        captions=np.array(list("abcde")),
        splits=np.array(["train", "train", "heldout", "heldout", "heldout"]),
        owners=np.array([0, 1, 0, 1, 1], np.int32),
        embeddings=embeddings,
        tokens=np.zeros((5, 1, 2), np.float32),
        token_mask=np.ones((5, 1), np.float32),
        encoder_checksum="x",
    )  # c is nearest a (right), d nearest a (wrong), e nearest b (right)
    assert table.nearest_caption_accuracy() == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def demo(scratch, tmp_path_factory):
    """Cross-attention fusion trained 2 steps through the demo: cache, train, evaluate, export,
    ``pi_infer.py --prompt`` in a fresh interpreter."""
    from lwgen.demo_text import run_text_demo

    config = tiny_textgan_config(scratch, num_train_steps=2, fusion="cross_attention")
    workdir = tmp_path_factory.mktemp("demo") / "w"
    return workdir, run_text_demo(config, str(workdir), PI_INFER, per_class=4)


def test_miniature_end_to_end_prompt_to_image(demo):
    """The text bundle (INT8 generator, float16 encoder with token states, tokenizer.json) is
    scored through the Pi path like the JAX model, and ``pi_infer.py`` wrote the prompt grid."""
    workdir, report = demo
    bundle = json.loads((workdir / "bundle" / "bundle.json").read_text())
    models = bundle["models"]
    assert (models["generator"]["quant"], models["text_encoder"]["quant"]) == ("int8", "float16")
    assert [t["name"] for t in models["text_encoder"]["outputs"]] == ["embedding", "tokens"]
    assert "tokenizer.json" in models["text_encoder"]["extra_files"]
    assert report["encoder_cosine"]["min"] > 0.99
    for key in ("heldout_class_accuracy", "train_frechet_distance", "generalisation_gap"):
        assert key in report["eval_pi"] and key in report["eval_float"]
    for key in ("heldout_precision", "train_recall", "real_precision"):
        assert 0.0 <= report["eval_pi"][key] <= 1.0
    assert report["pi_infer"]["encoder_ms_per_prompt"] > 0
    assert (workdir / "prompts_heldout.png").is_file()


def test_table_bundle_rejects_an_unknown_prompt_listing_the_known_ones(demo, tmp_path, capsys):
    from lwgen.export.bundle import export_workdir

    workdir, _ = demo
    shutil.copytree(workdir, tmp_path / "t")  # the same model, exported with a prompt table
    saved = json.loads((tmp_path / "t" / "config.json").read_text())
    saved["export"]["text_encoder"] = "table"
    (tmp_path / "t" / "config.json").write_text(json.dumps(saved))
    export_workdir(str(tmp_path / "t"), str(tmp_path / "table"))
    pi_infer = load_script(PI_INFER, "pi_infer_textgan")
    out, bundle = str(tmp_path / "grid.png"), f"--bundle={tmp_path / 'table'}"
    npy = str(tmp_path / "grid.npz")
    args = [bundle, "--prompt=the numeral 7", "--prompt=a handwritten two", "--num=3"]
    assert pi_infer.main([*args, f"--out={out}", f"--npy={npy}"]) == 0
    assert os.path.isfile(out)
    with np.load(npy) as saved:
        assert saved["images"].shape == (6, 16, 16, 1) and saved["images"].dtype == np.uint8
        assert saved["prompts"].tolist() == ["the numeral 7"] * 3 + ["a handwritten two"] * 3
    capsys.readouterr()
    assert pi_infer.main([bundle, "--prompt=a cat", f"--out={out}"]) == 2
    error = capsys.readouterr().err
    assert "the numeral 7" in error and "'a cat'" in error and len(error.splitlines()) == 1


def test_jsonl_folder_source_serves_each_image_with_its_caption(scratch, tmp_path):
    from PIL import Image

    captions = ["a person jumping", "a person running", "two people dancing"]
    lines = []
    for i, caption in enumerate(captions):
        Image.fromarray(np.full((20, 30), 80 * i, np.uint8)).save(tmp_path / f"p{i}.png")
        lines.append(json.dumps({"file": f"p{i}.png", "caption": caption}))
    (tmp_path / "captions.jsonl").write_text("\n".join(lines) + "\n")
    config = tiny_textgan_config(scratch)
    config.data.path = str(tmp_path)
    config.data.captions.update(base="jsonl", jsonl=str(tmp_path / "captions.jsonl"))
    table, _ = ensure_caption_cache(config.data)
    assert table.captions.tolist() == captions
    batch = load_source(config.data, "train").batch(0, 6, seed=0)
    assert batch["image"].shape == (6, 16, 16, 1) and batch["tokens"].shape == (6, 12, 16)
    own = np.argmax(np.all(batch["text"][:, None] == table.embeddings[None], -1), 1)
    np.testing.assert_array_equal(own, batch["label"])  # each image's own caption
    assert not np.any(np.all(batch["wrong_text"] == batch["text"], axis=-1))


@pytest.mark.slow
def test_text_report_tables_and_goals(scratch, tmp_path):
    from lwgen.demo_text import run_text_demo

    workdir = str(tmp_path / "w")
    run_text_demo(tiny_textgan_config(scratch, num_train_steps=2), workdir, PI_INFER, per_class=2)
    result = subprocess.run(
        [sys.executable, "bench/text_report.py", f"--workdirs={workdir}", f"--out={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "text_report.json").read_text())
    assert [q["quant"] for q in report["encoder_quant"]] == ["float16", "dynamic"]
    assert report["runs"][0]["generator"]["macs"] > 0
    assert "| digits | film | minilm | Pi (TFLite) |" in result.stdout
    assert "encoder float16 min cosine" in result.stdout


def test_family_sample_draws_held_out_prompts_of_each_label(demo):
    """``Family.sample`` (what the projector draws) gives one image per label from that class's
    held-out paraphrases; the judged data behind captions is the captioned source's."""
    from lwgen.eval.conditional import judged_data_config
    from lwgen.families.registry import get_family
    from lwgen.train.checkpoint import restore_inference

    restored = restore_inference(str(demo[0]))
    labels = np.array([0, 0, 7, 7])
    images = get_family("textgan").sample(restored.config, restored.variables, labels, seed=0)
    assert images.shape == (4, *restored.config.model.generator.image_shape)
    assert images.dtype == np.float32
    assert np.abs(images).max() <= 1.0
    assert not np.allclose(images[0], images[2])  # another class's prompt, another image
    assert judged_data_config(restored.config.data).source == "digits"


def test_a_config_saved_before_the_training_terms_builds_a_trainer_without_them(scratch):
    config = tiny_textgan_config(scratch)
    del config.train["mode_seeking_weight"], config.train["text_noise"]
    step = make_trainer(config).step
    assert step.keywords["mode_seeking_weight"] == 0.0 and step.keywords["text_noise"] == 0.0
