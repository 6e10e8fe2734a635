"""Generating reviews: a decoding strategy -> GenerationConfig + our logits processors -> texts.

The decoding strategies of the course are a small table (:data:`STRATEGIES`): what each one fixes
in the ``GenerationConfig`` and which knobs it takes, with their defaults. Prompts come from
:class:`~nsmc_gen.formatting.ReviewFormat`, the code that formats the training examples, with the
words the model was trained on (:func:`~nsmc_gen.formatting.review_format_of`: its generation
config's ``sentiment_guidance`` field).

One decoding path: this module turns a request into prompt tensors and a ``GenerationConfig`` and
hands them to :func:`nsmc_gen.custom_generate.generate.generate`, the function a model folder's
``custom_generate/`` runs for a Hub user under ``trust_remote_code=True`` (its docstring gives the
order of processing). That code builds the opposite-sentiment prompts, checks the settings, and
puts OUR processors (:mod:`nsmc_gen.processors`) in place of the built-in ones.

Sentiment guidance: with a sentiment given, generation is guided away from the opposite
sentiment's prompt (classifier-free guidance, ``guidance_scale``; default
:data:`~nsmc_gen.decoding.DEFAULT_GUIDANCE_SCALE`; 1 switches it off).

Example:
    >>> from nsmc_gen.modeling import load_embedded_default
    >>> model, tokenizer = load_embedded_default()
    >>> reviews = generate_reviews(model, tokenizer, "positive", num_return_sequences=2, seed=0)
    >>> len(reviews)
    2
    >>> generate_reviews(model, tokenizer, "negative", "이 영화", strategy="greedy", max_new_tokens=5)[0][:4]
    '이 영화'
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
    set_seed,
)

from nsmc_gen.custom_generate import generate as _custom_generate
from nsmc_gen.custom_generate.generate import (
    GUIDANCE_FIELD,
    KEEP_EOS_FIELD,
    LENGTH_PRIOR_FIELD,
    check_settings,
    left_pad,
)
from nsmc_gen.decoding import (
    DECODING_DEFAULTS,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_KEEP_EOS_PROBABILITY,
    DEFAULT_STRATEGY,
    DEFAULT_USE_LENGTH_PRIOR,
    sentiment_guidance,
)
from nsmc_gen.formatting import SENTIMENTS, ReviewFormat, Sentiment, normalize_sentiment, review_format_of


@dataclass(frozen=True)
class Strategy:
    """A decoding strategy: the ``GenerationConfig`` fields it fixes and the knobs it takes."""

    fixed: Mapping[str, Any]
    knobs: Mapping[str, Any] = field(default_factory=dict)  # name -> default


STRATEGIES: dict[str, Strategy] = {
    "greedy": Strategy({"do_sample": False, "num_beams": 1}),
    "beam": Strategy({"do_sample": False, "early_stopping": True}, {"num_beams": 5}),
    "sampling": Strategy(
        {"do_sample": True, "num_beams": 1, "top_k": 0, "top_p": 1.0},
        {"temperature": 1.0, LENGTH_PRIOR_FIELD: DEFAULT_USE_LENGTH_PRIOR},
    ),
    "top-k": Strategy(
        {"do_sample": True, "num_beams": 1, "top_p": 1.0},
        {
            "top_k": 50,
            "temperature": 1.0,
            KEEP_EOS_FIELD: DEFAULT_KEEP_EOS_PROBABILITY,
            LENGTH_PRIOR_FIELD: DEFAULT_USE_LENGTH_PRIOR,
        },
    ),
    "top-p": Strategy(
        {"do_sample": True, "num_beams": 1, "top_k": 0},
        {
            "top_p": DECODING_DEFAULTS["top_p"],
            "temperature": DECODING_DEFAULTS["temperature"],
            KEEP_EOS_FIELD: DEFAULT_KEEP_EOS_PROBABILITY,
            LENGTH_PRIOR_FIELD: DEFAULT_USE_LENGTH_PRIOR,
        },
    ),
}

# Knobs every strategy takes.
COMMON_KNOBS: dict[str, Any] = {
    "repetition_penalty": DECODING_DEFAULTS["repetition_penalty"],
    "no_repeat_ngram_size": 0,
    "min_new_tokens": DECODING_DEFAULTS["min_new_tokens"],
    "max_new_tokens": DECODING_DEFAULTS["max_new_tokens"],
}


def strategy_knobs(strategy: str) -> dict[str, Any]:
    """The knobs ``strategy`` takes (its own and :data:`COMMON_KNOBS`), with their defaults.

    Callers holding every knob (a form with all sliders) pass only these to the functions below,
    which refuse a knob the strategy does not use rather than silently ignore it.

    Example:
        >>> list(strategy_knobs("beam"))
        ['num_beams', 'repetition_penalty', 'no_repeat_ngram_size', 'min_new_tokens', 'max_new_tokens']
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    return {**STRATEGIES[strategy].knobs, **COMMON_KNOBS}


