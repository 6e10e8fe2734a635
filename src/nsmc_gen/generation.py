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

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from nsmc_gen.formatting import ReviewFormat, Sentiment, normalize_sentiment, review_format_of


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
            has one; False none; or a list, see
            :func:`~nsmc_gen.calibration.calibrate_length_prior`), ``num_beams`` (strategy-specific),
            ``repetition_penalty``
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
    set_generation_seed(seed)
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
        set_generation_seed(seed)
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


def set_generation_seed(seed: int | None) -> None:
    """Seed every generator transformers uses; ``None`` leaves them as they are."""
    if seed is not None:
        if not is_integer(seed) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        set_seed(seed)


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an int (a bool is not: ``True`` is no count or seed)."""
    return isinstance(value, int) and not isinstance(value, bool)
