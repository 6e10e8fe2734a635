"""One prompt format, read from the model; one decoding path, the one a Hub user runs.

A model trained with other sentiment words (``--positive_word 좋아 --negative_word 싫어``) carries
them in its generation config's ``sentiment_guidance`` field; every consumer (generate_reviews, the
CLI, the demo, the study and its Bayes judge, remote code in a fresh process) must prompt and guide
with them. Each is checked against a plain greedy loop written here from the words themselves, and
that loop is shown to differ under the default words, so a consumer falling back to them fails.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import build_tiny_model
from transformers import GenerationConfig, set_seed

from nsmc_gen.cli import main
from nsmc_gen.custom_generate import generate as custom_generate
from nsmc_gen.decoding import DEFAULT_GUIDANCE_SCALE, recommended_generation_config, sentiment_guidance
from nsmc_gen.formatting import ReviewFormat, review_format_of
from nsmc_gen.generation import generate_request, generate_reviews, stream_review
from nsmc_gen.model_folder import install_custom_generate
from nsmc_gen.modeling import load_model_and_tokenizer
from nsmc_gen.tokenization import save_tokenizer

OTHER = ReviewFormat(positive_word="좋아", negative_word="싫어")
PROMPT = "이 영화"
STEPS = 6
# greedy with guidance and nothing else between the model and the argmax: what the reference computes
GREEDY = {"strategy": "greedy", "repetition_penalty": 1.0, "min_new_tokens": 0, "max_new_tokens": STEPS}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tokenizer):
    """A finished folder of a model trained with 좋아/싫어 (weights, tokenizer, the generation
    config training writes for that format, custom_generate/), without running the recipe."""
    path = tmp_path_factory.mktemp("other-words") / "model"
    model = build_tiny_model(tokenizer, seed=1)
    model.generation_config = recommended_generation_config(tokenizer, OTHER)
    model.save_pretrained(path)
    save_tokenizer(tokenizer, path)
    install_custom_generate(path)
    return path


@pytest.fixture(scope="module")
def loaded(folder):
    return load_model_and_tokenizer(str(folder))


@torch.no_grad()
def reference(model, tokenizer, fmt, sentiment, prompt=PROMPT, scale=DEFAULT_GUIDANCE_SCALE, steps=STEPS):
    """Greedy classifier-free guidance by hand, from ``fmt``'s words: the review it writes."""
    opposite = "negative" if sentiment == "positive" else "positive"
    sequence = torch.tensor([fmt.prompt_ids(tokenizer, sentiment, prompt)])
    negative = torch.tensor([fmt.prompt_ids(tokenizer, opposite, prompt)])
    width = sequence.shape[1]
    for _ in range(steps):
        cond = torch.log_softmax(model(sequence).logits[:, -1], dim=-1)
        uncond = torch.log_softmax(model(torch.cat([negative, sequence[:, width:]], 1)).logits[:, -1], dim=-1)
        token = (scale * (cond - uncond) + uncond).argmax(-1, keepdim=True)
        sequence = torch.cat([sequence, token], dim=1)
        if token.item() == tokenizer.eos_token_id:
            break
    return fmt.strip_prefix(tokenizer.decode(sequence[0], skip_special_tokens=True), sentiment)


def test_the_format_round_trips_through_the_folder_and_defaults_without_it(folder, loaded, tokenizer):
    model, _ = loaded
    assert review_format_of(model) == OTHER
    assert ReviewFormat.from_generation_config(GenerationConfig.from_pretrained(folder)) == OTHER
    saved = json.loads((folder / "generation_config.json").read_text(encoding="utf-8"))["sentiment_guidance"]
    assert (saved["positive_word"], saved["negative_word"], saved["separator"]) == ("좋아", "싫어", " ")
    assert saved["prompt_ids"]["negative"] == OTHER.prompt_ids(tokenizer, "negative")
    # a base model (no field) and a folder written before the words were: the default format
    assert ReviewFormat.from_generation_config(GenerationConfig()) == ReviewFormat()
    old = {"sentiment_guidance": {"scale": 2.0, "prompt_ids": saved["prompt_ids"]}}
    assert ReviewFormat.from_generation_config(old) == ReviewFormat()
    with pytest.raises(
        ValueError, match="'sentiment_guidance' field: positive_word and negative_word must differ"
    ):
        ReviewFormat.from_generation_config(
            {"sentiment_guidance": {"positive_word": "a", "negative_word": "a"}}
        )


def test_the_reference_tells_the_words_apart(loaded, tokenizer):
    """The checks below have teeth: the model writes otherwise after the default words."""
    model, _ = loaded
    for sentiment in ("positive", "negative"):
        assert reference(model, tokenizer, OTHER, sentiment) != reference(
            model, tokenizer, ReviewFormat(), sentiment
        )


