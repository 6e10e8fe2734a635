"""generate_reviews & co.: the strategy table, our processors in place of the built-ins, sentiment
guidance against a two-branch reference, streaming, and the model folder's custom_generate."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    set_seed,
)

from nsmc_gen.calibration import calibrate_length_prior, stop_rates
from nsmc_gen.custom_generate import generate as custom_generate
from nsmc_gen.custom_generate.generate import GuidanceLogitsProcessor, opposite_sentiment_prompts
from nsmc_gen.decoding import (
    DECODING_DEFAULTS,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_KEEP_EOS_PROBABILITY,
    DEFAULT_USE_LENGTH_PRIOR,
    recommended_generation_config,
)
from nsmc_gen.formatting import ReviewFormat
from nsmc_gen.generation import (
    build_generate_kwargs,
    decoding_settings,
    generate_reviews,
    strategy_knobs,
    stream_review,
)
from nsmc_gen.model_folder import install_custom_generate
from nsmc_gen.processors import (
    KeepEOSProbabilityLogitsProcessor,
    LengthPriorLogitsProcessor,
    NucleusLogitsProcessor,
    StrictRepetitionPenaltyLogitsProcessor,
)

FMT = ReviewFormat()


def token_ids(model, tokenizer, *args, **kwargs) -> tuple[torch.Tensor, int]:
    """Generated sequences (prompt included) and the prompt width, through build_generate_kwargs."""
    generate_kwargs = build_generate_kwargs(model, tokenizer, *args, **kwargs)
    return model.generate(**generate_kwargs), generate_kwargs["input_ids"].shape[1]


def ids(tokenizer, sentiment, prompt="") -> torch.Tensor:
    return torch.tensor([FMT.prompt_ids(tokenizer, sentiment, prompt)])


# --- the strategy table and the built-ins switched off ------------------------------------------

STRATEGY_CASES = [
    ("greedy", {}, ["StrictRepetitionPenaltyLogitsProcessor"]),
    ("beam", {"num_beams": 3}, ["StrictRepetitionPenaltyLogitsProcessor"]),
    ("sampling", {"temperature": 0.7}, ["StrictRepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper"]),
    ("top-k", {"top_k": 20}, ["StrictRepetitionPenaltyLogitsProcessor", "KeepEOSProbabilityLogitsProcessor"]),
    (
        "top-p",
        {"top_p": 0.8, "temperature": 0.9, "keep_eos_probability": False},
        ["StrictRepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper", "NucleusLogitsProcessor"],
    ),
]


@pytest.mark.parametrize(("strategy", "knobs", "expected"), STRATEGY_CASES)
def test_each_strategy_gets_our_processors_and_the_builtins_off(
    tiny_model, tokenizer, strategy, knobs, expected
):
    kwargs = build_generate_kwargs(
        tiny_model, tokenizer, "positive", strategy=strategy, guidance_scale=1, **knobs
    )
    config = kwargs["generation_config"]
    assert [type(p).__name__ for p in kwargs["logits_processor"]] == expected
    assert (config.repetition_penalty, config.top_p, config.temperature, config.guidance_scale) == (
        1,
        1,
        1,
        1,
    )
    assert config.top_k == (0 if config.do_sample else 50)  # 50: transformers' inert value when not sampling
    assert config.do_sample == (strategy not in ("greedy", "beam"))
    assert config.num_beams == knobs.get("num_beams", 1)
    assert config.max_new_tokens == 64 and config.pad_token_id == tokenizer.pad_token_id


def test_defaults_come_from_decoding(tiny_model, tokenizer):
    settings = decoding_settings(sentiment="positive")
    assert settings == {
        "strategy": "top-p",
        "top_p": DECODING_DEFAULTS["top_p"],
        "temperature": 1.0,
        "keep_eos_probability": DEFAULT_KEEP_EOS_PROBABILITY,
        "length_prior": DEFAULT_USE_LENGTH_PRIOR,
        "repetition_penalty": DECODING_DEFAULTS["repetition_penalty"],
        "no_repeat_ngram_size": 0,
        "min_new_tokens": DECODING_DEFAULTS["min_new_tokens"],
        "max_new_tokens": DECODING_DEFAULTS["max_new_tokens"],
        "guidance_scale": DEFAULT_GUIDANCE_SCALE,
    }
    assert decoding_settings(sentiment=None)["guidance_scale"] == 1.0  # nothing to guide against
    assert list(strategy_knobs("top-k")) == ["top_k", *list(settings)[2:-1]]
    assert "keep_eos_probability" not in strategy_knobs("sampling")  # nothing is truncated
    assert "length_prior" not in strategy_knobs("greedy")  # a prior on sampled lengths


@pytest.mark.parametrize(
    ("strategy", "knobs", "reference"),
    [
        (
            "greedy",
            {"repetition_penalty": 1.3},
            lambda width: [StrictRepetitionPenaltyLogitsProcessor(1.3, pad_token_id=2)],
        ),
        (
            "sampling",
            {"temperature": 0.8, "repetition_penalty": 1.3},
            lambda width: [
                StrictRepetitionPenaltyLogitsProcessor(1.3, pad_token_id=2),
                TemperatureLogitsWarper(0.8),
            ],
        ),
        (
            "top-k",
            {"top_k": 7, "temperature": 0.8, "repetition_penalty": 1.3, "keep_eos_probability": False},
            lambda width: [
                StrictRepetitionPenaltyLogitsProcessor(1.3, pad_token_id=2),
                TemperatureLogitsWarper(0.8),
                TopKLogitsWarper(7),
            ],
        ),
        (
            "top-p",
            {"top_p": 0.5, "temperature": 0.8, "repetition_penalty": 1.3, "keep_eos_probability": False},
            lambda width: [
                StrictRepetitionPenaltyLogitsProcessor(1.3, pad_token_id=2),
                TemperatureLogitsWarper(0.8),
                NucleusLogitsProcessor(0.5),
            ],
        ),
        (
            "top-p",
            {"top_p": 0.5, "length_prior": [-1.0, -0.5]},  # the defaults: EOS keeps its probability
            lambda width: [
                StrictRepetitionPenaltyLogitsProcessor(1.2, pad_token_id=2),
                LengthPriorLogitsProcessor([-1.0, -0.5], eos_token_id=1, prompt_length=width),
                KeepEOSProbabilityLogitsProcessor([NucleusLogitsProcessor(0.5)], eos_token_id=1),
            ],
        ),
    ],
)
def test_generate_applies_each_processor_exactly_once(tiny_model, tokenizer, strategy, knobs, reference):
    """The scores generate samples from == the raw logits through each processor ONCE, in order."""
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id) == (2, 1)
    kwargs = build_generate_kwargs(
        tiny_model,
        tokenizer,
        "negative",
        "이 영화",
        strategy=strategy,
        guidance_scale=1,
        min_new_tokens=0,  # the default floor masks EOS: the references apply only the processors
        max_new_tokens=4,
        **knobs,
    )
    set_seed(0)
    out = tiny_model.generate(**kwargs, output_scores=True, output_logits=True, return_dict_in_generate=True)
    width = kwargs["input_ids"].shape[1]
    expected_processors = LogitsProcessorList(reference(width))
    for step, (scores, logits) in enumerate(zip(out.scores, out.logits, strict=True)):
        expected = expected_processors(out.sequences[:, : width + step], logits.clone())
        torch.testing.assert_close(scores, expected, rtol=0, atol=0)


def test_the_double_application_trap_is_real(tiny_model, tokenizer):
    """With the built-in penalty ALSO on (FIELD-NOTES' trap), the check above would fail."""
    kwargs = build_generate_kwargs(
        tiny_model,
        tokenizer,
        "negative",
        "이 영화",
        strategy="greedy",
        repetition_penalty=1.3,
        max_new_tokens=1,
    )
    kwargs["generation_config"].repetition_penalty = 1.3
    out = tiny_model.generate(**kwargs, output_scores=True, output_logits=True, return_dict_in_generate=True)
    once = StrictRepetitionPenaltyLogitsProcessor(1.3, pad_token_id=tokenizer.pad_token_id)
    assert not torch.equal(out.scores[0], once(kwargs["input_ids"], out.logits[0].clone()))


def test_greedy_is_deterministic_and_is_the_argmax_of_the_penalised_logits(tiny_model, tokenizer):
    options = {"strategy": "greedy", "max_new_tokens": 8, "guidance_scale": 1}
    first = generate_reviews(tiny_model, tokenizer, "positive", **options)
    assert first == generate_reviews(tiny_model, tokenizer, "positive", **options)
    sequence = ids(tokenizer, "positive")
    penalty = StrictRepetitionPenaltyLogitsProcessor(1.2, pad_token_id=tokenizer.pad_token_id)
    for _ in range(8):  # the reference: a plain loop, no cache
        scores = penalty(sequence, tiny_model(sequence).logits[:, -1])
        sequence = torch.cat([sequence, scores.argmax(-1, keepdim=True)], dim=1)
        if sequence[0, -1] == tokenizer.eos_token_id:
            break
    text = tokenizer.decode(sequence[0], skip_special_tokens=True)
    assert first == [FMT.strip_prefix(text, "positive")]


def test_same_seed_same_reviews_other_seed_other_reviews(tiny_model, tokenizer):
    def run(seed):
        return generate_reviews(
            tiny_model, tokenizer, "positive", num_return_sequences=3, seed=seed, max_new_tokens=8
        )

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_strict_penalty_never_repeats_a_token_greedy_and_beam(tiny_model, tokenizer):
    for strategy, knobs in [("greedy", {}), ("beam", {"num_beams": 3, "num_return_sequences": 3})]:
        sequences, _ = token_ids(
            tiny_model,
            tokenizer,
            "positive",
            "이 영화",
            strategy=strategy,
            repetition_penalty=math.inf,
            max_new_tokens=20,
            guidance_scale=1,
            **knobs,
        )
        for row in sequences.tolist():
            tokens = [t for t in row if t != tokenizer.pad_token_id]
            assert len(tokens) == len(set(tokens)), (strategy, tokens)
    # the unpenalised random model does repeat itself: the test has teeth
    sequences, _ = token_ids(
        tiny_model, tokenizer, "positive", strategy="greedy", repetition_penalty=1.0, max_new_tokens=30
    )
    assert len(set(sequences[0].tolist())) < sequences.shape[1]


def test_no_repeat_ngram_and_min_new_tokens_stay_with_transformers(tiny_model, tokenizer):
    sequences, width = token_ids(
        tiny_model,
        tokenizer,
        "positive",
        strategy="greedy",
        repetition_penalty=1.0,
        no_repeat_ngram_size=1,
        min_new_tokens=12,
        max_new_tokens=12,
    )
    generated = sequences[0, width:].tolist()
    assert len(generated) == 12 and tokenizer.eos_token_id not in generated
    assert len(set(sequences[0].tolist())) == sequences.shape[1]  # unigrams never repeat


# --- EOS: its untruncated probability and the length prior -------------------------------------


def test_length_prior_knob_takes_the_models_own_none_or_a_given_one(tiny_model, tokenizer):
    def prior(**knobs):
        kwargs = build_generate_kwargs(tiny_model, tokenizer, "positive", guidance_scale=1, **knobs)
        found = [p for p in kwargs["logits_processor"] if isinstance(p, LengthPriorLogitsProcessor)]
        return found[0].eos_bias if found else None

    assert prior() is None  # the model has none
    tiny_model.generation_config.length_prior = [-2.0, -1.0]  # as from_pretrained reads the field
    assert prior() == [-2.0, -1.0]
    assert prior(length_prior=False) is None
    assert prior(length_prior=[0.5]) == [0.5]
    assert prior(strategy="sampling") == [-2.0, -1.0]
    kwargs = build_generate_kwargs(tiny_model, tokenizer, "positive", strategy="greedy")
    assert not any(isinstance(p, LengthPriorLogitsProcessor) for p in kwargs["logits_processor"])
    with pytest.raises(
        ValueError, match="length_prior must be True .*, False .* or a list of finite numbers"
    ):
        build_generate_kwargs(tiny_model, tokenizer, "positive", length_prior=[math.nan])


def test_keep_eos_probability_wraps_top_k_and_top_p(tiny_model, tokenizer):
    for strategy, inner in (("top-k", TopKLogitsWarper), ("top-p", NucleusLogitsProcessor)):
        kwargs = build_generate_kwargs(tiny_model, tokenizer, "positive", strategy=strategy, guidance_scale=1)
        last = kwargs["logits_processor"][-1]
        assert isinstance(last, KeepEOSProbabilityLogitsProcessor) and last.eos_token_id == [1]
        assert [type(p) for p in last.processors] == [inner]
        kwargs = build_generate_kwargs(
            tiny_model, tokenizer, "positive", strategy=strategy, keep_eos_probability=False
        )
        assert isinstance(kwargs["logits_processor"][-1], inner)
    with pytest.raises(ValueError, match="keep_eos_probability must be True or False, got 1"):
        build_generate_kwargs(tiny_model, tokenizer, "positive", keep_eos_probability=1)


def constant_stop_model(tokenizer, stop_probability):
    """A GPT-2 whose next-token distribution is the same at every step: EOS with ``stop_probability``,
    every other token alike. The final layer norm outputs a constant vector (weight 0, bias e_0), so
    the logits are the first column of the LM head: 0 for every token but EOS."""
    from conftest import build_tiny_model

    model = build_tiny_model(tokenizer)
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.lm_head.weight.zero_()  # tied to the input embeddings: the inputs no longer matter either
        others = model.config.vocab_size - 1
        model.lm_head.weight[tokenizer.eos_token_id, 0] = math.log(
            stop_probability / (1 - stop_probability) * others
        )
    return model


def test_calibrated_length_prior_gives_back_the_reference_lengths(tokenizer):
    """A model that stops with probability 0.4 at every step writes ~1.5-token texts; the reference
    texts have 6 tokens or so. The calibrated prior must bring the sampled lengths to the reference's."""
    model = constant_stop_model(tokenizer, 0.4)
    reference = [" ".join(["영화"] * n) for n in (4, 5, 6, 6, 7, 8) * 10]
    counts = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in reference]
    target = sum(counts) / len(counts)

    def mean_tokens(**knobs):
        texts = []
        for sentiment in ("positive", "negative"):
            texts += generate_reviews(
                model,
                tokenizer,
                sentiment,
                num_return_sequences=100,
                seed=5,
                guidance_scale=1,
                repetition_penalty=1.0,
                min_new_tokens=0,  # lengths from the model and the prior, not the default floor
                max_new_tokens=24,
                **knobs,
            )
        return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts) / len(texts)

    before = mean_tokens()
    prior = calibrate_length_prior(
        model,
        tokenizer,
        reference,
        rounds=2,
        num_reviews=100,
        steps=12,
        guidance_scale=1,
        repetition_penalty=1.0,
        max_new_tokens=24,
    )
    after = mean_tokens(length_prior=prior)
    assert before < 0.5 * target and abs(after - target) < 0.25 * target, (before, after, target, prior)
    assert prior[1] < -1  # after 1 token the model stops 0.4 of the time, the reference never


