"""A continuation decodes with its leading space, in every client, in transformers 5.x and 4.57.

transformers 5.x's text-generation pipeline decodes only the new tokens and appends them to the
prompt; a Metaspace decoder (KoGPT2, the embedded tokenizer) drops the first decoded token's space,
so the prompt and the first generated word were glued ("긍정재밌는"). A finished folder's tokenizer
keeps that space (:func:`nsmc_gen.tokenization.continuation_decoder`). Each client runs in a fresh
process that never imports nsmc_gen, as a Hub user has it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import build_tiny_model
from replicas import KOGPT2_DOCUMENTED_TOKENS, kogpt2_tokenizer, nsmc_sample_reviews
from test_transformers4 import tf4_python  # noqa: F401  (the fixture: a transformers 4.57 venv)
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from nsmc_gen.decoding import recommended_generation_config
from nsmc_gen.formatting import ReviewFormat
from nsmc_gen.tokenization import continuation_decoder, save_tokenizer

PROMPTS = ["긍정", "부정", "긍정 이 영화", "부정 배우들 연기"]

# What a user of any transformers does: pipeline on the folder with a batch of prompts (full text
# and new text), and a streamer that skips the prompt. The continuation is held to tokens that
# start a word (▁...), so that every one needs its leading space.
CLIENT = r"""
import json, sys
import torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, TextStreamer, pipeline

folder, prompts = sys.argv[1], json.loads(sys.argv[2])
torch.set_num_threads(1)
tokenizer = AutoTokenizer.from_pretrained(folder)
special = set(tokenizer.all_special_ids)
vocab = sorted(tokenizer.get_vocab().items())
# a Hangul word: 4.57's pipeline also cleans up spaces before punctuation (" !" -> "!") by default
words = [i for t, i in vocab if t[:1] == "\u2581" and "\uac00" <= t[1:2] <= "\ud7a3" and i not in special]
allowed = lambda batch_id, ids: words[:200]
settings = dict(do_sample=False, max_new_tokens=4, prefix_allowed_tokens_fn=allowed)
pipe = pipeline("text-generation", model=folder)
run = lambda **kwargs: [r[0] for r in pipe(prompts, batch_size=len(prompts), **settings, **kwargs)]
full = [r["generated_text"] for r in run()]
new = [r["generated_text"] for r in run(return_full_text=False)]
ids = [[int(i) for i in r["generated_token_ids"]] for r in run(return_tensors=True)]

class Collect(TextStreamer):
    def on_finalized_text(self, text, stream_end=False):
        self.text = getattr(self, "text", "") + text

model = AutoModelForCausalLM.from_pretrained(folder)
streamed, streamed_ids = [], []
for prompt in prompts:
    streamer = Collect(tokenizer, skip_prompt=True, skip_special_tokens=True)
    out = model.generate(**tokenizer(prompt, return_tensors="pt"), streamer=streamer, **settings)
    streamed.append(streamer.text)
    streamed_ids.append([int(i) for i in out[0]])
# greedy, the whole vocabulary: a row of a batch continues as its prompt alone does (padding kept
# out of the way: 4.57 pads on the side the tokenizer names)
free = dict(do_sample=False, max_new_tokens=6, return_full_text=False)
batched = [r[0]["generated_text"] for r in pipe(prompts, batch_size=len(prompts), **free)]
alone = [pipe(prompt, **free)[0]["generated_text"] for prompt in prompts]
print(json.dumps({"transformers": transformers.__version__, "full": full, "new": new, "ids": ids,
                  "streamed": streamed, "streamed_ids": streamed_ids, "batched": batched, "alone": alone,
                  "nsmc_gen": "nsmc_gen" in sys.modules}))