def decoding_settings(
    strategy: str = DEFAULT_STRATEGY,
    *,
    sentiment: Sentiment | int | None = None,
    guidance_scale: float | None = None,
    num_return_sequences: int = 1,
    **decoding: Any,
) -> dict[str, Any]:
    """The complete, checked decoding settings of a strategy: its knobs with defaults filled in.

    Args:
        strategy: one of :data:`STRATEGIES`.
        sentiment: the sentiment asked for (guidance needs one).
        guidance_scale: sentiment guidance; None: the default with a sentiment, off without one.
        num_return_sequences: reviews per prompt (greedy: 1; beam: at most ``num_beams``).
        decoding: the strategy's knobs (``Strategy.knobs``) and :data:`COMMON_KNOBS`.

    Raises:
        ValueError: naming the parameter and its valid range.

    Example:
        >>> decoding_settings("top-k", top_k=20, min_new_tokens=0, max_new_tokens=16)
        {'strategy': 'top-k', 'top_k': 20, 'temperature': 1.0, 'keep_eos_probability': True, \
'length_prior': True, 'repetition_penalty': 1.2, 'no_repeat_ngram_size': 0, 'min_new_tokens': 0, \
'max_new_tokens': 16, 'guidance_scale': 1.0}
    """
    knobs = strategy_knobs(strategy)
    unknown = sorted(set(decoding) - set(knobs))
    if unknown:
        raise ValueError(f"strategy {strategy!r} takes {', '.join(knobs)}; got {', '.join(unknown)}")
    settings = {"strategy": strategy, **knobs, **decoding}
    if "min_new_tokens" not in decoding:  # the default minimum yields to a shorter maximum
        settings["min_new_tokens"] = min(settings["min_new_tokens"], settings["max_new_tokens"])
    scale = guidance_scale
    if scale is None:
        scale = DEFAULT_GUIDANCE_SCALE if sentiment is not None else 1.0
    fixed = STRATEGIES[strategy].fixed
    check_settings(
        {**fixed, **settings, "num_return_sequences": num_return_sequences, "guidance_scale": scale}
    )
    # The strategy table's rules beyond each setting's range. GenerationConfig.validate checks the
    # greedy and beam ones too, but only once generate runs, and in other words: these run before a
    # model is loaded (the CLI, the demo).
    if strategy == "top-k" and settings["top_k"] < 1:
        raise ValueError(
            f"top_k must be an integer >= 1 for strategy 'top-k' (0: 'sampling'), got {settings['top_k']}"
        )
    if settings["min_new_tokens"] > settings["max_new_tokens"]:
        raise ValueError(
            f"min_new_tokens must be <= max_new_tokens ({settings['max_new_tokens']}), "
            f"got {settings['min_new_tokens']}"
        )
    if strategy == "greedy" and num_return_sequences != 1:
        raise ValueError(
            f"num_return_sequences must be 1 for greedy decoding (it is deterministic), "
            f"got {num_return_sequences}"
        )
    if strategy == "beam" and num_return_sequences > settings["num_beams"]:
        raise ValueError(
            f"num_return_sequences must be <= num_beams ({settings['num_beams']}) for beam search, "
            f"got {num_return_sequences}"
        )
    if scale != 1 and sentiment is None:
        raise ValueError(
            f"guidance_scale={scale} needs a sentiment (it guides away from the opposite one); use 1 or None"
        )
    return {**settings, "guidance_scale": float(scale)}