def test_stop_rates_and_calibration_arguments(tiny_model, tokenizer):
    assert stop_rates([1, 1, 2, 5], steps=3) == [(0, 4), (2, 4), (2, 5)]
    for name, value in (("rounds", 0), ("num_reviews", 0), ("steps", 1)):
        with pytest.raises(ValueError, match=f"{name} must be an integer >= "):
            calibrate_length_prior(tiny_model, tokenizer, ["영화"], **{name: value})
    with pytest.raises(ValueError, match="reference_texts must hold at least one text"):
        calibrate_length_prior(tiny_model, tokenizer, [])


# --- prompts and texts --------------------------------------------------------------------------


def test_prompts_come_from_review_format(tiny_model, tokenizer):
    kwargs = build_generate_kwargs(tiny_model, tokenizer, "positive", ["이 영화", ""], guidance_scale=2.0)
    long, short = FMT.prompt_ids(tokenizer, "positive", "이 영화"), FMT.prompt_ids(tokenizer, "positive")
    pad = tokenizer.pad_token_id
    assert kwargs["input_ids"].tolist() == [long, [pad] * (len(long) - len(short)) + short]
    assert kwargs["attention_mask"].tolist() == [
        [1] * len(long),
        [0] * (len(long) - len(short)) + [1] * len(short),
    ]
    guide = kwargs["logits_processor"][0]
    negative_ids = [
        [t for t, m in zip(r, k, strict=True) if m]
        for r, k in zip(guide.negative_ids.tolist(), guide.negative_mask.tolist(), strict=True)
    ]
    assert negative_ids == [
        FMT.prompt_ids(tokenizer, "negative", "이 영화"),
        FMT.prompt_ids(tokenizer, "negative"),
    ]
    # the words come with the model (its generation config's sentiment_guidance field)
    custom = ReviewFormat(positive_word="좋음", negative_word="나쁨")
    tiny_model.generation_config = recommended_generation_config(tokenizer, custom)
    kwargs = build_generate_kwargs(tiny_model, tokenizer, 1, "와")
    assert kwargs["input_ids"][0].tolist() == custom.prompt_ids(tokenizer, "positive", "와")
    guide = kwargs["logits_processor"][0]
    assert guide.negative_ids[0].tolist() == custom.prompt_ids(tokenizer, "negative", "와")
    tiny_model.generation_config = GenerationConfig()
    # no sentiment, no prompt: start from the EOS token (this tokenizer has no BOS)
    kwargs = build_generate_kwargs(tiny_model, tokenizer, None)
    assert kwargs["input_ids"].tolist() == [[tokenizer.eos_token_id]]


