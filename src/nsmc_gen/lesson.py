"""The decoding lesson drawn from the model itself: strategies side by side, and why they differ.

The course teaches decoding with pictures: greedy against beam search, next-token bars sharpened
or flattened by a temperature, the top-k and top-p cuts. This module computes those pictures from
a real model and knows nothing of any page: the demo's "compare" and "why" views and the inference
notebook show what it returns.

- :func:`side_by_side`: one prompt decoded by several strategies with one seed, each review with
  its :func:`repetition` (the words of a word 2-gram the review already said).
- :func:`sample_trace` samples a review and keeps the model's logits at every step;
  :func:`next_token_view` shows one step: the model's distribution, the same after a temperature,
  and which tokens top-k and top-p keep, cut by the processors generation itself builds
  (:func:`nsmc_gen.custom_generate.generate.our_processors`).

Example:
    >>> from nsmc_gen.modeling import load_embedded_default
    >>> model, tokenizer = load_embedded_default()
    >>> trace = sample_trace(model, tokenizer, None, "이 영화", seed=0, max_new_tokens=8)
    >>> view = next_token_view(trace, tokenizer, step=1, temperature=0.7, top_k=10, top_p=0.8)
    >>> view.kept_top_k
    10
    >>> repetition("정말 재밌어요 정말 재밌어요").repeats
    1
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from transformers import GenerationConfig, set_seed

from nsmc_gen.custom_generate.generate import generate, our_processors
from nsmc_gen.decoding import DECODING_DEFAULTS, DEFAULT_GUIDANCE_SCALE
from nsmc_gen.evaluation.study import REPETITION_N, STUDY_ROWS
from nsmc_gen.formatting import Sentiment
from nsmc_gen.generation import eval_mode, generate_request, generate_reviews

_TOP_P = f"top-p-{DECODING_DEFAULTS['top_p']}"  # the study's name of the default top-p row

# The demo's "compare" rows: each strategy with no repetition penalty and no guidance (so that
# repetition shows), then the default top-p with sentiment guidance. name -> generate_reviews kwargs.
COMPARE_ROWS: dict[str, dict[str, Any]] = {
    "greedy": STUDY_ROWS["greedy"],
    "beam search (5 beams)": STUDY_ROWS["beam-5"],
    "top-k (k = 50)": STUDY_ROWS["top-k-50"],
    f"top-p (p = {DECODING_DEFAULTS['top_p']})": STUDY_ROWS[_TOP_P],
    f"top-p (p = {DECODING_DEFAULTS['top_p']}) + sentiment guidance {DEFAULT_GUIDANCE_SCALE}": {
        **STUDY_ROWS[_TOP_P],
        "guidance_scale": DEFAULT_GUIDANCE_SCALE,
    },
}

# How the "why" view samples its review: the default top-p at temperature 1 with nothing else
# between the model and the sampler (no guidance, no repetition penalty, no minimum length), so
# the bars it draws are exactly the scores the sampler saw.
TRACE_DECODING: dict[str, Any] = {
    "strategy": "top-p",
    "top_p": DECODING_DEFAULTS["top_p"],
    "temperature": 1.0,
    "repetition_penalty": 1.0,
    "guidance_scale": 1.0,
    "min_new_tokens": 0,
    # plain top-p, as the slides draw it: EOS takes its share of the cut, and no length prior
    "keep_eos_probability": False,
    "length_prior": False,
}

# The cut categories of a bar, as the "why" chart colours them.
KEPT_BY_BOTH, TOP_K_ONLY, TOP_P_ONLY, CUT_BY_BOTH = (
    "kept by top-k and top-p",
    "kept by top-k only",
    "kept by top-p only",
    "cut by both",
)
PICKED, NOT_PICKED = "the token the review took", "other tokens"


@dataclass(frozen=True)
class Repetition:
    """Which words of a text belong to a word n-gram that occurred earlier in the same text.

    ``pieces`` (words and the whitespace between them) join back to the text exactly.
    """

    pieces: tuple[str, ...]
    repeated: tuple[bool, ...]  # per piece: a word of a repeated n-gram
    repeats: int  # n-grams that occurred earlier in the text
    ngrams: int  # n-grams in the text
    n: int

    @property
    def share(self) -> float:
        """Repeated n-grams / all n-grams (0.0 for a text too short to have one)."""
        return self.repeats / self.ngrams if self.ngrams else 0.0

    def describe(self) -> str:
        """One line, e.g. ``"2 of 9 word 2-grams repeat (22%)"``."""
        return f"{self.repeats} of {self.ngrams} word {self.n}-grams repeat ({self.share:.0%})"

    def highlighted(self, label: str = "repeated") -> list[tuple[str, str | None]]:
        """``(piece, label or None)`` pairs, as ``gr.HighlightedText`` takes them."""
        return [(piece, label if on else None) for piece, on in zip(self.pieces, self.repeated, strict=True)]


def repetition(text: str, n: int = REPETITION_N) -> Repetition:
    """Mark the words of every word n-gram that ``text`` already said (the loops of greedy search).

    Words are whitespace-separated, as in the decoding study's "repeated 2-gram" column: a text
    has ``repeats > 0`` exactly when that column counts it as repetitive.

    Example:
        >>> r = repetition("정말 재밌어요 정말 재밌어요 진짜")
        >>> r.describe()
        '1 of 4 word 2-grams repeat (25%)'
        >>> [p for p, on in zip(r.pieces, r.repeated) if on]
        ['정말', '재밌어요']
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    pieces = tuple(re.findall(r"\S+|\s+", text))
    word_at = [i for i, piece in enumerate(pieces) if not piece.isspace()]  # piece index of each word
    words = [pieces[i] for i in word_at]
    seen: set[tuple[str, ...]] = set()
    marked: set[int] = set()
    repeats = 0
    for start in range(len(words) - n + 1):
        gram = tuple(words[start : start + n])
        if gram in seen:
            repeats += 1
            marked.update(word_at[start : start + n])
        seen.add(gram)
    return Repetition(
        pieces=pieces,
        repeated=tuple(i in marked for i in range(len(pieces))),
        repeats=repeats,
        ngrams=max(len(words) - n + 1, 0),
        n=n,
    )


