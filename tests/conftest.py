"""Shared fixtures. Tests never touch the network: the Hub is offline and HF_HOME is temporary.

The environment is set before anything imports huggingface_hub (which reads it at import).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HF_HOME = tempfile.mkdtemp(prefix="nsmc-gen-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402

from nsmc_gen.modeling import embedded_config, load_embedded_tokenizer  # noqa: E402

# 1 thread: on a busy 2-core machine two threads wait on each other (measured 8.6 s vs 0.8 s for a
# 12-token greedy generate on the tiny model); the tiny models gain nothing from a second thread.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer():
    """The shipped Korean tokenizer (vocabulary 6,000, Metaspace BPE with byte fallback)."""
    return load_embedded_tokenizer()


def build_tiny_model(tokenizer, seed: int = 0, **overrides) -> GPT2LMHeadModel:
    """A 2-layer, 32-dim GPT-2 over ``tokenizer``'s vocabulary: random, seeded, fast."""
    torch.manual_seed(seed)
    config = embedded_config(tokenizer, **{"n_layer": 2, "n_embd": 32, "n_head": 2, **overrides})
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def tiny_model(tokenizer) -> GPT2LMHeadModel:
    return build_tiny_model(tokenizer)


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_model, tokenizer):
    """A saved folder (weights + tokenizer) of the tiny model, as ``from_pretrained`` reads it."""
    folder = tmp_path / "tiny-model"
    tiny_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def kogpt2_repo(tmp_path_factory) -> str:
    """``skt/kogpt2-base-v2`` as the Hub serves it (config.json, tokenizer.json, pytorch_model.bin
    and nothing more; tiny weights), in this session's Hub cache: it loads by id offline.

    Built once per session (~4 s: a BPE trained on the NSMC sample). See ``tests/replicas.py``.
    """
    from huggingface_hub import constants
    from replicas import KOGPT2, kogpt2_tokenizer, nsmc_sample_reviews, put_in_hub_cache, write_kogpt2_repo

    files = write_kogpt2_repo(
        tmp_path_factory.mktemp("kogpt2-files"), kogpt2_tokenizer(nsmc_sample_reviews())
    )
    put_in_hub_cache(Path(constants.HF_HUB_CACHE), KOGPT2, files)
    return KOGPT2