def test_texts_keep_the_prompt_and_lose_the_sentiment_word(tiny_model, tokenizer):
    sequences, _ = token_ids(
        tiny_model, tokenizer, "negative", "이 영화", strategy="greedy", max_new_tokens=6
    )
    full = tokenizer.decode(sequences[0], skip_special_tokens=True)
    assert full.startswith("부정 이 영화")
    text = generate_reviews(tiny_model, tokenizer, "negative", "이 영화", strategy="greedy", max_new_tokens=6)
    assert text == [full[len("부정") :].strip()]


def test_a_batch_of_prompts_equals_each_prompt_alone(tiny_model, tokenizer):
    """Left padding is invisible, guided (padded negative prompts too) or not, greedy or beam.

    transformers' own UnbatchedClassifierFreeGuidanceLogitsProcessor fails the guided cases: its
    negative branch counts the left padding as positions."""
    prompts = ["이 영화", ""]  # "긍정 이 영화" / "긍정": two tokens of left padding
    for options in [
        {"strategy": "greedy", "guidance_scale": 1},
        {"strategy": "greedy", "guidance_scale": 2.0},
        {"strategy": "beam", "num_beams": 2, "guidance_scale": 2.0},
    ]:
        batched = generate_reviews(tiny_model, tokenizer, "positive", prompts, max_new_tokens=6, **options)
        alone = [
            generate_reviews(tiny_model, tokenizer, "positive", p, max_new_tokens=6, **options)[0]
            for p in prompts
        ]
        assert batched == alone, options


