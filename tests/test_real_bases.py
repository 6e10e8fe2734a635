"""Real base models as users bring them: KoGPT2 as the Hub serves it, loaded by id, offline.

The replica (``kogpt2_repo`` in conftest, built by ``tests/replicas.py``) has exactly the real
repo's files: config.json, tokenizer.json, pytorch_model.bin; no tokenizer_config.json.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from replicas import KOGPT2_DOCUMENTED_TOKENS, KOGPT2_VOCAB, nsmc_sample_reviews
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from nsmc_gen.data import read_nsmc_file
from nsmc_gen.formatting import ReviewFormat
from nsmc_gen.modeling import NSMC_SAMPLE, load_model_and_tokenizer
from nsmc_gen.training import load_model, parse_args, prepare_datasets

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

REVIEWS = nsmc_sample_reviews("test")[:300]


def _load_finetune():
    spec = importlib.util.spec_from_file_location("finetune_recipe", RECIPES / "finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


finetune = _load_finetune()


@pytest.fixture(scope="module")
def documented_tokenizer(kogpt2_repo):
    """KoGPT2's tokenizer as its model card, the course and every user load it."""
    return PreTrainedTokenizerFast.from_pretrained(kogpt2_repo, **KOGPT2_DOCUMENTED_TOKENS)


def assert_faithful_kogpt2_tokenizer(tokenizer, documented) -> None:
    """What training and generation rely on: KoGPT2's ids for Korean, its special tokens, none added."""
    assert len(tokenizer) == KOGPT2_VOCAB, f"{len(tokenizer) - KOGPT2_VOCAB} token(s) added"
    special = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "mask_token_id")
    assert [getattr(tokenizer, name) for name in special] == [1, 1, 3, 5, 6]
    ids = tokenizer(REVIEWS, add_special_tokens=False)["input_ids"]
    assert ids == documented(REVIEWS, add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode(x) for x in ids] == REVIEWS


def test_the_documented_way_round_trips_the_replica(documented_tokenizer):
    """The reference itself: a faithful tokenizer over the replica's tokenizer.json."""
    assert_faithful_kogpt2_tokenizer(documented_tokenizer, documented_tokenizer)


def test_kogpt2_by_id_gets_the_tokenizer_it_was_trained_with(kogpt2_repo, documented_tokenizer):
    model, tokenizer = load_model_and_tokenizer(kogpt2_repo)
    assert_faithful_kogpt2_tokenizer(tokenizer, documented_tokenizer)
    assert model.get_input_embeddings().num_embeddings == KOGPT2_VOCAB  # not resized
    with torch.no_grad():
        model(torch.tensor([tokenizer("이 영화 정말 재밌어요")["input_ids"]]))


def test_autotokenizer_alone_fails_the_same_checks(kogpt2_repo, documented_tokenizer):
    """The old loader (AutoTokenizer): transformers 5 picks GPT2Tokenizer (byte-level) for this layout,
    and adds <|endoftext|> at id 51,200; the checks above catch it."""
    with pytest.raises(AssertionError):
        assert_faithful_kogpt2_tokenizer(AutoTokenizer.from_pretrained(kogpt2_repo), documented_tokenizer)


# ---------------------------------------------------------------- the course's recipe, by id


@pytest.fixture(scope="module")
def small_nsmc(tmp_path_factory) -> Path:
    """An NSMC folder of 64 train / 8 test rows from the shipped sample."""
    folder = tmp_path_factory.mktemp("small-nsmc")
    for split, rows in (("train", 64), ("test", 8)):
        source = read_nsmc_file(NSMC_SAMPLE / f"ratings_{split}.txt.gz")
        lines = ["id\tdocument\tlabel"] + [
            f"{r['id']}\t{r['document']}\t{r['label']}" for _, r in zip(range(rows), source, strict=False)
        ]
        (folder / f"ratings_{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def recipe_args(recipe: str, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """The course's recipe with small overrides only: data, size of the run, where it writes."""
    return [
        *("--config", str(RECIPES / "kogpt2" / recipe), "--data_dir", str(data_dir)),
        *("--validation_size", "8", "--max_length", "32", "--output_dir", str(output_dir)),
        *("--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4"),
        *("--max_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2"),
        *("--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1"),
        *("--sample_reviews", "1", "--dataloader_num_workers", "0", "--cpu_threads", "1"),
        *extra,
    ]


@pytest.fixture(scope="module")
def kogpt2_full_run(kogpt2_repo, small_nsmc, tmp_path_factory) -> Path:
    """``accelerate launch recipes/finetune.py --config recipes/kogpt2/full.yaml``, in-process, 2 steps."""
    return finetune.main(recipe_args("full.yaml", small_nsmc, tmp_path_factory.mktemp("kogpt2-full")))


def test_the_kogpt2_recipe_trains_on_the_base_by_id(kogpt2_full_run, documented_tokenizer):
    folder = kogpt2_full_run
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.get_input_embeddings().num_embeddings == KOGPT2_VOCAB  # never resized
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert_faithful_kogpt2_tokenizer(tokenizer, documented_tokenizer)
    saved = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved["tokenizer_class"] == "PreTrainedTokenizerFast"  # what transformers 4.x and 5.x both load


def test_kogpt2_training_examples_end_with_its_eos_and_prompts_are_their_prefix(kogpt2_repo, small_nsmc):
    _, model_args, data_args, training_args = parse_args(recipe_args("full.yaml", small_nsmc, Path("unused")))
    _, tokenizer = load_model(model_args, data_args)
    examples = prepare_datasets(data_args, tokenizer, training_args)["train"]["input_ids"]
    assert all(ids[-1] == 1 for ids in examples if len(ids) < data_args.max_length)  # "</s>"
    assert max(max(ids) for ids in examples) < KOGPT2_VOCAB
    prompts = [ReviewFormat().prompt_ids(tokenizer, sentiment) for sentiment in ("positive", "negative")]
    assert all(any(ids[: len(p)] == p for p in prompts) for ids in examples)
    first = examples[0]
    prompt = next(p for p in prompts if first[: len(p)] == p)
    print(f"\nKoGPT2 replica, first training example: {first}\n  its prompt: {prompt}")
