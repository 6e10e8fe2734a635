"""The decoding lesson's pictures and tables, computed from a real model (no browser).

The model is the shipped embedded base (pretrained on NSMC reviews): its next-token distributions
are peaked like a real model's, so the cuts below decide something.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from nsmc_gen import lesson
from nsmc_gen.evaluation import load_metric
from nsmc_gen.evaluation.study import STUDY_ROWS
from nsmc_gen.generation import generate_reviews
from nsmc_gen.modeling import load_embedded_default


@pytest.fixture(scope="module")
def base():
    return load_embedded_default()


@pytest.fixture(scope="module")
def traces(base):
    model, tokenizer = base
    return [
        lesson.sample_trace(model, tokenizer, sentiment, "이 영화", seed=seed, max_new_tokens=24)
        for seed, sentiment in [(0, "positive"), (1, "negative"), (2, None)]
    ]


TEXTS = [
    "정말 재밌어요 정말 재밌어요 정말 재밌어요",
    "최고의 영화 최고의 배우  최고의 영화",
    "지루하다",
    "",
    "a b a b c a b",
    "이 영화 정말 좋다\n정말 좋다 진짜",
]


@pytest.mark.parametrize("text", TEXTS)
def test_repetition_marks_the_words_of_ngrams_said_before(text):
    marked = lesson.repetition(text)
    assert "".join(marked.pieces) == text
    words = text.split()
    grams = [tuple(words[i : i + 2]) for i in range(len(words) - 1)]
    assert marked.ngrams == len(grams)
    assert marked.repeats == sum(gram in grams[:i] for i, gram in enumerate(grams))
    highlighted = [piece for piece, on in zip(marked.pieces, marked.repeated, strict=True) if on]
    later = {w for i, gram in enumerate(grams) if gram in grams[:i] for w in gram}
    assert set(highlighted) == later
    assert all(not piece.isspace() for piece in highlighted)
    assert marked.highlighted("x") == [
        (p, "x" if on else None) for p, on in zip(marked.pieces, marked.repeated, strict=True)
    ]


def test_repetition_agrees_with_the_studys_repeated_2gram_column():
    # The study counts a review as repetitive when one of its word 2-grams occurs twice.
    metric = load_metric("repetition_rate")
    for text in [t for t in TEXTS if t.strip()]:
        expected = metric.compute(predictions=[text], n=2)["repetition_rate"]
        assert (lesson.repetition(text).repeats > 0) == (expected == 1.0), text
    assert (
        lesson.repetition("정말 재밌어요 정말 재밌어요 진짜").describe() == "1 of 4 word 2-grams repeat (25%)"
    )
    with pytest.raises(ValueError, match=re.escape("n must be an integer >= 1, got 0")):
        lesson.repetition("a b", n=0)


def test_side_by_side_rows_are_what_generation_writes_with_one_seed(base):
    model, tokenizer = base
    rows = list(lesson.side_by_side(model, tokenizer, prompt="이 영화", seed=3, max_new_tokens=16))
    assert [row.name for row in rows] == list(lesson.COMPARE_ROWS)
    for row, settings in zip(rows, lesson.COMPARE_ROWS.values(), strict=True):
        expected = generate_reviews(
            model, tokenizer, "positive", "이 영화", seed=3, max_new_tokens=16, **settings
        )
        assert [row.review] == expected
        assert row.repetition == lesson.repetition(row.review)
        assert row.review.startswith("이 영화") and row.seconds > 0
    # The guided row differs from the unguided top-p row by guidance alone.
    assert rows[-1].settings == {**rows[-2].settings, "guidance_scale": 2.0}
    assert len({row.review for row in rows}) >= 3, "the rows should not all write the same review"


def test_side_by_side_without_a_sentiment_skips_guidance_and_common_settings_win(base):
    model, tokenizer = base
    rows = {
        row.name: row
        for row in lesson.side_by_side(
            model, tokenizer, sentiment=None, prompt="이 영화", max_new_tokens=12, repetition_penalty=math.inf
        )
    }
    guided = list(lesson.COMPARE_ROWS)[-1]
    assert rows[guided].review is None and rows[guided].note == "sentiment guidance needs a sentiment"
    [greedy] = generate_reviews(
        model, tokenizer, None, "이 영화", strategy="greedy", max_new_tokens=12, repetition_penalty=math.inf
    )
    assert rows["greedy"].review == greedy
    table = lesson.lesson_table(rows.values())
    assert list(table.columns) == ["review", "repeated word 2-grams", "seconds"]
    assert table.loc[guided, "review"] == "(sentiment guidance needs a sentiment)"
    with pytest.raises(ValueError, match=re.escape("max_new_tokens must be an integer >= 1, got 0")):
        next(lesson.side_by_side(model, tokenizer, max_new_tokens=0))


def test_the_whole_lesson_runs_from_the_study_rows(base):
    model, tokenizer = base
    rows = list(lesson.side_by_side(model, tokenizer, STUDY_ROWS, prompt="이 영화", max_new_tokens=8))
    assert [row.name for row in rows] == list(STUDY_ROWS)
    assert all(row.review is not None for row in rows)


def test_a_trace_is_the_review_generation_writes_and_its_logits_are_the_models(base, traces):
    model, tokenizer = base
    for trace, sentiment in zip(traces, ["positive", "negative", None], strict=True):
        [review] = generate_reviews(
            model,
            tokenizer,
            sentiment,
            "이 영화",
            seed=trace.decoding["seed"],
            max_new_tokens=24,
            **lesson.TRACE_DECODING,
        )
        text = tokenizer.decode(list(trace.context_ids + trace.token_ids), skip_special_tokens=True)
        assert text.endswith(review) and review.startswith("이 영화")
        assert trace.step_logits.shape == (trace.steps, len(tokenizer))
        # A fresh forward pass over what was read gives the same distributions.
        ids = torch.tensor([list(trace.context_ids + trace.token_ids)])
        with torch.no_grad():
            logits = model(ids).logits[0, len(trace.context_ids) - 1 : -1]
        torch.testing.assert_close(trace.step_logits, logits, atol=1e-4, rtol=1e-4)


def test_every_token_taken_is_inside_the_top_p_cut_at_temperature_1(base, traces):
    _, tokenizer = base
    for trace in traces:
        for step in range(1, trace.steps + 1):
            view = lesson.next_token_view(
                trace, tokenizer, step, temperature=1.0, top_p=trace.decoding["top_p"]
            )
            assert view.picked.kept_top_p, (step, view.summary())
            assert view.picked.token_id == trace.token_ids[step - 1]


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, 10, 0.8), (0.5, 3, 0.5), (1.7, 40, 0.95)])
def test_cuts_agree_with_transformers_own_warpers(base, traces, temperature, top_k, top_p):
    _, tokenizer = base
    trace = traces[0]
    for step in range(1, min(trace.steps, 6) + 1):
        view = lesson.next_token_view(
            trace, tokenizer, step, temperature=temperature, top_k=top_k, top_p=top_p, bars=50
        )
        scores = TemperatureLogitsWarper(temperature)(None, trace.step_logits[step - 1 : step].clone())
        by_k = TopKLogitsWarper(top_k)(None, scores.clone()).isfinite()[0]
        by_p = TopPLogitsWarper(top_p)(None, scores.clone()).isfinite()[0]
        p = torch.softmax(scores[0], -1)
        assert (view.kept_top_k, view.kept_top_p) == (int(by_k.sum()), int(by_p.sum()))
        assert view.mass_top_k == pytest.approx(float(p[by_k].sum()), abs=1e-5)
        assert view.mass_top_p == pytest.approx(float(p[by_p].sum()), abs=1e-5)
        assert view.mass_top_p >= top_p - 1e-6
        for bar in view.bars:
            assert (bar.kept_top_k, bar.kept_top_p) == (bool(by_k[bar.token_id]), bool(by_p[bar.token_id]))
            assert bar.p_tempered == pytest.approx(float(p[bar.token_id]), abs=1e-6)


def test_temperature_sharpens_below_1_and_flattens_above(base, traces):
    _, tokenizer = base
    trace = traces[1]
    sharp, flat = (lesson.next_token_view(trace, tokenizer, 1, temperature=t) for t in (0.5, 2.0))
    assert sharp.bars[0].p_tempered > sharp.bars[0].p_model > flat.bars[0].p_tempered
    assert [bar.token_id for bar in sharp.bars] == [bar.token_id for bar in flat.bars]  # order kept
    ranks = [bar.rank for bar in sharp.bars]
    assert ranks[:15] == list(range(1, 16))
    ps = [bar.p_model for bar in sharp.bars[:15]]
    assert ps == sorted(ps, reverse=True)


def test_a_view_draws_the_picked_token_even_when_it_is_not_among_the_top_bars(base, traces):
    _, tokenizer = base
    views = [
        lesson.next_token_view(trace, tokenizer, step, bars=1)
        for trace in traces
        for step in range(1, trace.steps + 1)
    ]
    off_top = [view for view in views if view.picked.rank > 1]
    assert off_top, "every step took the top token: the test would prove nothing"
    for view in off_top:
        assert view.bars[-1] == view.picked and len(view.bars) == 2
        frame = view.model_frame()
        assert frame["picked"].tolist() == [lesson.NOT_PICKED, lesson.PICKED]
        assert frame["token"].tolist()[-1] == f"{view.picked.rank}. {view.picked.token}"
    cut = views[0].cut_frame()
    assert set(cut["cut"]) <= {lesson.KEPT_BY_BOTH, lesson.TOP_K_ONLY, lesson.TOP_P_ONLY, lesson.CUT_BY_BOTH}


def test_the_summary_says_what_the_chart_shows(base, traces):
    _, tokenizer = base
    trace = traces[0]
    view = lesson.next_token_view(trace, tokenizer, 2, temperature=0.7, top_k=10, top_p=0.8)
    summary = view.summary()
    assert summary.startswith(f"Step 2 of {trace.steps}. The model has read “긍정 이 영화")
    assert f"took “{view.picked.token}” (rank {view.picked.rank}" in summary
    assert f"Top-k 10 keeps {view.kept_top_k} tokens" in summary and view.kept_top_k == 10
    assert f"top-p 0.8 keeps {view.kept_top_p} (p mass {view.mass_top_p:.3f})" in summary


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"step": 0}, "step must be an integer in 1 .. "),
        ({"step": 999}, "step must be an integer in 1 .. "),
        ({"temperature": 0.0}, "temperature must be a finite number > 0, got 0.0"),
        ({"top_k": 0}, "top_k must be an integer >= 1, got 0"),
        ({"top_p": 0.0}, "`top_p` must be in (0, 1], got 0.0"),
    ],
)
def test_bad_view_settings_name_the_parameter(base, traces, changes, message):
    _, tokenizer = base
    with pytest.raises(ValueError, match=re.escape(message)):
        lesson.next_token_view(traces[0], tokenizer, **{"step": 1, **changes})