def test_generation_runs_in_eval_mode_and_restores_the_mode(tiny_model, tokenizer):
    tiny_model.train()
    runs = [
        generate_reviews(tiny_model, tokenizer, "positive", strategy="greedy", max_new_tokens=8)
        for _ in range(2)
    ]
    assert runs[0] == runs[1]  # no dropout
    assert tiny_model.training


# --- sentiment guidance -------------------------------------------------------------------------


@torch.no_grad()
def reference_guidance(model, positive, negative, scale, steps, then, sample, eos, pad):
    """Classifier-free guidance by hand: both branches run in full each step (no cache, no padding),
    combined as transformers' UnbatchedClassifierFreeGuidanceLogitsProcessor does, then ``then``."""
    sequence, generated = positive, positive[:, :0]
    unfinished = torch.ones(positive.shape[0], dtype=torch.long)
    for _ in range(steps):
        cond = torch.log_softmax(model(sequence).logits[:, -1], dim=-1)
        uncond = torch.log_softmax(model(torch.cat([negative, generated], dim=1)).logits[:, -1], dim=-1)
        scores = then(sequence, scale * (cond - uncond) + uncond)
        if sample:
            token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            token = scores.argmax(-1)
        token = token * unfinished + pad * (1 - unfinished)
        sequence = torch.cat([sequence, token[:, None]], dim=1)
        generated = torch.cat([generated, token[:, None]], dim=1)
        unfinished = unfinished & (token != eos).long()
        if not unfinished.any():
            break
    return sequence


