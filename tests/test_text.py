"""The text encoders (``lwgen.models.text``): parity with a reference, and the weight loader."""

import numpy as np
import pytest

from lwgen.errors import DataError, MissingFileError
from lwgen.models.text import load_minilm, read_model_files
from tests.conftest import ROOT
from tests.tiny import tiny_bert_dir

REFERENCE = f"{ROOT}/tests/data/minilm_reference.npz"


def test_minilm_matches_the_reference_embeddings():
    """all-MiniLM-L6-v2 in Flax against ``tests/data/minilm_reference.npz``.

    The reference values were made by ``tests/data/make_minilm_reference.py`` with Hugging Face
    ``transformers`` 4.57.3 ``BertModel`` on PyTorch 2.13 (CPU, float32), loading the same
    ``model.safetensors`` and ``tokenizer.json`` from the package's ``model.zip``, followed by the
    model card's masked mean pooling and L2 normalisation written in torch. It is independent
    of lwgen's network code, tokenizer wrapper and pooling, but not of the weights and the
    tokenizer file themselves (the same files are the input of both).
    """
    reference = np.load(REFERENCE)
    encoder = load_minilm(max_tokens=32)  # the longest sentence has 17 tokens
    embeddings = encoder.encode(reference["sentences"].tolist())
    assert embeddings.shape == (6, 384) and encoder.num_params == 22_565_376
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, atol=1e-6)
    assert np.max(np.abs(embeddings - reference["embeddings"])) <= 1e-4


def test_loader_maps_made_weights_and_pads_to_max_tokens(tmp_path):
    """On a made 2-layer BERT: torch ``[out, in]`` Linear weights become ``[in, out]`` kernels,
    padding does not change an embedding, and ``max_tokens`` truncates."""
    from safetensors.numpy import load_file

    folder = tiny_bert_dir(str(tmp_path / "bert"))
    weights = load_file(f"{folder}/model.safetensors")
    encoder = load_minilm(folder, max_tokens=8)
    params = encoder.variables["params"]
    np.testing.assert_array_equal(
        params["layer_1"]["intermediate"]["kernel"],
        weights["encoder.layer.1.intermediate.dense.weight"].T,
    )
    ids, mask = encoder.tokenize(["a handwritten seven", "one two three four five six seven"])
    assert (
        ids.shape == (2, 8) and mask[0].sum() == 6 and mask[1].sum() == 8
    )  # [CLS] a hand ##written seven [SEP]
    short = load_minilm(folder, max_tokens=6).encode(["a handwritten seven"])
    np.testing.assert_allclose(encoder.encode(["a handwritten seven"]), short, atol=1e-5)
    states, state_mask = encoder.token_states(["a"])
    assert states.shape == (1, 8, 16) and state_mask.shape == (1, 8)


def test_loader_names_a_missing_tensor_and_a_missing_file(tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = tiny_bert_dir(str(tmp_path / "bert"))
    weights = load_file(f"{folder}/model.safetensors")
    del weights["encoder.layer.1.output.dense.bias"]
    save_file(weights, f"{folder}/model.safetensors")
    with pytest.raises(DataError, match="encoder.layer.1.output.dense.bias"):
        load_minilm(folder)
    with pytest.raises(MissingFileError, match="lacks"):
        read_model_files(str(tmp_path))


@pytest.mark.slow  # importing transformers alone takes about 10 s
def test_llama_encoder_from_a_local_folder(tmp_path):
    """A tiny randomly initialised Llama (``write_tiny_llama``) loads offline through the same
    interface: unit ``[B, 32]`` embeddings, ``[B, L, 32]`` states, padding masked."""
    import zipfile

    from lwgen.families.textgan_prompts import load_text_encoder
    from lwgen.models.llm_text import write_tiny_llama
    from lwgen.models.text import minilm_zip_path

    with zipfile.ZipFile(minilm_zip_path()) as archive:
        tokenizer_json = archive.read("tokenizer.json").decode()
    folder = write_tiny_llama(str(tmp_path / "llama"), tokenizer_json)
    encoder = load_text_encoder("llama", folder, 12)
    embeddings, states, mask = encoder.encode_all(["a handwritten seven", "a photo"])
    assert embeddings.shape == (2, 32) and states.shape == (2, 12, 32) and encoder.dim == 32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, atol=1e-5)
    assert mask.sum(axis=1).tolist() == [6.0, 4.0]
    assert not np.allclose(embeddings[0], embeddings[1])
    with pytest.raises(MissingFileError, match="lacks"):
        load_text_encoder("llama", str(tmp_path), 12)
