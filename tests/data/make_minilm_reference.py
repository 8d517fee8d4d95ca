"""Writes ``minilm_reference.npz``: all-MiniLM-L6-v2 embeddings from an independent implementation.

The reference is Hugging Face ``transformers`` 4.57.3 ``BertModel`` on PyTorch 2.13 (CPU, float32,
eval mode) loading the same ``model.safetensors``, with the same ``tokenizer.json`` through
``PreTrainedTokenizerFast``, then masked mean pooling and L2 normalisation exactly as the model
card's sentence-transformers modules (``1_Pooling`` mean tokens, ``2_Normalize``). Neither torch
nor transformers is a dependency of lwgen: run this by hand where both are installed::

    python tests/data/make_minilm_reference.py PATH/TO/model.zip
"""

import io
import json
import sys
import zipfile

import numpy as np
import safetensors.torch
import tokenizers
import torch
import transformers

SENTENCES = [
    "a handwritten seven",
    "a photo of a sneaker",
    "the number after six",
    "A sporty running shoe, photographed on white.",
    "a person jumping",
    "lwgen turns prompts into tiny images on a Raspberry Pi",
]


def main(zip_path: str) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        config = transformers.BertConfig.from_dict(json.loads(archive.read("config.json")))
        weights = safetensors.torch.load(archive.read("model.safetensors"))
        tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tokenizers.Tokenizer.from_str(archive.read("tokenizer.json").decode())
        )
    model = transformers.BertModel(config, add_pooling_layer=True).eval()
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not missing and unexpected == ["embeddings.position_ids"], (missing, unexpected)
    tokenizer.pad_token = "[PAD]"
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    out = io.BytesIO()
    np.savez(out, sentences=np.array(SENTENCES), embeddings=embeddings.astype(np.float32))
    with open(__file__.replace("make_minilm_reference.py", "minilm_reference.npz"), "wb") as f:
        f.write(out.getvalue())
    print(embeddings.shape, embeddings[:, :4])


if __name__ == "__main__":
    main(sys.argv[1])