def test_guided_sampling_equals_a_two_branch_reference(tiny_model, tokenizer):
    rows = 3
    positive = ids(tokenizer, "positive", "이 영화").repeat(rows, 1)
    negative = ids(tokenizer, "negative", "이 영화").repeat(rows, 1)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    then = LogitsProcessorList(
        [
            StrictRepetitionPenaltyLogitsProcessor(DECODING_DEFAULTS["repetition_penalty"], pad_token_id=pad),
            NucleusLogitsProcessor(DECODING_DEFAULTS["top_p"]),
        ]
    )
    set_seed(3)
    expected = reference_guidance(tiny_model, positive, negative, 2.0, 10, then, True, eos, pad)
    set_seed(3)
    sequences, _ = token_ids(
        tiny_model,
        tokenizer,
        "positive",
        "이 영화",
        num_return_sequences=rows,
        guidance_scale=2.0,
        min_new_tokens=0,  # the reference loop has no length floor
        max_new_tokens=10,
    )
    assert sequences.tolist() == expected.tolist()
    set_seed(3)
    unguided, _ = token_ids(
        tiny_model,
        tokenizer,
        "positive",
        "이 영화",
        num_return_sequences=rows,
        guidance_scale=1,
        min_new_tokens=0,
        max_new_tokens=10,
    )
    assert unguided.tolist() != expected.tolist()  # guidance changed what was sampled