@dataclass(frozen=True)
class Decoded:
    """One row of :func:`side_by_side`: a strategy's review, or why the row could not run."""

    name: str
    settings: dict[str, Any]
    review: str | None
    repetition: Repetition | None
    seconds: float
    note: str = ""


def side_by_side(
    model: Any,
    tokenizer: Any,
    rows: Mapping[str, Mapping[str, Any]] = COMPARE_ROWS,
    *,
    sentiment: Sentiment | None = "positive",
    prompt: str = "",
    seed: int = 0,
    **common: Any,
) -> Iterator[Decoded]:
    """Decode one prompt with each row's settings (same seed), yielding each row as it is done.

    Args:
        model, tokenizer: the model to decode with.
        rows: name -> :func:`~nsmc_gen.generation.generate_reviews` settings (default
            :data:`COMPARE_ROWS`; the decoding study's :data:`~nsmc_gen.evaluation.study.STUDY_ROWS`
            give the whole lesson).
        sentiment: the sentiment asked for; None for a plain base model (rows with sentiment
            guidance are then reported as needing one, not run).
        prompt: the start of the review.
        seed: the same seed for every row (rows differ by their decoding only).
        common: settings for every row, over the row's own (e.g. ``max_new_tokens``).

    Raises:
        ValueError: a bad setting, named by :func:`~nsmc_gen.generation.decoding_settings`.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> rows = list(side_by_side(model, tokenizer, prompt="이 영화", max_new_tokens=8))
        >>> [row.name for row in rows][:2]
        ['greedy', 'beam search (5 beams)']
    """
    for name, row in rows.items():
        settings = {**row, **common}
        if sentiment is None and settings.get("guidance_scale") not in (None, 1):
            yield Decoded(name, settings, None, None, 0.0, "sentiment guidance needs a sentiment")
            continue
        start = time.perf_counter()
        [review] = generate_reviews(model, tokenizer, sentiment, prompt, seed=seed, **settings)
        yield Decoded(name, settings, review, repetition(review), time.perf_counter() - start)


