"""Generating reviews: a decoding strategy -> GenerationConfig + our logits processors -> texts.

The decoding strategies of the course are a small table (:data:`STRATEGIES`): what each one fixes
in the ``GenerationConfig`` and which knobs it takes, with their defaults. Prompts come from
:class:`~nsmc_gen.formatting.ReviewFormat`, the code that formats the training examples. The
repetition penalty and top-p run as OUR processors (:mod:`nsmc_gen.processors`), with the
built-in counterparts switched off, through the same code a model folder's ``custom_generate/``
runs (:mod:`nsmc_gen.custom_generate.generate`, whose docstring gives the order of processing).

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
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
    set_seed,
)

from nsmc_gen import processors as _processors
from nsmc_gen.custom_generate import generate as _custom_generate
from nsmc_gen.custom_generate.generate import KEEP_EOS_FIELD, LENGTH_PRIOR_FIELD
from nsmc_gen.decoding import (
    DECODING_DEFAULTS,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_KEEP_EOS_PROBABILITY,
    DEFAULT_STRATEGY,
    DEFAULT_USE_LENGTH_PRIOR,
    recommended_generation_config,
    sentiment_guidance,
)
from nsmc_gen.files import atomic_write, write_text_atomic
from nsmc_gen.formatting import SENTIMENTS, ReviewFormat, Sentiment, normalize_sentiment


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

# name -> (check, valid range as the error message words it)
_CHECKS: dict[str, tuple[Any, str]] = {
    "temperature": (lambda v: _number(v) and 0 < v < math.inf, "a finite number > 0"),
    "top_p": (lambda v: _number(v) and 0 < v <= 1, "in (0, 1]"),
    "top_k": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "num_beams": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "repetition_penalty": (lambda v: _number(v) and v > 0, "a number > 0 (inf: never repeat a token)"),
    "no_repeat_ngram_size": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: off)"),
    "min_new_tokens": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "max_new_tokens": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "num_return_sequences": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "guidance_scale": (lambda v: _number(v) and 0 < v < math.inf, "a finite number > 0 (1: off)"),
    "seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    KEEP_EOS_FIELD: (lambda v: isinstance(v, bool), "True or False"),
    LENGTH_PRIOR_FIELD: (
        lambda v: isinstance(v, bool) or (isinstance(v, (list, tuple)) and all(_finite(b) for b in v)),
        "True (the model's own, if any), False (none) or a list of finite numbers (EOS bias per step)",
    ),
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
        >>> decoding_settings("top-k", top_k=20, max_new_tokens=16)
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
    for name, value in {
        **settings,
        "num_return_sequences": num_return_sequences,
        "guidance_scale": scale,
    }.items():
        if name in _CHECKS and not _CHECKS[name][0](value):
            raise ValueError(f"{name} must be {_CHECKS[name][1]}, got {value!r}")
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


def build_generate_kwargs(
    model: Any,
    tokenizer: Any,
    sentiment: Sentiment | int | None = "positive",
    prompt: str | Sequence[str] = "",
    *,
    strategy: str = DEFAULT_STRATEGY,
    num_return_sequences: int = 1,
    guidance_scale: float | None = None,
    review_format: ReviewFormat | None = None,
    **decoding: Any,
) -> dict[str, Any]:
    """Everything ``model.generate(**kwargs)`` needs: prompt tensors, GenerationConfig, our processors.

    Several prompts make one left-padded batch; each gets ``num_return_sequences`` rows. The
    returned ``generation_config`` has the built-in repetition penalty, temperature, top-k, top-p
    and guidance at their neutral values: ``logits_processor`` does that work (see
    :mod:`nsmc_gen.custom_generate.generate`). Add ``streamer=`` or output options as needed.

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
    review_format = review_format or ReviewFormat()
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
    input_ids, attention_mask = _left_pad(
        _prompt_rows(tokenizer, review_format, sentiment, prompts), pad, device
    )
    guidance: dict[str, torch.Tensor] = {}
    if settings["guidance_scale"] != 1:
        opposite = SENTIMENTS[1 - SENTIMENTS.index(sentiment)]
        ids, mask = _left_pad(_prompt_rows(tokenizer, review_format, opposite, prompts), pad, device)
        guidance = {"negative_prompt_ids": ids, "negative_prompt_attention_mask": mask}
    fixed = STRATEGIES[strategy].fixed
    knobs = {k: v for k, v in settings.items() if k != "strategy"}
    prior = knobs.pop(LENGTH_PRIOR_FIELD, False)
    if prior is not True:  # True: left out, so that the model's own (generation_config.json) applies
        knobs[LENGTH_PRIOR_FIELD] = list(prior or [])
    config = GenerationConfig(
        # Everything off first, so that no sampling default of the model's own config slips in.
        **{**_custom_generate.switched_off(fixed["do_sample"]), **fixed, **knobs},
        num_return_sequences=num_return_sequences,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad,
    )
    return _custom_generate.prepare(
        model, generation_config=config, input_ids=input_ids, attention_mask=attention_mask, **guidance
    )


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
    review_format: ReviewFormat | None = None,
    **decoding: Any,
) -> list[str]:
    """Generate movie reviews of a sentiment, in one batch.

    Args:
        model: a causal LM fine-tuned on the review format.
        tokenizer: its tokenizer.
        sentiment: ``"positive"``/``"negative"`` (or label 1/0); None: no sentiment prefix.
        prompt: the start of the review, or a list of starts (one left-padded batch).
        strategy: ``"greedy"``, ``"beam"``, ``"sampling"``, ``"top-k"`` or ``"top-p"`` (default).
        num_return_sequences: reviews per prompt.
        seed: seeds Python, NumPy and torch first; the same seed gives the same reviews.
        guidance_scale: sentiment guidance (> 0; 1: off); None: the default with a sentiment.
        review_format: the prompt format the model was trained on.
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
    review_format = review_format or ReviewFormat()
    kwargs = build_generate_kwargs(
        model,
        tokenizer,
        sentiment,
        prompt,
        strategy=strategy,
        num_return_sequences=num_return_sequences,
        guidance_scale=guidance_scale,
        review_format=review_format,
        **decoding,
    )
    _seed(seed)
    with _eval_mode(model):
        output = model.generate(**kwargs)
    sequences = getattr(output, "sequences", output)  # a config may ask for a dict output
    texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
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
    review_format: ReviewFormat | None = None,
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
    review_format = review_format or ReviewFormat()
    kwargs = build_generate_kwargs(
        model,
        tokenizer,
        sentiment,
        prompt,
        strategy=strategy,
        guidance_scale=guidance_scale,
        review_format=review_format,
        **decoding,
    )
    streamer = TextIteratorStreamer(tokenizer, skip_special_tokens=True)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            model.generate(**kwargs, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Stop(stop)]))
        except BaseException as error:  # re-raised in the caller's thread below
            errors.append(error)
            streamer.end()

    with _eval_mode(model):
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


def save_length_prior(model_dir: str | os.PathLike, prior: Sequence[float]) -> Path:
    """Write ``prior`` into the folder's ``generation_config.json`` (its ``length_prior`` field), atomically.

    Example:
        >>> prior = calibrate_length_prior(model, tokenizer, texts)  # doctest: +SKIP
        >>> save_length_prior("outputs/model", prior)  # doctest: +SKIP
        PosixPath('outputs/model/generation_config.json')
    """
    path = Path(model_dir) / "generation_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"model_dir must hold a generation_config.json: {path}")
    if not _CHECKS[LENGTH_PRIOR_FIELD][0](list(prior)):
        raise ValueError(f"prior must be a list of finite numbers, got {prior!r}")
    config = GenerationConfig.from_pretrained(model_dir)
    setattr(config, LENGTH_PRIOR_FIELD, [float(b) for b in prior])
    config._from_model_config = False  # else transformers drops every extra field on loading
    write_text_atomic(path, config.to_json_string(use_diff=True))
    return path


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


def install_custom_generate(model_dir: str | os.PathLike, review_format: ReviewFormat | None = None) -> Path:
    """Make a saved model folder decode like nsmc-gen under ``trust_remote_code=True``, without nsmc-gen.

    Copies :mod:`nsmc_gen.custom_generate.generate` and :mod:`nsmc_gen.processors` into
    ``model_dir/custom_generate/`` (transformers loads the second through the first's relative
    import), and makes sure ``generation_config.json`` has the ``sentiment_guidance`` field
    (adding it from the folder's tokenizer, or writing the recommended config if there is none) and
    the ``keep_eos_probability`` field (the default, for a folder written before it existed), so
    that remote code decodes as nsmc-gen does. Files are replaced atomically.

    Returns:
        The ``custom_generate`` folder.

    Example:
        >>> install_custom_generate("outputs/model")  # doctest: +SKIP
        PosixPath('outputs/model/custom_generate')
        >>> from transformers import pipeline
        >>> pipe = pipeline("text-generation", "outputs/model", trust_remote_code=True)  # doctest: +SKIP
        >>> pipe("긍정", num_return_sequences=3)  # our processors, sentiment guidance  # doctest: +SKIP
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"model_dir must be a saved model folder (with config.json): {model_dir}")
    target = model_dir / "custom_generate"
    target.mkdir(exist_ok=True)
    for source in (Path(_custom_generate.__file__), Path(_processors.__file__)):
        atomic_write(target / source.name, partial(shutil.copyfile, source))
    if (model_dir / "generation_config.json").is_file():
        config = GenerationConfig.from_pretrained(model_dir)
        has_guidance = bool(getattr(config, _custom_generate.GUIDANCE_FIELD, None))
        if has_guidance and getattr(config, KEEP_EOS_FIELD, None) is not None:
            return target
        if not has_guidance:
            guidance = sentiment_guidance(_tokenizer(model_dir), review_format)
            setattr(config, _custom_generate.GUIDANCE_FIELD, guidance)
        if getattr(config, KEEP_EOS_FIELD, None) is None:
            setattr(config, KEEP_EOS_FIELD, DEFAULT_KEEP_EOS_PROBABILITY)
        config._from_model_config = False  # else transformers drops every extra field on loading
    else:
        config = recommended_generation_config(_tokenizer(model_dir), review_format)
    write_text_atomic(model_dir / "generation_config.json", config.to_json_string(use_diff=True))
    return target


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


def _left_pad(
    rows: Sequence[Sequence[int]], pad_token_id: int, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left padding: a decoder-only model continues every row from its last column."""
    width = max(map(len, rows))
    ids = [[pad_token_id] * (width - len(row)) + list(row) for row in rows]
    mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Dropout off while generating (a model straight from training is in train mode)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _seed(seed: int | None) -> None:
    if seed is not None:
        if not _CHECKS["seed"][0](seed):
            raise ValueError(f"seed must be {_CHECKS['seed'][1]}, got {seed!r}")
        set_seed(seed)


def _tokenizer(model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(model_dir)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _finite(value: Any) -> bool:
    return _number(value) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