def test_guidance_comes_before_the_repetition_penalty(tiny_model, tokenizer):
    """Order, per step: guidance on log-probabilities, then our penalty (transformers' own order)."""
    kwargs = build_generate_kwargs(
        tiny_model,
        tokenizer,
        "positive",
        strategy="greedy",
        guidance_scale=3.0,
        repetition_penalty=1.5,
        min_new_tokens=0,
        max_new_tokens=3,
    )
    assert [type(p).__name__ for p in kwargs["logits_processor"]] == [
        "GuidanceLogitsProcessor",
        "StrictRepetitionPenaltyLogitsProcessor",
    ]
    out = tiny_model.generate(**kwargs, output_scores=True, output_logits=True, return_dict_in_generate=True)
    width = kwargs["input_ids"].shape[1]
    negative = ids(tokenizer, "negative")
    penalty = StrictRepetitionPenaltyLogitsProcessor(1.5, pad_token_id=tokenizer.pad_token_id)
    for step, (scores, logits) in enumerate(zip(out.scores, out.logits, strict=True)):
        sequence, generated = out.sequences[:, : width + step], out.sequences[:, width : width + step]
        uncond = torch.log_softmax(tiny_model(torch.cat([negative, generated], 1)).logits[:, -1], dim=-1)
        cond = torch.log_softmax(logits, dim=-1)
        guided_first = penalty(sequence, 3.0 * (cond - uncond) + uncond)
        torch.testing.assert_close(scores, guided_first, rtol=1e-5, atol=1e-5)
        penalised = torch.log_softmax(penalty(sequence, logits.clone()), dim=-1)
        penalty_first = 3.0 * (penalised - uncond) + uncond
        assert not torch.allclose(scores, penalty_first, rtol=1e-5, atol=1e-5)


def test_guidance_needs_a_sentiment_and_one_switches_it_off(tiny_model, tokenizer):
    with pytest.raises(ValueError, match="guidance_scale=2.0 needs a sentiment"):
        generate_reviews(tiny_model, tokenizer, None, guidance_scale=2.0)
    kwargs = build_generate_kwargs(tiny_model, tokenizer, "positive", guidance_scale=1)
    assert "GuidanceLogitsProcessor" not in [type(p).__name__ for p in kwargs["logits_processor"]]
    kwargs = build_generate_kwargs(tiny_model, tokenizer, "positive")  # the default: guided
    assert kwargs["logits_processor"][0].guidance_scale == DEFAULT_GUIDANCE_SCALE


def test_guidance_processor_and_opposite_prompts_units(tiny_model):
    with pytest.raises(ValueError, match="guidance_scale must be a finite number > 0"):
        GuidanceLogitsProcessor(0, tiny_model, torch.tensor([[5]]))
    guide = GuidanceLogitsProcessor(2.0, tiny_model, torch.tensor([[5], [6]]))
    with pytest.raises(ValueError, match="must divide the batch"):
        guide(torch.tensor([[7], [8], [9]]), torch.zeros(3, tiny_model.config.vocab_size))
    prompts = {"positive": [7, 8], "negative": [9]}
    ids_, mask = opposite_sentiment_prompts(
        torch.tensor([[1, 9, 5], [7, 8, 6]]), torch.tensor([[0, 1, 1], [1, 1, 1]]), prompts, pad_token_id=1
    )
    assert ids_.tolist() == [[7, 8, 5], [1, 9, 6]] and mask.tolist() == [[1, 1, 1], [0, 1, 1]]
    assert opposite_sentiment_prompts(torch.tensor([[4, 5]]), None, prompts) is None


# --- streaming ----------------------------------------------------------------------------------


def test_stream_review_ends_with_the_generated_review(tiny_model, tokenizer):
    options = {"seed": 4, "max_new_tokens": 12}
    texts = list(stream_review(tiny_model, tokenizer, "positive", "이 영화", **options))
    assert len(texts) > 1 and texts[0].startswith("이")
    assert texts[-1] == generate_reviews(tiny_model, tokenizer, "positive", "이 영화", **options)[0]