@pytest.mark.parametrize("sentiment", ["positive", "negative"])
def test_generate_reviews_and_streaming_prompt_and_guide_with_the_models_words(loaded, sentiment):
    model, tokenizer = loaded
    expected = reference(model, tokenizer, OTHER, sentiment)
    assert generate_reviews(model, tokenizer, sentiment, PROMPT, guidance_scale=2.0, **GREEDY) == [expected]
    *_, last = stream_review(model, tokenizer, sentiment, PROMPT, guidance_scale=2.0, **GREEDY)
    assert last == expected
    request = generate_request(model, tokenizer, sentiment, PROMPT, **GREEDY)
    assert request["input_ids"][0].tolist() == OTHER.prompt_ids(tokenizer, sentiment, PROMPT)


def test_generate_reviews_takes_no_format_the_model_records_it(loaded):
    """The format is the model's: a ``review_format=`` argument is refused as an unknown setting."""
    model, tokenizer = loaded
    with pytest.raises(ValueError, match="got review_format"):
        generate_reviews(model, tokenizer, "positive", PROMPT, review_format=OTHER, **GREEDY)


def test_the_cli_prompts_and_guides_with_the_models_words(capsys, folder, loaded):
    model, tokenizer = loaded
    options = ["--strategy", "greedy", "--repetition-penalty", "1", "--min-new-tokens", "0"]
    capsys.readouterr()
    code = main(["generate", str(folder), "--prompt", PROMPT, *options, "--max-new-tokens", str(STEPS)])
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [reference(model, tokenizer, OTHER, "positive")]


def test_the_demo_prompts_and_guides_with_the_models_words(loaded):
    from nsmc_gen.demo import _reviews

    model, tokenizer = loaded
    request = dict(prompt=PROMPT, sentiment="negative", strategy="greedy", seed=0, num_samples=1)
    knobs = dict(repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0, max_new_tokens=STEPS)
    expected = reference(model, tokenizer, OTHER, "negative")
    for stream in (True, False):
        *_, shown = _reviews(
            model, tokenizer, stream=stream, strict_penalty=False, guidance_scale=2.0, **request, **knobs
        )
        assert shown == expected, stream


def test_the_study_generates_and_judges_with_the_models_words(loaded):
    from nsmc_gen.evaluation.judges import BayesJudge
    from nsmc_gen.evaluation.study import generate_row

    model, tokenizer = loaded
    texts, labels, _, _ = generate_row(model, tokenizer, {**GREEDY, "guidance_scale": 2.0}, 2, seed=0)
    assert labels == [0, 0, 1, 1]
    assert texts == [
        reference(model, tokenizer, OTHER, s, prompt="") for s in ("negative",) * 2 + ("positive",) * 2
    ]
    # the Bayes judge scores each text after 싫어 and after 좋아, as training tokenized them
    review = "정말 재밌다"
    negative, positive = BayesJudge(model, tokenizer).score([review])
    for scores, sentiment in ((negative[0], "negative"), (positive[0], "positive")):
        ids = tokenizer(OTHER.example(review, sentiment), add_special_tokens=False)["input_ids"]
        ids += [tokenizer.eos_token_id]
        start = len(OTHER.prompt_ids(tokenizer, sentiment))
        with torch.no_grad():
            log_probs = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        expected = torch.stack([log_probs[t - 1, ids[t]] for t in range(start, len(ids))])
        torch.testing.assert_close(scores, expected, rtol=0, atol=1e-5)


# --- one decoding path ------------------------------------------------------------------------------


@pytest.mark.parametrize("guidance", [{}, {"guidance_scale": 1.0}])
def test_generate_reviews_equals_model_generate_with_the_folders_custom_generate(folder, loaded, guidance):
    """Same seed, same tokens: nsmc-gen and ``model.generate(custom_generate=folder, trust_remote_code=True)``
    (the folder's copy of the code, loaded by transformers), sampling with the folder's defaults."""
    model, tokenizer = loaded
    prompt = torch.tensor([OTHER.prompt_ids(tokenizer, "positive", PROMPT)])
    set_seed(0)
    out = model.generate(
        input_ids=prompt,
        custom_generate=str(folder),
        trust_remote_code=True,
        num_return_sequences=3,
        max_new_tokens=10,
        **guidance,
    )
    remote = [
        OTHER.strip_prefix(t, "positive") for t in tokenizer.batch_decode(out, skip_special_tokens=True)
    ]
    ours = generate_reviews(
        model, tokenizer, "positive", PROMPT, num_return_sequences=3, seed=0, max_new_tokens=10, **guidance
    )
    assert remote == ours
    *_, streamed = stream_review(model, tokenizer, "positive", PROMPT, seed=0, max_new_tokens=10, **guidance)
    set_seed(0)
    [one] = model.generate(
        input_ids=prompt, custom_generate=str(folder), trust_remote_code=True, max_new_tokens=10, **guidance
    )
    assert streamed == OTHER.strip_prefix(tokenizer.decode(one, skip_special_tokens=True), "positive")