def generate_request(
    model: Any,
    tokenizer: Any,
    sentiment: Sentiment | int | None = "positive",
    prompt: str | Sequence[str] = "",
    *,
    strategy: str = DEFAULT_STRATEGY,
    num_return_sequences: int = 1,
    guidance_scale: float | None = None,
    **decoding: Any,
) -> dict[str, Any]:
    """What a Hub user passes to ``model.generate`` (remote code) for this request: the prompts,
    left-padded, and a ``GenerationConfig`` with the strategy's settings.

    Prompts are built with the format the model was trained on (:func:`review_format_of`); several
    prompts make one batch, each with ``num_return_sequences`` rows. A model without the
    ``sentiment_guidance`` field (a base model) gets the default format's field in the config, so
    that guidance finds its prompts. Arguments as for :func:`generate_reviews`.

    Example:
        >>> from nsmc_gen.custom_generate.generate import generate
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> request = generate_request(model, tokenizer, "positive", ["정말", "이 영화는"], max_new_tokens=4)
        >>> request["input_ids"].shape[0], request["generation_config"].guidance_scale
        (2, 2.0)
        >>> generate(model=model, **request).shape[0]  # what generate_reviews runs
        2
    """
    review_format = review_format_of(model)
    sentiment = None if sentiment is None else normalize_sentiment(sentiment)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
    settings = decoding_settings(
        strategy,
        sentiment=sentiment,
        guidance_scale=guidance_scale,
        num_return_sequences=num_return_sequences,
        **decoding,
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = getattr(model, "device", torch.device("cpu"))
    input_ids, attention_mask = left_pad(
        _prompt_rows(tokenizer, review_format, sentiment, prompts), pad, device
    )
    fixed = STRATEGIES[strategy].fixed
    knobs = {k: v for k, v in settings.items() if k != "strategy"}
    config = GenerationConfig(
        # Everything off first, so that no sampling default of the model's own config slips in.
        **{**_custom_generate.switched_off(fixed["do_sample"]), **fixed, **knobs},
        num_return_sequences=num_return_sequences,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad,
    )
    if not getattr(model.generation_config, GUIDANCE_FIELD, None):
        setattr(config, GUIDANCE_FIELD, sentiment_guidance(tokenizer, review_format))
    return {"input_ids": input_ids, "attention_mask": attention_mask, "generation_config": config}


def build_generate_kwargs(
    model: Any,
    tokenizer: Any,
    sentiment: Sentiment | int | None = "positive",
    prompt: str | Sequence[str] = "",
    **request: Any,
) -> dict[str, Any]:
    """Everything ``model.generate(**kwargs)`` needs: prompt tensors, GenerationConfig, our processors.

    :func:`generate_request` through :func:`nsmc_gen.custom_generate.generate.prepare`: the returned
    ``generation_config`` has the built-in repetition penalty, temperature, top-k, top-p and
    guidance at their neutral values, and ``logits_processor`` does that work. Add ``streamer=`` or
    output options as needed.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> kwargs = build_generate_kwargs(model, tokenizer, "positive", ["정말", "이 영화는"])
        >>> kwargs["input_ids"].shape[0], kwargs["generation_config"].top_p
        (2, 1.0)
        >>> [type(p).__name__ for p in kwargs["logits_processor"]]  # doctest: +NORMALIZE_WHITESPACE
        ['GuidanceLogitsProcessor', 'StrictRepetitionPenaltyLogitsProcessor',
         'KeepEOSProbabilityLogitsProcessor']
    """
    return _custom_generate.prepare(model, **generate_request(model, tokenizer, sentiment, prompt, **request))


def generate_reviews(
    model: Any,
    tokenizer: Any,
    sentiment: Sentiment | int | None = "positive",
    prompt: str | Sequence[str] = "",
    *,
    strategy: str = DEFAULT_STRATEGY,
    num_return_sequences: int = 1,
    seed: int | None = None,
    guidance_scale: float | None = None,
    **decoding: Any,
) -> list[str]:
    """Generate movie reviews of a sentiment, in one batch, through the model folder's decoding code.

    Args:
        model: a causal LM fine-tuned on the review format; its generation config's
            ``sentiment_guidance`` field gives the format's words (default: ``긍정``/``부정``).
        tokenizer: its tokenizer.
        sentiment: ``"positive"``/``"negative"`` (or label 1/0); None: no sentiment prefix.
        prompt: the start of the review, or a list of starts (one left-padded batch).
        strategy: ``"greedy"``, ``"beam"``, ``"sampling"``, ``"top-k"`` or ``"top-p"`` (default).
        num_return_sequences: reviews per prompt.
        seed: seeds Python, NumPy and torch first; the same seed gives the same reviews.
        guidance_scale: sentiment guidance (> 0; 1: off); None: the default with a sentiment.
        decoding: the strategy's knobs: ``temperature``, ``top_k``, ``top_p``,
            ``keep_eos_probability`` (top-k/top-p cut only the continuation tokens; EOS keeps the
            probability it had), ``length_prior`` (sampling: True the model's calibrated prior, if it
            has one; False none; or a list, see :func:`calibrate_length_prior`), ``num_beams``
            (strategy-specific), ``repetition_penalty``
            (``float("inf")``: never repeat a token),
            ``no_repeat_ngram_size``, ``min_new_tokens``, ``max_new_tokens``.

    Returns:
        ``num_return_sequences`` texts per prompt, prompt by prompt; each is the review without
        the sentiment word (a given prompt's text is kept at its start).

    Raises:
        ValueError: a bad argument, named with its valid range.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> a = generate_reviews(model, tokenizer, "negative", strategy="top-k", top_k=20, seed=1)
        >>> a == generate_reviews(model, tokenizer, "negative", strategy="top-k", top_k=20, seed=1)
        True
    """
    request = generate_request(
        model,
        tokenizer,
        sentiment,
        prompt,
        strategy=strategy,
        num_return_sequences=num_return_sequences,
        guidance_scale=guidance_scale,
        **decoding,
    )
    _seed(seed)
    with eval_mode(model):
        output = _custom_generate.generate(model=model, **request)
    sequences = getattr(output, "sequences", output)  # a config may ask for a dict output
    texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
    review_format = review_format_of(model)
    return [review_format.strip_prefix(text, sentiment) for text in texts]


def stream_review(
    model: Any,
    tokenizer: Any,
    sentiment: Sentiment | int | None = "positive",
    prompt: str = "",
    *,
    strategy: str = DEFAULT_STRATEGY,
    seed: int | None = None,
    guidance_scale: float | None = None,
    **decoding: Any,
) -> Iterator[str]:
    """Generate one review, yielding the text so far (sentiment word removed) as it grows.

    Same arguments and decoding as :func:`generate_reviews` for one review; its last text equals
    ``generate_reviews(...)[0]`` with the same seed. Generation runs in a thread through
    transformers' ``TextIteratorStreamer``; closing the iterator early stops it. Beam search
    cannot stream (it picks its sequence at the end).

    Example:
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> for text in stream_review(model, tokenizer, "positive", "이 영화", seed=0, max_new_tokens=8):
        ...     pass
        >>> text.startswith("이 영화")
        True
    """
    if strategy == "beam":
        raise ValueError("strategy 'beam' cannot be streamed: beam search picks its sequence at the end")
    request = generate_request(
        model, tokenizer, sentiment, prompt, strategy=strategy, guidance_scale=guidance_scale, **decoding
    )
    review_format = review_format_of(model)
    streamer = TextIteratorStreamer(tokenizer, skip_special_tokens=True)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _custom_generate.generate(
                model=model,
                **request,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Stop(stop)]),
            )
        except BaseException as error:  # re-raised in the caller's thread below
            errors.append(error)
            streamer.end()

    with eval_mode(model):
        _seed(seed)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            text = review = ""
            for chunk in streamer:
                text += chunk
                if (grown := review_format.strip_prefix(text, sentiment)) != review:  # skip empty pieces
                    review = grown
                    yield review
        finally:
            stop.set()
            thread.join()
    if errors:
        raise errors[0]


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
        if not _integer(value) or value < low:
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
    _seed(seed)
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
        if not _integer(value) or value < 1:
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


class _Stop(StoppingCriteria):
    """Stops generation once ``event`` is set (the stream's reader went away)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def _prompt_rows(
    tokenizer: Any, review_format: ReviewFormat, sentiment: Sentiment | None, prompts: Sequence[str]
) -> list[list[int]]:
    """Each prompt's token ids; an empty prompt starts from the BOS (else EOS) token."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    rows = [review_format.prompt_ids(tokenizer, sentiment, p) for p in prompts]
    if any(not row for row in rows) and start is None:
        raise ValueError("an empty prompt needs a tokenizer with a bos_token or eos_token to start from")
    return [row or [start] for row in rows]


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Dropout off while generating (a model straight from training is in train mode); the model's
    mode is restored afterwards.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, _ = load_embedded_default()
        >>> with eval_mode(model.train()):
        ...     model.training
        False
        >>> model.training
        True
    """
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _seed(seed: int | None) -> None:
    if seed is not None:
        if not _integer(seed) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        set_seed(seed)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