def lesson_table(decoded: Iterator[Decoded] | list[Decoded]) -> pd.DataFrame:
    """The rows of :func:`side_by_side` as a table: strategy, review, repetition, seconds."""
    return pd.DataFrame(
        [
            {
                "strategy": row.name,
                "review": row.review if row.review is not None else f"({row.note})",
                f"repeated word {REPETITION_N}-grams": row.repetition.describe() if row.repetition else "",
                "seconds": round(row.seconds, 2),
            }
            for row in decoded
        ]
    ).set_index("strategy")


@dataclass(frozen=True)
class Trace:
    """A sampled review, token by token, with the model's logits before each token was picked."""

    context_ids: tuple[int, ...]  # the prompt as the model read it (sentiment word included)
    token_ids: tuple[int, ...]  # the generated tokens, the end-of-text token included if it ended
    step_logits: torch.Tensor  # (steps, vocabulary), float32: the model's scores at each step
    decoding: dict[str, Any]

    @property
    def steps(self) -> int:
        return len(self.token_ids)


def sample_trace(
    model: Any,
    tokenizer: Any,
    sentiment: Sentiment | None,
    prompt: str = "",
    *,
    seed: int = 0,
    max_new_tokens: int = 32,
) -> Trace:
    """Sample one review with :data:`TRACE_DECODING`, keeping the model's logits at each step.

    The logits are the ones the model computed during generation (``output_logits``); with
    nothing between them and the sampler but top-p, every token taken is inside the top-p cut
    that :func:`next_token_view` draws at temperature 1.
    """
    request = generate_request(
        model, tokenizer, sentiment, prompt, max_new_tokens=max_new_tokens, **TRACE_DECODING
    )
    request["generation_config"].update(output_logits=True, return_dict_in_generate=True)
    set_seed(seed)
    with eval_mode(model):
        output = generate(model=model, **request)  # the decoding path of generate_reviews
    width = request["input_ids"].shape[1]
    steps = len(output.logits)
    return Trace(
        context_ids=tuple(request["input_ids"][0].tolist()),
        token_ids=tuple(output.sequences[0, width : width + steps].tolist()),
        step_logits=torch.cat(output.logits).float().cpu(),
        decoding={**TRACE_DECODING, "max_new_tokens": max_new_tokens, "seed": seed},
    )


@dataclass(frozen=True)
class Bar:
    """One token at one step: its probability before and after the temperature, and the cuts."""

    rank: int  # 1: the model's most probable token
    token_id: int
    token: str  # as the tokenizer spells it (``▁`` starts a word in SentencePiece-style vocabularies)
    p_model: float  # at temperature 1
    p_tempered: float  # at the chosen temperature
    kept_top_k: bool
    kept_top_p: bool

    @property
    def label(self) -> str:
        return f"{self.rank}. {self.token}"

    @property
    def cut(self) -> str:
        """Which of top-k and top-p keep this token (one of the four categories)."""
        return {
            (True, True): KEPT_BY_BOTH,
            (True, False): TOP_K_ONLY,
            (False, True): TOP_P_ONLY,
            (False, False): CUT_BY_BOTH,
        }[(self.kept_top_k, self.kept_top_p)]


@dataclass(frozen=True)
class NextTokenView:
    """The model's next-token distribution at one step of a :class:`Trace`, and what the cuts keep."""

    step: int
    steps: int
    context: str  # the text the model had read
    picked: Bar  # the token the review took
    bars: tuple[Bar, ...]  # the most probable tokens, rank order, then the picked one if it is not among them
    temperature: float
    top_k: int
    top_p: float
    kept_top_k: int  # tokens top-k keeps (after the temperature)
    mass_top_k: float  # their probability at the temperature
    kept_top_p: int
    mass_top_p: float

    def summary(self) -> str:
        """What the chart shows, in words (one paragraph)."""
        top = self.bars[0]
        return (
            f"Step {self.step} of {self.steps}. The model has read “{self.context}” and the review "
            f"took “{self.picked.token}” (rank {self.picked.rank}, p = {self.picked.p_model:.3f}). "
            f"Temperature {self.temperature:g} turns the top token's p = {top.p_model:.3f} into "
            f"{top.p_tempered:.3f}. Top-k {self.top_k} keeps {self.kept_top_k} tokens "
            f"(p mass {self.mass_top_k:.3f}); top-p {self.top_p:g} keeps {self.kept_top_p} "
            f"(p mass {self.mass_top_p:.3f})."
        )

    def model_frame(self) -> pd.DataFrame:
        """The bars at temperature 1, the taken token marked: token, probability, picked."""
        return pd.DataFrame(
            {
                "token": [bar.label for bar in self.bars],
                "probability": [bar.p_model for bar in self.bars],
                "picked": [PICKED if bar.rank == self.picked.rank else NOT_PICKED for bar in self.bars],
            }
        )

    def cut_frame(self) -> pd.DataFrame:
        """The bars at the temperature, by cut: token, probability, cut."""
        return pd.DataFrame(
            {
                "token": [bar.label for bar in self.bars],
                "probability": [bar.p_tempered for bar in self.bars],
                "cut": [bar.cut for bar in self.bars],
            }
        )