def test_guided_and_unguided_differ_on_the_folder(loaded):
    """The guidance the comparison above switches on and off does change the reviews."""
    model, tokenizer = loaded
    options = dict(num_return_sequences=3, seed=0, max_new_tokens=10)
    assert generate_reviews(model, tokenizer, "positive", PROMPT, **options) != generate_reviews(
        model, tokenizer, "positive", PROMPT, guidance_scale=1.0, **options
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("top_p", 1.5),
        ("temperature", 0),
        ("repetition_penalty", 0),
        ("guidance_scale", 0),
        ("keep_eos_probability", 1),
        ("length_prior", [math.nan]),
    ],
)
def test_one_check_gives_both_paths_the_same_message(loaded, name, value):
    """nsmc-gen checks a request before loading a model; remote code checks the resolved config: one
    table, one message (max_new_tokens=0 never reaches it remotely: GenerationConfig refuses it first)."""
    model, tokenizer = loaded
    with pytest.raises(ValueError, match=rf"^{name} must be ") as ours:
        generate_reviews(model, tokenizer, "positive", **{"max_new_tokens": 2, name: value})
    prompt = torch.tensor([OTHER.prompt_ids(tokenizer, "positive")])
    with pytest.raises(ValueError) as remote:
        custom_generate.generate(input_ids=prompt, model=model, **{"max_new_tokens": 2, name: value})
    assert str(remote.value) == str(ours.value)


def test_prepare_generation_config_still_resolves_as_prepare_relies_on(tokenizer):
    """custom_generate.prepare calls transformers' PRIVATE ``_prepare_generation_config``. If this
    fails, transformers changed it: fix prepare (config resolution: arguments over the passed
    generation_config over model.generation_config; extra fields carried; model inputs handed back)."""
    model = build_tiny_model(tokenizer)
    parameters = inspect.signature(model._prepare_generation_config).parameters
    assert list(parameters)[0] == "generation_config", parameters
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()), parameters
    model.generation_config = GenerationConfig(do_sample=True, top_p=0.5, max_new_tokens=7, top_k=0)
    model.generation_config.sentiment_guidance = sentiment_guidance(tokenizer, OTHER)
    passed = GenerationConfig(top_p=0.9)
    passed.keep_eos_probability = False
    ids, mask = torch.tensor([[5, 6]]), torch.tensor([[1, 1]])
    config, model_kwargs = model._prepare_generation_config(
        passed, max_new_tokens=3, input_ids=ids, attention_mask=mask
    )
    assert (config.max_new_tokens, config.top_p, config.do_sample, config.top_k) == (3, 0.9, True, 0)
    assert config.sentiment_guidance == model.generation_config.sentiment_guidance  # the model's extra field
    assert config.keep_eos_probability is False  # the passed config's extra field wins
    assert model_kwargs["input_ids"] is ids and model_kwargs["attention_mask"] is mask
    assert passed.max_new_tokens is None and passed.top_p == 0.9  # the caller's config is not changed


PIPELINE = textwrap.dedent(
    """
    import json, sys
    sys.modules["nsmc_gen"] = None  # Hub users have no nsmc_gen
    import torch
    torch.set_num_threads(1)
    from transformers import pipeline, set_seed
    pipe = pipeline("text-generation", model=sys.argv[1], trust_remote_code=True)
    # token ids: the pipeline's text joins the prompt and the decoded continuation, which a Metaspace
    # decoder renders without the space between them
    greedy = dict(do_sample=False, repetition_penalty=1.0, min_new_tokens=0, max_new_tokens=int(sys.argv[2]))
    results = {}
    for sentiment, word in (("positive", "좋아"), ("negative", "싫어")):
        results[sentiment] = pipe(word + " 이 영화", return_tensors=True, **greedy)[0]["generated_token_ids"]
    set_seed(0)
    sampled = pipe("좋아 이 영화", num_return_sequences=2, max_new_tokens=10, return_tensors=True)
    results["sampled"] = [r["generated_token_ids"] for r in sampled]
    print(json.dumps(results))
    """
)


@pytest.mark.slow  # a fresh interpreter imports torch and transformers
def test_a_fresh_process_pipeline_with_remote_code_prompts_and_guides_with_the_folders_words(
    tmp_path, folder, loaded
):
    model, tokenizer = loaded
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", PIPELINE, str(folder), str(STEPS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout)

    def text(ids, sentiment):
        return OTHER.strip_prefix(tokenizer.decode(ids, skip_special_tokens=True), sentiment)

    for sentiment in ("positive", "negative"):  # guided by the folder's default scale, against the other word
        assert text(got[sentiment], sentiment) == reference(model, tokenizer, OTHER, sentiment)
    sampled = [text(ids, "positive") for ids in got["sampled"]]
    assert sampled == generate_reviews(
        model, tokenizer, "positive", PROMPT, num_return_sequences=2, seed=0, max_new_tokens=10
    )
