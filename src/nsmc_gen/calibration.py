"""Calibrating a model's lengths after training: the length prior and the plain clients' EOS bias.

A small LM ends its texts too early. Two corrections are fitted on sampled reviews against the
lengths of the reviews the model learnt from, and saved with the model
(:func:`nsmc_gen.model_folder.save_length_prior`, :func:`nsmc_gen.model_folder.save_plain_eos_bias`):

- :func:`calibrate_length_prior`: an EOS bias per generated-token count for nsmc-gen's own decoding
  (and ``custom_generate/``), applied by :class:`~nsmc_gen.processors.LengthPriorLogitsProcessor`;
- :func:`calibrate_plain_eos_bias`: one constant EOS bias for plain clients (``pipeline`` without
  remote code, transformers 4.x or 5.x), written in the standard ``sequence_bias`` field.

:func:`decoding_path_lengths` measures both paths for the run facts and the card.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch

from nsmc_gen.custom_generate.generate import LENGTH_PRIOR_FIELD
from nsmc_gen.formatting import SENTIMENTS, Sentiment, normalize_sentiment, review_format_of
from nsmc_gen.generation import eval_mode, generate_reviews, is_integer, set_generation_seed

# Length-prior calibration: the generated-token counts it corrects one by one; longer texts share the
# last value. NSMC reviews have 18.6 tokens on average with the shipped tokenizer (p50 13).
PRIOR_STEPS = 32
_PRIOR_SHRINK = 4.0  # pseudo-texts at the target rate: few texts at risk move the bias little
_PRIOR_RANGE = (-5.0, 3.0)  # a bias beyond these would override the model, not calibrate it


def stop_rates(lengths: Sequence[int], steps: int = PRIOR_STEPS) -> list[tuple[int, int]]:
    """(texts ending after k tokens, texts reaching k tokens) for k < ``steps - 1``, and for the last
    entry the tail pooled as a per-step rate: (texts reaching ``steps - 1`` tokens, the tokens they
    add beyond it + 1 each), i.e. the stop rate of a geometric tail.

    Example:
        >>> stop_rates([1, 1, 2, 5], steps=3)
        [(0, 4), (2, 4), (2, 5)]
    """
    rates = [(sum(n == k for n in lengths), sum(n >= k for n in lengths)) for k in range(steps - 1)]
    tail = [n - (steps - 1) for n in lengths if n >= steps - 1]
    return rates + [(len(tail), sum(tail) + len(tail))]


def calibrate_length_prior(
    model: Any,
    tokenizer: Any,
    reference_texts: Sequence[str],
    *,
    rounds: int = 2,
    num_reviews: int = 200,
    seed: int = 1,
    steps: int = PRIOR_STEPS,
    **decoding: Any,
) -> list[float]:
    """An EOS bias per generated-token count under which sampled reviews end as often, after each
    number of tokens, as ``reference_texts`` do (a calibrated length prior, see
    :class:`~nsmc_gen.processors.LengthPriorLogitsProcessor`).

    Each round samples ``num_reviews`` reviews per sentiment with the decoding given (default: the
    recommended one, without the ``min_new_tokens`` floor) under the current bias, measures the stop
    rate after each token count, and moves the bias by the difference of log-odds between the
    reference's rate and the generated one (shrunk toward no change where few texts reach that
    count; counts beyond 8 are pooled with their neighbours). Lengths are counted in tokens of
    ``tokenizer`` on both sides. Reference lengths are those
    of the data the model learnt from: NSMC train reviews for the recipe.

    Returns:
        ``steps`` numbers, to write with :func:`save_length_prior`.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> prior = calibrate_length_prior(model, tokenizer, ["아주 재밌는 영화였다"] * 8, rounds=1,
        ...                                num_reviews=4, steps=4, max_new_tokens=6)
        >>> len(prior), all(-5 <= b <= 3 for b in prior)
        (4, True)
    """
    for name, value, low in (("rounds", rounds, 1), ("num_reviews", num_reviews, 1), ("steps", steps, 2)):
        if not is_integer(value) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not reference_texts:
        raise ValueError("reference_texts must hold at least one text (the lengths to calibrate to)")
    count = partial(_token_counts, tokenizer)
    reference = _pooled(stop_rates(count(reference_texts), steps))
    target = [(ended + 0.5) / (reached + 1) for ended, reached in reference]
    prior = [0.0] * steps
    for round_ in range(rounds):
        texts: list[str] = []
        for sentiment in SENTIMENTS:
            texts += generate_reviews(
                model,
                tokenizer,
                sentiment,
                num_return_sequences=num_reviews,
                seed=seed + round_,
                **{"min_new_tokens": 0, **decoding, LENGTH_PRIOR_FIELD: prior},
            )
        rates = _pooled(stop_rates(count(texts), steps))
        for k, ((ended, reached), rate) in enumerate(zip(rates, target, strict=True)):
            seen = (ended + _PRIOR_SHRINK * rate) / (reached + _PRIOR_SHRINK)
            step = math.log(rate / (1 - rate)) - math.log(seen / (1 - seen))
            prior[k] = min(max(prior[k] + step, _PRIOR_RANGE[0]), _PRIOR_RANGE[1])
    return [round(b, 4) for b in prior]


# --------------------------------------------------------------------------- plain clients

SHORT_REVIEW = 5  # characters: a review shorter than this says next to nothing ("굿", "별로")
_PLAIN_BIAS_RANGE = (-5.0, 3.0)


def review_lengths(texts: Sequence[str]) -> dict[str, float | int]:
    """Mean characters and the share of texts under :data:`SHORT_REVIEW` characters (stripped).

    Example:
        >>> review_lengths(["최고", "정말 재밌는 영화", "별로였다 진짜"])
        {'reviews': 3, 'mean_characters': 6.0, 'share_under_5': 0.3333}
    """
    if not texts:
        raise ValueError("texts must hold at least one review")
    lengths = [len(text.strip()) for text in texts]
    return {
        "reviews": len(lengths),
        "mean_characters": round(sum(lengths) / len(lengths), 2),
        "share_under_5": round(sum(n < SHORT_REVIEW for n in lengths) / len(lengths), 4),
    }


def plain_reviews(
    model: Any,
    tokenizer: Any,
    sentiment: Sentiment | int,
    num_return_sequences: int = 1,
    *,
    seed: int | None = None,
    **generate_kwargs: Any,
) -> list[str]:
    """Reviews as a plain client gets them: ``pipeline``/``generate`` without remote code.

    The prompt is the sentiment word alone, tokenized as a pipeline tokenizes it; decoding is
    ``model.generate`` with the model's generation config: for a model loaded without remote code
    (or straight from training) transformers' own, so the folder's defaults and its
    ``sequence_bias`` apply and none of nsmc-gen's processors do.
    ``generate_kwargs`` override the config (``sequence_bias=`` while calibrating). Returns the
    continuations, stripped.

    Example:
        >>> from nsmc_gen.decoding import recommended_generation_config
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> model.generation_config = recommended_generation_config(tokenizer)  # a finished folder's
        >>> len(plain_reviews(model, tokenizer, "positive", 3, seed=0, max_new_tokens=4))
        3
    """
    word = review_format_of(model).word(normalize_sentiment(sentiment))
    inputs = tokenizer([word], return_tensors="pt").to(getattr(model, "device", "cpu"))
    set_generation_seed(seed)
    with eval_mode(model), torch.no_grad():
        output = model.generate(**inputs, num_return_sequences=num_return_sequences, **generate_kwargs)
    new = output[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]


def calibrate_plain_eos_bias(
    model: Any,
    tokenizer: Any,
    reference_texts: Sequence[str],
    *,
    rounds: int = 3,
    num_reviews: int = 200,
    seed: int = 1,
) -> float:
    """A constant EOS bias under which plain sampling (:func:`plain_reviews`: the model's own
    generation config, transformers' processors) writes reviews as long as ``reference_texts``,
    in mean characters: the ``sequence_bias`` a published folder gives plain clients.

    Each round samples ``num_reviews`` reviews per sentiment (the same seed every round, so that
    only the bias changes) and moves the bias by ``log(mean / target)``: where the stop rate is
    small, the mean length goes as ``exp(-bias)``.

    Example:
        >>> from nsmc_gen.decoding import recommended_generation_config
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> model.generation_config = recommended_generation_config(tokenizer)
        >>> texts = ["아주 재밌는 영화였다"] * 4
        >>> bias = calibrate_plain_eos_bias(model, tokenizer, texts, rounds=1, num_reviews=4)
        >>> -5 <= bias <= 3
        True
    """
    from nsmc_gen.decoding import eos_sequence_bias

    for name, value in (("rounds", rounds), ("num_reviews", num_reviews)):
        if not is_integer(value) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not reference_texts:
        raise ValueError("reference_texts must hold at least one text (the length to calibrate to)")
    target = review_lengths(reference_texts)["mean_characters"]
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    bias = 0.0
    for _ in range(rounds):
        biased = {"seed": seed, "sequence_bias": eos_sequence_bias(eos, bias)}
        texts = [
            text
            for sentiment in SENTIMENTS
            for text in plain_reviews(model, tokenizer, sentiment, num_reviews, **biased)
        ]
        mean = max(review_lengths(texts)["mean_characters"], 0.5)  # an all-empty sample still moves
        bias = min(max(bias + math.log(mean / target), _PLAIN_BIAS_RANGE[0]), _PLAIN_BIAS_RANGE[1])
    return round(bias, 3)


def decoding_path_lengths(
    model: Any, tokenizer: Any, reference_texts: Sequence[str], *, num_reviews: int = 200, seed: int = 1
) -> dict[str, dict[str, float | int]]:
    """:func:`review_lengths` of the reference texts, of plain sampling (:func:`plain_reviews`, the
    model's generation config as it is) and of nsmc-gen's default decoding (:func:`generate_reviews`,
    what ``nsmc-gen generate`` and ``custom_generate/`` run), ``num_reviews`` per sentiment each.

    Example:
        >>> from nsmc_gen.decoding import recommended_generation_config
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> model.generation_config = recommended_generation_config(tokenizer)
        >>> sorted(decoding_path_lengths(model, tokenizer, ["아주 재밌는 영화였다"], num_reviews=2))
        ['nsmc_gen', 'plain', 'reference']
    """
    paths = {"plain": plain_reviews, "nsmc_gen": generate_reviews}
    lengths = {"reference": review_lengths(reference_texts)}
    for name, sample in paths.items():
        texts = [
            text
            for sentiment in SENTIMENTS
            for text in sample(model, tokenizer, sentiment, num_return_sequences=num_reviews, seed=seed)
        ]
        lengths[name] = review_lengths(texts)
    return lengths


def _pooled(rates: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each count pooled with its neighbours, k // 8 on each side (fewer texts reach the later counts,
    and their stop rates change slowly); the pooled tail entry stays as it is."""
    last = len(rates) - 1
    pooled = []
    for k in range(last):
        window = rates[max(0, k - k // 8) : min(last, k + k // 8 + 1)]
        pooled.append((sum(e for e, _ in window), sum(r for _, r in window)))
    return pooled + rates[last:]


def _token_counts(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