def next_token_view(
    trace: Trace,
    tokenizer: Any,
    step: int,
    *,
    temperature: float = 1.0,
    top_k: int = 50,
    top_p: float = DECODING_DEFAULTS["top_p"],
    bars: int = 15,
) -> NextTokenView:
    """The distribution before token ``step`` (1-based) of ``trace``, tempered and cut.

    ``bars`` most probable tokens are drawn, and the token the review took after them when it is
    less probable (its label carries its rank).

    Temperature, top-k and top-p are applied by the processors generation builds for the
    strategies "top-k" and "top-p" (:func:`~nsmc_gen.custom_generate.generate.our_processors`):
    temperature first, then the cut, as generation does.

    Raises:
        ValueError: ``step`` outside ``1 .. trace.steps``, or a bad temperature, top-k or top-p.
    """
    if not isinstance(step, int) or isinstance(step, bool) or not 1 <= step <= trace.steps:
        raise ValueError(f"step must be an integer in 1 .. {trace.steps}, got {step!r}")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if not isinstance(bars, int) or bars < 1:
        raise ValueError(f"bars must be an integer >= 1, got {bars!r}")
    if isinstance(temperature, bool) or not (
        isinstance(temperature, (int, float)) and 0 < temperature < math.inf
    ):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    scores = trace.step_logits[step - 1 : step]
    read = torch.tensor([[*trace.context_ids, *trace.token_ids[: step - 1]]])

    def kept(**cut: Any) -> torch.Tensor:
        config = GenerationConfig(do_sample=True, temperature=temperature, **cut)
        return our_processors(config)(read, scores.clone()).isfinite()[0]

    # The temperature alone: our_processors builds it only when it differs from 1.
    tempered_scores = our_processors(GenerationConfig(do_sample=True, temperature=temperature, top_k=0))(
        read, scores.clone()
    )
    p_model = torch.softmax(scores[0], dim=-1)
    p_tempered = torch.softmax(tempered_scores[0], dim=-1)
    by_top_k = kept(top_k=top_k, top_p=1.0)
    by_top_p = kept(top_k=0, top_p=top_p)
    order = torch.argsort(p_model, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, order.numel() + 1)

    def bar(token_id: int) -> Bar:
        return Bar(
            rank=int(rank[token_id]),
            token_id=token_id,
            token=tokenizer.convert_ids_to_tokens(token_id),
            p_model=float(p_model[token_id]),
            p_tempered=float(p_tempered[token_id]),
            kept_top_k=bool(by_top_k[token_id]),
            kept_top_p=bool(by_top_p[token_id]),
        )

    picked = bar(trace.token_ids[step - 1])
    top = tuple(bar(int(i)) for i in order[:bars])
    return NextTokenView(
        step=step,
        steps=trace.steps,
        context=tokenizer.decode(read[0].tolist(), skip_special_tokens=True),
        picked=picked,
        bars=top if picked.rank <= bars else (*top, picked),
        temperature=float(temperature),
        top_k=top_k,
        top_p=float(top_p),
        kept_top_k=int(by_top_k.sum()),
        mass_top_k=float(p_tempered[by_top_k].sum()),
        kept_top_p=int(by_top_p.sum()),
        mass_top_p=float(p_tempered[by_top_p].sum()),
    )