def test_stream_review_stops_early_and_reports_errors(tiny_model, tokenizer, monkeypatch):
    stream = stream_review(tiny_model, tokenizer, "positive", max_new_tokens=64, min_new_tokens=64)
    next(stream)
    stream.close()  # returns once the generation thread has stopped
    with pytest.raises(ValueError, match="beam"):
        next(stream_review(tiny_model, tokenizer, strategy="beam"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(type(tiny_model), "generate", broken)  # what custom_generate's generate calls
    with pytest.raises(RuntimeError, match="boom"):
        list(stream_review(tiny_model, tokenizer, max_new_tokens=4))


# --- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "nucleus"}, "strategy must be one of greedy, beam, sampling, top-k, top-p"),
        ({"sentiment": "happy"}, "sentiment must be 'positive' or 'negative'"),
        ({"max_new_tokens": 0}, r"max_new_tokens must be an integer >= 1, got 0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\], got 0.0"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\], got 1.5"),
        ({"temperature": 0}, "temperature must be a finite number > 0"),
        ({"strategy": "top-k", "top_k": 0}, "top_k must be an integer >= 1"),
        ({"repetition_penalty": 0}, "repetition_penalty must be a number > 0"),
        ({"repetition_penalty": float("nan")}, "repetition_penalty must be a number > 0"),
        ({"num_return_sequences": 0}, "num_return_sequences must be an integer >= 1"),
        ({"strategy": "greedy", "num_return_sequences": 2}, "num_return_sequences must be 1 for greedy"),
        (
            {"strategy": "beam", "num_beams": 2, "num_return_sequences": 3},
            r"num_return_sequences must be <= num_beams \(2\)",
        ),
        ({"strategy": "greedy", "top_p": 0.9}, "strategy 'greedy' takes repetition_penalty, .*; got top_p"),
        ({"guidance_scale": 0}, "guidance_scale must be a finite number > 0"),
        ({"min_new_tokens": 9, "max_new_tokens": 8}, r"min_new_tokens must be <= max_new_tokens \(8\)"),
        ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size must be an integer >= 0"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"prompt": []}, "prompt must be a string or a non-empty list of strings"),
    ],
)
def test_bad_arguments_name_the_parameter_and_its_range(tiny_model, tokenizer, kwargs, message):
    kwargs = {"sentiment": "positive", "max_new_tokens": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_reviews(tiny_model, tokenizer, **kwargs)


# --- the model folder: plain pipeline and custom_generate ---------------------------------------


def test_custom_generate_in_process_follows_the_model_configs_guidance(tiny_model, tokenizer):
    """What a remote-code model runs: default guidance from generation_config's sentiment_guidance."""
    tiny_model.generation_config = recommended_generation_config(tokenizer, max_new_tokens=8)
    prompt = ids(tokenizer, "positive", "이 영화")
    for scale in (None, 1.0, 2.5):
        set_seed(0)
        extra = {} if scale is None else {"guidance_scale": scale}
        out = custom_generate.generate(prompt, model=tiny_model, num_return_sequences=2, **extra)
        texts = [
            FMT.strip_prefix(t, "positive") for t in tokenizer.batch_decode(out, skip_special_tokens=True)
        ]
        expected = generate_reviews(
            tiny_model,
            tokenizer,
            "positive",
            "이 영화",
            num_return_sequences=2,
            seed=0,
            max_new_tokens=8,
            guidance_scale=scale,
        )
        assert texts == expected, scale
    with pytest.raises(
        ValueError, match="needs negative_prompt_ids, or prompts that start with a sentiment word"
    ):
        custom_generate.generate(input_ids=torch.tensor([[5, 6]]), model=tiny_model, guidance_scale=2.0)


PIPELINES = textwrap.dedent(
    """
    import json, sys
    sys.modules["nsmc_gen"] = None  # Hub users have no nsmc_gen: importing it must not be needed
    import torch
    torch.set_num_threads(1)
    from transformers import pipeline, set_seed
    folder, options = sys.argv[1], dict(num_return_sequences=3, max_new_tokens=10)
    results = {}
    plain = pipeline("text-generation", model=folder)
    set_seed(0)
    results["plain"] = [r["generated_text"] for r in plain("긍정", **options)]
    remote = pipeline("text-generation", model=folder, trust_remote_code=True)
    assert remote.model.generate.func.__module__.endswith("custom_generate.generate")
    runs = {"remote": {}, "remote_unguided": {"guidance_scale": 1.0}, "remote_3": {"guidance_scale": 3.0}}
    for name, extra in runs.items():
        set_seed(0)
        results[name] = [r["generated_text"] for r in remote("긍정", **options, **extra)]
    print(json.dumps(results))
    """
)


@pytest.mark.slow  # a fresh interpreter imports torch and transformers: 15 s idle, minutes on a busy machine
def test_both_pipeline_paths_from_a_fresh_process_decode_like_nsmc_gen(tmp_path, tiny_model, tokenizer):
    """Plain pipeline (no remote code) == unguided nsmc-gen decoding; with remote code == guided."""
    folder = tmp_path / "model"
    tiny_model.generation_config = recommended_generation_config(
        tokenizer, length_prior=[0.0, 0.0, 0.0, 30.0]
    )
    tiny_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    install_custom_generate(folder)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", PIPELINES, str(folder)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = {k: [FMT.strip_prefix(t, "positive") for t in v] for k, v in json.loads(result.stdout).items()}

    def ours(**extra):
        return generate_reviews(
            tiny_model, tokenizer, "positive", num_return_sequences=3, seed=0, max_new_tokens=10, **extra
        )

    # plain transformers knows neither the length prior nor keep_eos_probability; remote code does (the
    # folder's prior, EOS odds x e^30 after 3 tokens, ends the remote reviews early)
    assert got["plain"] == ours(guidance_scale=1, length_prior=False, keep_eos_probability=False)
    assert got["remote_unguided"] == ours(guidance_scale=1) != got["plain"]
    assert got["remote"] == ours() != got["remote_unguided"]
    assert got["remote_3"] == ours(guidance_scale=3.0)


# ------------------------------------------------------------------ plain clients' EOS bias: never both


def _with_eos_bias(model, tokenizer, bias: float):
    """``model`` with the recommended decoding and a constant EOS bias for plain clients."""
    from nsmc_gen.decoding import eos_sequence_bias

    model.generation_config = recommended_generation_config(tokenizer)
    model.generation_config.sequence_bias = eos_sequence_bias(tokenizer.eos_token_id, bias)
    return model


@pytest.mark.parametrize("strategy", ["top-p", "greedy"])
def test_our_decoding_zeroes_the_plain_clients_eos_bias(tiny_model, tokenizer, strategy):
    """A bias of +50 ends every plain review at once; nsmc-gen's decoding (the same code as
    custom_generate/) must decode exactly as without it: applying both would end reviews twice."""
    from nsmc_gen.calibration import plain_reviews

    settings = {"strategy": strategy, "max_new_tokens": 6, "seed": 3, "guidance_scale": 1.0}
    tiny_model.generation_config = recommended_generation_config(tokenizer)
    without = generate_reviews(tiny_model, tokenizer, "positive", **settings)
    biased = _with_eos_bias(tiny_model, tokenizer, 50.0)
    assert plain_reviews(biased, tokenizer, "positive", 2, seed=3) == ["", ""]  # plain: the bias applies
    assert generate_reviews(biased, tokenizer, "positive", **settings) == without
    assert without[0]  # the tiny model does not stop by itself: the comparison means something
    kwargs = build_generate_kwargs(biased, tokenizer, "positive", strategy=strategy)
    assert kwargs["generation_config"].sequence_bias == [[[tokenizer.eos_token_id], 0.0]]


def test_other_sequence_biases_are_left_alone(tokenizer):
    config = recommended_generation_config(tokenizer)
    config.sequence_bias = [[[7], -3.0], [[tokenizer.eos_token_id], 2.0]]
    assert custom_generate.without_eos_bias(config) == {
        "sequence_bias": [[[7], -3.0], [[tokenizer.eos_token_id], 0.0]]
    }


def test_generation_stays_within_the_models_positions(tokenizer):
    """A request (or a client's default: 4.57's pipeline brings 256) longer than the positions left
    is capped instead of indexing past the last one."""
    from conftest import build_tiny_model

    model = build_tiny_model(tokenizer, n_positions=12)
    model.generation_config = recommended_generation_config(tokenizer, max_positions=12)
    assert model.generation_config.max_new_tokens == 6
    reviews = generate_reviews(model, tokenizer, "positive", ["", "이 영화"], max_new_tokens=64, seed=0)
    assert len(reviews) == 2
    request = build_generate_kwargs(model, tokenizer, "positive", ["이 영화"], max_new_tokens=64)
    width = request["input_ids"].shape[1]
    assert request["generation_config"].max_new_tokens == 12 - width
    with pytest.raises(ValueError, match="fills the model's 12 positions"):
        generate_reviews(model, tokenizer, "positive", "정말 " * 12, max_new_tokens=4)


def test_sampling_a_batch_says_nothing_about_attention_masks():
    """transformers drops an all-ones mask, pads rows that ended, and GPT-2 then asks for a mask on
    every sampled batch; harmless (those rows are done), so custom_generate silences it."""
    import logging

    from transformers.utils import logging as hf_logging

    from nsmc_gen.modeling import load_embedded_default

    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    model, tokenizer = load_embedded_default()  # pretrained on reviews: rows end at different steps
    records = Records()
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(records)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()  # what a user's process has
    try:
        hf_logging.warning_once.cache_clear()  # a warning given once before would hide it
        request = {"num_return_sequences": 8, "max_new_tokens": 40}
        reviews = generate_reviews(model, tokenizer, "positive", seed=0, **request)
        ours = [m for m in records.messages if "attention_mask" in m]
        hf_logging.warning_once.cache_clear()  # the filtered call counts as given once
        torch.manual_seed(0)  # the same generation through model.generate itself: the source, unfiltered
        model.generate(**build_generate_kwargs(model, tokenizer, "positive", **request))
    finally:
        logger.removeHandler(records)
        hf_logging.set_verbosity(verbosity)
    assert len(reviews) == 8
    assert ours == [], ours
    assert [m for m in records.messages if "attention_mask" in m]  # the source does warn