"""


def finished_folder(folder: Path, model: GPT2LMHeadModel, tokenizer) -> Path:
    """What a finished folder holds for a plain client: weights, the tokenizer saved with the
    review format (as model_folder.save_finished_model saves it), the recommended generation config."""
    model.save_pretrained(folder)
    save_tokenizer(tokenizer, folder, ReviewFormat())
    recommended_generation_config(tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tokenizer) -> dict[str, tuple[Path, PreTrainedTokenizerFast]]:
    """The embedded tokenizer's and KoGPT2's (the replica's) layouts, each on a tiny GPT-2, and the
    tokenizer training used (whose decode of a whole sequence is the text a client must show)."""
    root = tmp_path_factory.mktemp("continuation")
    kogpt2 = PreTrainedTokenizerFast(
        tokenizer_object=kogpt2_tokenizer(nsmc_sample_reviews("test")[:3000]), **KOGPT2_DOCUMENTED_TOKENS
    )
    torch.manual_seed(0)
    kogpt2_model = GPT2LMHeadModel(GPT2Config(vocab_size=len(kogpt2), n_layer=2, n_embd=32, n_head=2))
    return {
        "embedded": (finished_folder(root / "embedded", build_tiny_model(tokenizer), tokenizer), tokenizer),
        "kogpt2": (finished_folder(root / "kogpt2", kogpt2_model.eval(), kogpt2), kogpt2),
    }


def run_client(python: Path | str, folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": ""}  # not src/: the client has transformers, not nsmc_gen
    proc = subprocess.run(
        [str(python), "-c", CLIENT, str(folder), json.dumps(PROMPTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["nsmc_gen"]
    return result


def assert_spaces_kept(result: dict, trained_with: PreTrainedTokenizerFast) -> None:
    # The whole sequence decoded by the tokenizer training used: "긍정 이 영화 정말 ..."
    expected = [trained_with.decode(ids, skip_special_tokens=True) for ids in result["ids"]]
    assert all(text.startswith(f"{prompt} ") for text, prompt in zip(expected, PROMPTS, strict=True))
    assert result["full"] == expected
    assert result["new"] == [text[len(prompt) :] for text, prompt in zip(expected, PROMPTS, strict=True)]
    streamed = [trained_with.decode(ids, skip_special_tokens=True) for ids in result["streamed_ids"]]
    assert result["streamed"] == [text[len(prompt) :] for text, prompt in zip(streamed, PROMPTS, strict=True)]
    assert all(text.startswith(" ") for text in result["new"] + result["streamed"])
    assert result["batched"] == result["alone"]  # prompts of 1 to 3 tokens in one batch


@pytest.mark.parametrize("layout", ["embedded", "kogpt2"])
def test_pipeline_and_streamer_keep_the_space_in_transformers_5(folders, layout):
    folder, trained_with = folders[layout]
    result = run_client(sys.executable, folder)
    assert result["transformers"].startswith("5.")
    assert_spaces_kept(result, trained_with)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["embedded", "kogpt2"])
def test_pipeline_and_streamer_keep_the_space_in_transformers_4(folders, layout, tf4_python):  # noqa: F811
    folder, trained_with = folders[layout]
    result = run_client(tf4_python, folder)
    assert result["transformers"].startswith("4.")
    assert_spaces_kept(result, trained_with)


@pytest.mark.parametrize("layout", ["embedded", "kogpt2"])
def test_whole_reviews_and_token_ids_stay_as_they_were(folders, layout):
    from transformers import AutoTokenizer

    folder, trained_with = folders[layout]
    saved = AutoTokenizer.from_pretrained(folder)
    reviews = [ReviewFormat().example(r, i % 2) for i, r in enumerate(nsmc_sample_reviews("test")[:500])]
    ids = trained_with(reviews)["input_ids"]
    assert saved(reviews)["input_ids"] == ids
    assert [saved.decode(x) for x in ids] == [trained_with.decode(x) for x in ids]
    assert saved.decode(trained_with("긍정 재밌는 영화")["input_ids"]) == "긍정 재밌는 영화"
    # a model that glues its first token to the sentiment word: the whole text as before
    assert saved.decode(trained_with("긍정보기 좋은 영화")["input_ids"]) == "긍정보기 좋은 영화"
    assert saved.decode(trained_with("이 영화")["input_ids"]) == " 이 영화"  # the price: no sentiment word


def test_only_decoders_that_strip_change_and_twice_is_once():
    fmt, other = ReviewFormat(), ReviewFormat(positive_word="좋아", negative_word="싫어", separator=": ")
    byte_level = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    assert continuation_decoder(byte_level, fmt) is None and continuation_decoder(None, fmt) is None
    kept = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True}
    assert continuation_decoder(kept, fmt) is None  # strips nothing already
    embedded = json.loads(embedded_tokenizer_json())["decoder"]
    once = continuation_decoder(embedded, fmt)
    again = continuation_decoder(once, other)
    assert len(again["decoders"]) == len(once["decoders"]) == len(embedded["decoders"])
    assert again["decoders"][-1]["pattern"]["Regex"] == r"\A (?=좋아|싫어)"


def embedded_tokenizer_json() -> str:
    from nsmc_gen.modeling import EMBEDDED_TOKENIZER

    return EMBEDDED_TOKENIZER.read_text(encoding="utf-8")


def test_the_shipped_tokenizer_asset_is_untouched(tokenizer):
    assert tokenizer.decode(tokenizer("이 영화")["input_ids"]) == "이 영화"
    steps = json.loads(embedded_tokenizer_json())["decoder"]["decoders"]
    assert steps[-1] == {"type": "Strip", "content": " ", "start": 1, "stop": 0}


@pytest.mark.slow
def test_a_saved_modern_tokenizer_loads_in_transformers_4(tmp_path, tf4_python):  # noqa: F811
    """Qwen2.5's layout saved by transformers 5: its extra special tokens, chat template and
    model_max_length load in 4.57 as in 5.x."""
    from test_modeling import CHAT_TEMPLATE, qwen_style_folder
    from transformers import AutoTokenizer

    from nsmc_gen.tokenization import load_tokenizer

    tokenizer = load_tokenizer(str(qwen_style_folder(tmp_path / "qwen")), GPT2Config())
    save_tokenizer(tokenizer, tmp_path / "saved", ReviewFormat())
    script = (
        "import json, sys; from transformers import AutoTokenizer as A; t = A.from_pretrained(sys.argv[1]); "
        "print(json.dumps([type(t).__name__, t.model_max_length, t.chat_template, "
        "t.additional_special_tokens, t('긍정 이 영화<|im_end|>')['input_ids']]))"
    )
    proc = subprocess.run(
        [str(tf4_python), "-c", script, str(tmp_path / "saved")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    name, max_length, template, extra, ids = json.loads(proc.stdout.strip().splitlines()[-1])
    here = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert (name, max_length, template) == ("PreTrainedTokenizerFast", 32768, CHAT_TEMPLATE)
    assert extra == ["<|im_start|>", "<|im_end|>"]
    assert ids == here("긍정 이 영화<|im_end|>")["input_ids"]
