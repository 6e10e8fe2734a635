"""Our logits processors against transformers' and against a float64 reference.

The nucleus filter must keep what ``TopPLogitsWarper`` keeps, except for tokens whose decision is
truly disputed: where the probability mass at and below them lies within float32 rounding (1e-5) of
``1 - top_p`` in a float64 reference, or where tokens of exactly equal score straddle the cut (which
transformers' unstable sort orders arbitrarily). The repetition penalty must equal transformers' bit
for bit.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from nsmc_gen.processors import (
    KeepEOSProbabilityLogitsProcessor,
    LengthPriorLogitsProcessor,
    NucleusLogitsProcessor,
    StrictRepetitionPenaltyLogitsProcessor,
    add_eos_bias,
    keep_eos_probability,
    length_prior_bias,
    nucleus_cut,
    repetition_penalty,
    top_k_cut,
)

INF = float("inf")
TOLERANCE = 1e-5  # float32 rounding of a cumulative probability


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are small: with 2 threads on a crowded 2-core machine, OpenMP's hand-offs cost
    ~50x the work (a tiny-model generate: 1.5 s wall with 1 thread, over 60 s with 2)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- nucleus: a float64 reference


def settled(logits: torch.Tensor, top_p: float, min_tokens_to_keep: int = 1):
    """(surely kept, surely removed) masks by transformers' rule, computed in float64.

    transformers removes a token when the mass of it and of every token sorted below it is
    ``<= float32(1 - top_p)``, and keeps the ``min_tokens_to_keep`` highest. For tokens tied in score
    the mass below them depends on the sort order, so it is taken as a range over the tie.
    """
    x = logits.double()
    vocab = x.shape[-1]
    values, order = torch.sort(x, dim=-1)
    p = x.softmax(dim=-1).gather(1, order)
    cum = p.cumsum(dim=-1)
    position = torch.arange(vocab).expand_as(x)
    starts = torch.ones_like(x, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, position, 0).cummax(dim=-1).values  # first position of each tie group
    last = torch.where(ends, position, vocab).flip(-1).cummin(dim=-1).values.flip(-1)  # ... and last
    below = torch.where(first > 0, cum.gather(1, (first - 1).clamp(min=0)), 0.0)
    low, high = below + p, cum.gather(1, last)  # mass at-and-below, over all orders of the tie
    greater = vocab - 1 - last  # tokens with a strictly higher score
    greater_or_equal = vocab - first
    limit = float(torch.tensor(1 - top_p, dtype=torch.float32))
    keep_sorted = (low > limit + TOLERANCE) | (greater_or_equal <= min_tokens_to_keep)
    remove_sorted = (high <= limit - TOLERANCE) & (greater >= min_tokens_to_keep)
    keep = torch.zeros_like(starts).scatter_(1, order, keep_sorted)
    remove = torch.zeros_like(starts).scatter_(1, order, remove_sorted)
    return keep, remove


def assert_nucleus_ok(out, logits, keep, remove, filter_value=-INF):
    """``out`` agrees with the reference on every settled token, and is a valid filtering elsewhere."""
    filtered = torch.full_like(logits, filter_value)
    assert torch.equal(out[keep], logits[keep])
    assert torch.equal(out[remove], filtered[remove])
    disputed = ~(keep | remove)
    assert torch.all((out[disputed] == logits[disputed]) | (out[disputed] == filter_value))
    # What is kept is the top of the ranking: no kept token scores below a removed one.
    finite = logits > -INF
    kept = (out == logits) & finite
    lowest_kept = torch.where(kept, logits.float(), INF).amin(dim=-1)
    highest_removed = torch.where(kept | ~finite, -INF, logits.float()).amax(dim=-1)
    assert torch.all(lowest_kept >= highest_removed)
    return disputed


def check_against_transformers(logits, top_p, min_tokens_to_keep=1):
    ours = NucleusLogitsProcessor(top_p, min_tokens_to_keep=min_tokens_to_keep)(None, logits)
    theirs = TopPLogitsWarper(top_p, min_tokens_to_keep=min_tokens_to_keep)(None, logits)
    assert ours.dtype == logits.dtype and ours.shape == logits.shape
    keep, remove = settled(logits, top_p, min_tokens_to_keep)
    disputed = assert_nucleus_ok(ours, logits, keep, remove)
    assert_nucleus_ok(theirs, logits, keep, remove)  # the reference is fair to transformers too
    assert not torch.any((ours != theirs) & ~disputed)
    return disputed


def flat_logits(batch, vocab, generator, scale=3.0):
    return torch.randn(batch, vocab, generator=generator) * scale


def peaked_logits(batch, vocab, generator):
    """Zipf-like: log(rank ** -s) over a random permutation, plus noise: a nucleus of tens to hundreds."""
    exponent = 1.4 + 0.2 * torch.rand(batch, 1, generator=generator)
    ranks = torch.argsort(torch.rand(batch, vocab, generator=generator), dim=-1) + 1
    return -exponent * ranks.double().log().float() + 0.1 * torch.randn(batch, vocab, generator=generator)


# ---------------------------------------------------------------- nucleus: exactness


@pytest.mark.parametrize("seed", range(60))
def test_nucleus_matches_transformers_on_small_random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    batch = int(torch.randint(1, 65, (1,), generator=g))
    vocab = int(torch.randint(2, 400, (1,), generator=g))
    top_p = [0.05, 0.3, 0.5, 0.8, 0.9, 0.92, 0.95, 0.99, 0.999, 1.0][seed % 10]
    min_tokens_to_keep = [1, 1, 1, 2, 7][seed % 5]
    kind = seed % 4
    if kind == 0:
        logits = flat_logits(batch, vocab, g, scale=float(torch.rand(1, generator=g)) * 6 + 0.1)
    elif kind == 1:
        logits = peaked_logits(batch, vocab, g)
    elif kind == 2:  # many exact ties
        logits = (flat_logits(batch, vocab, g) * 2).round() / 2
    else:  # masked-out tokens (-inf), as after top-k or a bad-words processor
        logits = flat_logits(batch, vocab, g).masked_fill(torch.rand(batch, vocab, generator=g) < 0.4, -INF)
        logits[:, 0] = 1.0  # every row keeps one finite score
    check_against_transformers(logits, top_p, min_tokens_to_keep)


@pytest.mark.parametrize(
    ("kind", "batch", "top_p", "min_tokens_to_keep"),
    [("flat", 64, 0.92, 1), ("peaked", 64, 0.92, 1), ("flat", 8, 0.5, 3), ("peaked", 13, 0.99, 1)],
)
def test_nucleus_matches_transformers_at_vocabulary_51200(kind, batch, top_p, min_tokens_to_keep):
    g = torch.Generator().manual_seed(batch)
    make = flat_logits if kind == "flat" else peaked_logits
    logits = make(batch, 51200, g)
    disputed = check_against_transformers(logits, top_p, min_tokens_to_keep)
    assert disputed.float().mean() < 0.005  # the reference settles nearly every token: the test has teeth


def test_nucleus_with_masked_tokens_at_vocabulary_51200():
    g = torch.Generator().manual_seed(5)
    logits = peaked_logits(16, 51200, g)
    logits[torch.rand(16, 51200, generator=g) < 0.5] = -INF
    logits[:, 7] = 0.0
    check_against_transformers(logits, 0.92)
    out = NucleusLogitsProcessor(0.92)(None, logits)
    assert torch.all(out[logits == -INF] == -INF)


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    probs = torch.tensor([[0.5, 0.05, 0.3, 0.15], [0.25, 0.25, 0.25, 0.25]])
    out = NucleusLogitsProcessor(0.6)(None, probs.log())
    assert (out > -INF).tolist() == [[True, False, True, False], [True, True, True, False]]
    assert torch.equal(out[out > -INF], probs.log()[out > -INF])  # kept scores are untouched


def test_nucleus_min_tokens_to_keep_overrides_a_tiny_top_p():
    logits = flat_logits(6, 1000, torch.Generator().manual_seed(1))
    for k in (1, 2, 10, 999, 1000, 5000):
        out = NucleusLogitsProcessor(1e-6, min_tokens_to_keep=k)(None, logits)
        kept = out > -INF
        assert torch.all(kept.sum(dim=-1) == min(k, 1000))
        assert torch.equal(kept, logits >= logits.topk(min(k, 1000)).values[:, -1:])


def test_nucleus_ties_at_the_cut_keep_lower_ids_first():
    logits = torch.zeros(1, 10)  # uniform: 0.35 needs 4 of 10 equal tokens
    out = NucleusLogitsProcessor(0.35)(None, logits)
    assert (out > -INF).nonzero()[:, 1].tolist() == [0, 1, 2, 3]


def test_nucleus_custom_filter_value():
    logits = flat_logits(4, 300, torch.Generator().manual_seed(2))
    out = NucleusLogitsProcessor(0.7, filter_value=-1234.0)(None, logits)
    assert_nucleus_ok(out, logits, *settled(logits, 0.7), filter_value=-1234.0)
    assert (out == -1234.0).any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nucleus_half_precision_decides_in_float32_and_returns_the_input_dtype(dtype):
    g = torch.Generator().manual_seed(3)
    logits = peaked_logits(8, 5000, g).to(dtype)  # half precision: many exact ties
    out = NucleusLogitsProcessor(0.9)(None, logits)
    assert out.dtype == dtype
    assert torch.equal(out, NucleusLogitsProcessor(0.9)(None, logits.float()).to(dtype))
    assert_nucleus_ok(out.float(), logits.float(), *settled(logits.float(), 0.9))


def test_nucleus_non_finite_rows_follow_transformers():
    logits = flat_logits(4, 50, torch.Generator().manual_seed(4))
    logits[1] = -INF  # nothing to keep
    logits[2, 3] = INF
    logits[3, 5] = float("nan")
    ours = NucleusLogitsProcessor(0.9)(None, logits)
    theirs = TopPLogitsWarper(0.9)(None, logits)
    assert torch.equal(ours.isnan(), theirs.isnan())
    assert torch.equal(ours.nan_to_num(), theirs.nan_to_num())


def test_nucleus_empty_batch():
    out = NucleusLogitsProcessor(0.9)(None, torch.zeros(0, 10))
    assert out.shape == (0, 10)


@pytest.mark.parametrize("shape", [(10,), (2, 3, 10)])
def test_nucleus_rejects_scores_that_are_not_2d(shape):
    with pytest.raises(ValueError, match="2-D"):
        NucleusLogitsProcessor(0.9)(None, torch.zeros(shape))


@pytest.mark.parametrize("top_p", [0, 0.0, -0.1, 1.0001, 2, float("nan"), INF, "0.9", None, True])
def test_nucleus_rejects_top_p_outside_0_1(top_p):
    with pytest.raises(ValueError, match=r"top_p.*\(0, 1\]"):
        NucleusLogitsProcessor(top_p)


@pytest.mark.parametrize("k", [0, -1, 1.0, 2.5, "3", None, True])
def test_nucleus_rejects_bad_min_tokens_to_keep(k):
    with pytest.raises(ValueError, match=r"min_tokens_to_keep.*integer >= 1"):
        NucleusLogitsProcessor(0.9, min_tokens_to_keep=k)


# ---------------------------------------------------------------- repetition penalty


def random_case(seed, batch, vocab, length, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    scores = (torch.randn(batch, vocab, generator=g) * 4).to(dtype)
    scores[:, : vocab // 10] = 0.0  # zero logits: neither divided nor multiplied visibly
    scores[:, vocab // 10 : vocab // 5] = -INF
    input_ids = torch.randint(vocab, (batch, length), generator=g)  # with repeats
    return input_ids, scores


@pytest.mark.parametrize("penalty", [1.2, 2.0, 0.5, 1.0, 3.7, 1e6])
@pytest.mark.parametrize(
    ("batch", "vocab", "length"), [(1, 5, 3), (3, 50, 40), (64, 51200, 20), (7, 6000, 1)]
)
def test_penalty_equals_transformers_bit_for_bit(penalty, batch, vocab, length):
    input_ids, scores = random_case(batch * vocab + length, batch, vocab, length)
    ours = StrictRepetitionPenaltyLogitsProcessor(penalty)(input_ids, scores.clone())
    theirs = RepetitionPenaltyLogitsProcessor(penalty)(input_ids, scores.clone())
    assert torch.equal(ours, theirs)
    if penalty != 1.0:
        assert not torch.equal(ours, scores)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_penalty_equals_transformers_in_half_precision(dtype):
    input_ids, scores = random_case(0, 4, 300, 30, dtype)
    ours = StrictRepetitionPenaltyLogitsProcessor(1.3)(input_ids, scores)
    assert ours.dtype == dtype
    assert torch.equal(ours, RepetitionPenaltyLogitsProcessor(1.3)(input_ids, scores))


@pytest.mark.parametrize("prompt_length", [0, 1, 5, 12])
def test_penalty_prompt_length_equals_transformers_prompt_ignore_length(prompt_length):
    input_ids, scores = random_case(prompt_length, 5, 100, 12)
    ours = StrictRepetitionPenaltyLogitsProcessor(1.5, prompt_length=prompt_length)(input_ids, scores)
    theirs = RepetitionPenaltyLogitsProcessor(1.5, prompt_ignore_length=prompt_length)(input_ids, scores)
    assert torch.equal(ours, theirs)


def test_penalty_does_not_modify_its_input():
    input_ids, scores = random_case(1, 3, 40, 10)
    before = scores.clone()
    StrictRepetitionPenaltyLogitsProcessor(1.5, pad_token_id=3)(input_ids, scores)
    StrictRepetitionPenaltyLogitsProcessor(INF)(input_ids, scores)
    assert torch.equal(scores, before)


def test_penalty_ignores_ids_beyond_the_head_like_transformers():
    input_ids, scores = random_case(2, 3, 40, 10)
    input_ids[0, :4] = torch.tensor([40, 45, 41, 40])  # an embedding larger than the LM head
    input_ids[1, :] = 44  # a row with nothing to penalise
    for penalty in (1.5, INF):
        ours = StrictRepetitionPenaltyLogitsProcessor(penalty)(input_ids, scores)
        assert ours.shape == scores.shape
        if penalty != INF:
            assert torch.equal(ours, RepetitionPenaltyLogitsProcessor(penalty)(input_ids, scores))
        assert torch.equal(ours[1], scores[1])


def test_strict_penalty_gives_seen_tokens_probability_zero():
    input_ids, scores = random_case(3, 8, 200, 50)
    out = StrictRepetitionPenaltyLogitsProcessor(INF)(input_ids, scores)
    seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, input_ids, True)
    assert torch.all(out[seen] == -INF)
    assert torch.equal(out[~seen], scores[~seen])
    probs = out.softmax(dim=-1)
    assert torch.all(probs[seen] == 0)
    draws = torch.multinomial(probs, 2000, replacement=True, generator=torch.Generator().manual_seed(0))
    assert not seen.gather(1, draws).any()


def test_pad_token_is_never_penalised():
    pad = 0
    scores = torch.tensor([[2.0, 3.0, -1.0, 4.0], [2.0, 3.0, -1.0, 4.0], [2.0, 3.0, -1.0, 4.0]])
    input_ids = torch.tensor([[0, 0, 1, 2], [0, 0, 0, 0], [0, 3, 0, 3]])  # left padding; an all-pad row
    for penalty, expect in [
        (2.0, [[2.0, 1.5, -2.0, 4.0], [2.0, 3.0, -1.0, 4.0], [2.0, 3.0, -1.0, 2.0]]),
        (INF, [[2.0, -INF, -INF, 4.0], [2.0, 3.0, -1.0, 4.0], [2.0, 3.0, -1.0, -INF]]),
    ]:
        out = StrictRepetitionPenaltyLogitsProcessor(penalty, pad_token_id=pad)(input_ids, scores)
        assert out.tolist() == expect


def test_pad_and_prompt_length_on_a_left_padded_batch():
    """Row 0's prompt is [5, 6], row 1's [7, 8, 9], left-padded with 0 to width 3; then 2 generated."""
    input_ids = torch.tensor([[0, 5, 6, 6, 0], [7, 8, 9, 1, 2]])
    scores = torch.ones(2, 10)
    out = StrictRepetitionPenaltyLogitsProcessor(INF, prompt_length=3, pad_token_id=0)(input_ids, scores)
    assert (out == -INF).nonzero().tolist() == [[0, 6], [1, 1], [1, 2]]


def test_penalty_one_is_a_no_op_and_empty_history_too():
    input_ids, scores = random_case(4, 2, 30, 6)
    assert torch.equal(StrictRepetitionPenaltyLogitsProcessor(1.0)(input_ids, scores), scores)
    out = StrictRepetitionPenaltyLogitsProcessor(2.0, prompt_length=6)(input_ids, scores)
    assert torch.equal(out, scores)


@pytest.mark.parametrize("penalty", [0, 0.0, -1.2, float("nan"), "1.2", None, True])
def test_penalty_rejects_non_positive_or_nan(penalty):
    with pytest.raises(ValueError, match=r"penalty.*> 0"):
        StrictRepetitionPenaltyLogitsProcessor(penalty)


@pytest.mark.parametrize("option", ["prompt_length", "pad_token_id"])
@pytest.mark.parametrize("value", [-1, 1.5, "3"])
def test_penalty_rejects_bad_options(option, value):
    with pytest.raises(ValueError, match=rf"{option}.*integer >= 0"):
        StrictRepetitionPenaltyLogitsProcessor(1.2, **{option: value})


# ---------------------------------------------------------------- inside generate()

# ---------------------------------------------------------------- keep EOS probability: a float64 reference


def keep_eos_reference(logits, eos, keep):
    """float64: each EOS token keeps softmax(logits)[eos]; the rest, 1 - P(EOS), goes to the
    continuation tokens that ``keep`` (continuation probabilities -> kept mask) keeps, in proportion."""
    p = logits.double().softmax(dim=-1)
    continuation = p.clone()
    continuation[:, eos] = 0
    q = torch.where(keep(continuation / continuation.sum(-1, keepdim=True)), continuation, 0.0)
    q = q / q.sum(-1, keepdim=True) * (1 - p[:, eos].sum(-1, keepdim=True))
    q[:, eos] = p[:, eos]
    return q


def nucleus_mask(top_p):
    """The smallest set of most probable tokens reaching top_p (float64; random scores: no ties)."""

    def keep(probs):
        values, order = probs.sort(dim=-1, descending=True)
        before = values.cumsum(-1) - values
        return torch.zeros_like(probs, dtype=torch.bool).scatter(1, order, before < top_p)

    return keep


def top_k_mask(k):
    def keep(probs):
        return torch.zeros_like(probs, dtype=torch.bool).scatter(1, probs.topk(k, dim=-1).indices, True)

    return keep


def top_k_then_nucleus_mask(k, top_p):
    """top-k, then a nucleus of top_p of what top-k kept (renormalised)."""

    def keep(probs):
        kept = top_k_mask(k)(probs)
        rest = torch.where(kept, probs, 0.0)
        return kept & nucleus_mask(top_p)(rest / rest.sum(-1, keepdim=True))

    return keep


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    ("truncation", "mask"),
    [
        (lambda: NucleusLogitsProcessor(0.5), nucleus_mask(0.5)),
        (lambda: NucleusLogitsProcessor(0.9), nucleus_mask(0.9)),
        (lambda: TopKLogitsWarper(5), top_k_mask(5)),
        (lambda: [TopKLogitsWarper(20), NucleusLogitsProcessor(0.8)], top_k_then_nucleus_mask(20, 0.8)),
    ],
    ids=["top-p-0.5", "top-p-0.9", "top-k-5", "top-k-20+top-p-0.8"],
)
def test_keep_eos_matches_a_float64_reference(seed, truncation, mask):
    g = torch.Generator().manual_seed(seed)
    batch, vocab = 9, int(torch.randint(30, 3000, (1,), generator=g))
    eos = [0] if seed % 2 else [0, 3]
    logits = flat_logits(batch, vocab, g, scale=1 + seed % 4) if seed % 3 else peaked_logits(batch, vocab, g)
    logits[1, eos] += 8.0  # EOS very probable
    logits[2, eos] -= 8.0  # EOS improbable
    logits[3, eos] = -INF  # EOS forbidden (min_new_tokens)
    out = KeepEOSProbabilityLogitsProcessor(truncation(), eos_token_id=eos)(None, logits)
    expected = keep_eos_reference(logits, eos, mask)
    assert out.dtype == logits.dtype
    assert torch.equal(out > -INF, expected > 0)  # the same tokens kept
    torch.testing.assert_close(out.double().exp(), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        out.double().exp().sum(-1), torch.ones(batch, dtype=torch.float64), atol=1e-5, rtol=0
    )


def test_keep_eos_example_from_the_docstring():
    probs = torch.tensor([[0.4, 0.3, 0.1, 0.1, 0.1]])
    plain = NucleusLogitsProcessor(0.7)(None, probs.log()).softmax(-1)
    keep = KeepEOSProbabilityLogitsProcessor(NucleusLogitsProcessor(0.7), eos_token_id=0)
    kept = keep(None, probs.log()).exp()
    assert plain[0, 0] == pytest.approx(0.4 / 0.7)  # plain top-p: EOS gets the cut mass too
    assert kept[0].tolist() == pytest.approx([0.4, 0.36, 0.12, 0.12, 0.0])


def test_keep_eos_without_processors_is_the_softmax():
    g = torch.Generator().manual_seed(0)
    logits = flat_logits(4, 100, g)
    out = KeepEOSProbabilityLogitsProcessor([], eos_token_id=[5, 7])(None, logits)
    torch.testing.assert_close(out, logits.log_softmax(-1))


def test_keep_eos_edge_rows():
    vocab = 6
    logits = torch.tensor(
        [
            [0.0, -INF, -INF, -INF, -INF, -INF],  # only EOS possible
            [-INF] * vocab,  # nothing possible: returned as it is
            [1.0, 2.0, 0.5, -INF, 0.0, 0.0],
        ]
    )
    out = KeepEOSProbabilityLogitsProcessor(NucleusLogitsProcessor(0.5), eos_token_id=[0, 99])(None, logits)
    assert out[0].tolist() == [0.0] + [-INF] * 5
    assert out[1].tolist() == [-INF] * vocab
    p = logits[2].softmax(-1).tolist()
    assert out[2].exp().tolist() == pytest.approx([p[0], 1 - p[0], 0, 0, 0, 0], abs=1e-6)

    class RemoveAll:
        def __call__(self, input_ids, scores):
            return torch.full_like(scores, -INF)

    # processors that leave no continuation: the mass goes to EOS, shared as the scores share it
    out = KeepEOSProbabilityLogitsProcessor(RemoveAll(), eos_token_id=[0, 2])(None, logits[2:])
    q = logits[2, [0, 2]].softmax(-1).tolist()
    assert out[0].exp().tolist() == pytest.approx([q[0], 0, q[1], 0, 0, 0], abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_keep_eos_half_precision_returns_the_input_dtype(dtype):
    logits = flat_logits(3, 500, torch.Generator().manual_seed(1)).to(dtype)
    out = KeepEOSProbabilityLogitsProcessor(NucleusLogitsProcessor(0.8), eos_token_id=0)(None, logits)
    assert out.dtype == dtype
    assert torch.equal(out[:, 0], logits.float().log_softmax(-1)[:, 0].to(dtype))  # decided in float32


@pytest.mark.parametrize("eos_token_id", [True, -1, [], "2", None, [1, 2.0]])
def test_keep_eos_rejects_bad_eos_token_id(eos_token_id):
    with pytest.raises(ValueError, match="`eos_token_id` must be an integer >= 0"):
        KeepEOSProbabilityLogitsProcessor([], eos_token_id=eos_token_id)


def test_keep_eos_rejects_non_processors_and_bad_scores():
    with pytest.raises(ValueError, match="`processors` must be a LogitsProcessor or a sequence of them"):
        KeepEOSProbabilityLogitsProcessor([0.9], eos_token_id=0)
    with pytest.raises(ValueError, match="`scores` must be 2-D"):
        KeepEOSProbabilityLogitsProcessor([], eos_token_id=0)(None, torch.zeros(5))


# ---------------------------------------------------------------- length prior


@pytest.mark.parametrize("generated", [0, 1, 2, 7])
def test_length_prior_multiplies_the_stop_odds_and_nothing_else(generated):
    g = torch.Generator().manual_seed(generated)
    logits = flat_logits(5, 300, g)
    logits[1, 4] = -INF  # a forbidden EOS stays forbidden
    before = logits.clone()
    bias = [-3.0, -1.5, 0.5]
    prior = LengthPriorLogitsProcessor(bias, eos_token_id=[4, 9], prompt_length=6)
    out = prior(torch.zeros(5, 6 + generated, dtype=torch.long), logits)
    b = bias[min(generated, len(bias) - 1)]
    p, q = logits.double().softmax(-1), out.double().softmax(-1)
    stop_p, stop_q = p[:, [4, 9]].sum(-1), q[:, [4, 9]].sum(-1)
    close = dict(rtol=1e-6, atol=1e-9)  # float32 logits
    torch.testing.assert_close(stop_q / (1 - stop_q), stop_p / (1 - stop_p) * math.exp(b), **close)
    rest = torch.ones(300, dtype=torch.bool)
    rest[[4, 9]] = False
    torch.testing.assert_close(
        q[:, rest] / (1 - stop_q)[:, None], p[:, rest] / (1 - stop_p)[:, None], **close
    )
    torch.testing.assert_close(q[:, 4] / q[:, 9], p[:, 4] / p[:, 9], **close)  # EOS ids keep their ratio
    assert out[1, 4] == -INF
    assert torch.equal(logits, before)  # the input is left alone


def test_length_prior_zero_bias_is_a_no_op_and_ids_beyond_the_head_are_ignored():
    logits = torch.randn(2, 10)
    prior = LengthPriorLogitsProcessor([0.0, -1.0], eos_token_id=[3, 50], prompt_length=2)
    assert prior(torch.zeros(2, 2, dtype=torch.long), logits) is logits
    out = prior(torch.zeros(2, 5, dtype=torch.long), logits)
    assert torch.equal(out[:, 3], logits[:, 3] - 1) and torch.equal(out[:, :3], logits[:, :3])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eos_bias": []}, "`eos_bias` must be a non-empty list of finite numbers"),
        ({"eos_bias": [0.0, math.inf]}, "`eos_bias` must be a non-empty list of finite numbers"),
        ({"eos_bias": "-1"}, "`eos_bias` must be a non-empty list of finite numbers"),
        ({"eos_bias": [True]}, "`eos_bias` must be a number"),
        ({"eos_token_id": -1}, "`eos_token_id` must be an integer >= 0"),
        ({"prompt_length": None}, "`prompt_length` must be an integer >= 0"),
    ],
)
def test_length_prior_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LengthPriorLogitsProcessor(**{"eos_bias": [-1.0], "eos_token_id": 0, "prompt_length": 0, **kwargs})
    with pytest.raises(ValueError, match="shorter than `prompt_length`"):
        LengthPriorLogitsProcessor([-1.0], 0, prompt_length=5)(
            torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4)
        )


def test_length_prior_in_generate_makes_texts_longer(tiny_model, tokenizer):
    """A bias of +30 (odds x 1e13) ends every text at once; -30 at the first steps keeps every one going."""
    eos = tokenizer.eos_token_id
    width = len(tokenizer("긍정")["input_ids"])

    def lengths(prior):
        _, out = generate(tiny_model, tokenizer, ["긍정"] * 16, [prior], do_sample=True, eos_token_id=eos)
        return [row.tolist().index(eos) if eos in row else len(row) for row in out[:, width:]]

    assert lengths(LengthPriorLogitsProcessor([30.0], eos, width)) == [0] * 16  # EOS odds x e^30
    assert min(lengths(LengthPriorLogitsProcessor([-30.0] * 4 + [0.0], eos, width))) >= 4


# Built-in counterparts off (repetition_penalty=1.0, top_p=1.0, top_k=0) so nothing applies twice.
OFF = dict(repetition_penalty=1.0, top_p=1.0, top_k=0, temperature=1.0)


def generate(model, tokenizer, prompts, processors=(), seed=0, **kwargs):
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # the fixture is session-wide
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = side
    torch.manual_seed(seed)
    out = model.generate(
        **batch,
        pad_token_id=tokenizer.pad_token_id,
        logits_processor=LogitsProcessorList(processors),
        max_new_tokens=kwargs.pop("max_new_tokens", 12),
        **{**OFF, **kwargs},
    )
    return batch["input_ids"].shape[1], out


PROMPTS = ["긍정 이 영화", "부정 배우들 연기가 정말 별로"]


@pytest.mark.parametrize("num_beams", [1, 3])
def test_our_penalty_in_generate_equals_the_built_in(tiny_model, tokenizer, num_beams):
    _, ours = generate(
        tiny_model, tokenizer, PROMPTS, [StrictRepetitionPenaltyLogitsProcessor(1.3)], num_beams=num_beams
    )
    _, builtin = generate(tiny_model, tokenizer, PROMPTS, num_beams=num_beams, repetition_penalty=1.3)
    _, none = generate(tiny_model, tokenizer, PROMPTS, num_beams=num_beams)
    assert torch.equal(ours, builtin)
    assert not torch.equal(ours, none)  # the penalty changes this model's greedy/beam output


def test_our_nucleus_in_generate_samples_like_the_built_in(tiny_model, tokenizer):
    _, ours = generate(tiny_model, tokenizer, PROMPTS, [NucleusLogitsProcessor(0.5)], do_sample=True, seed=7)
    _, builtin = generate(tiny_model, tokenizer, PROMPTS, do_sample=True, seed=7, top_p=0.5)
    assert torch.equal(ours, builtin)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_strict_penalty_in_generate_never_repeats(tiny_model, tokenizer, num_beams):
    width, out = generate(
        tiny_model,
        tokenizer,
        PROMPTS,
        [
            StrictRepetitionPenaltyLogitsProcessor(
                INF, prompt_length=None, pad_token_id=tokenizer.pad_token_id
            )
        ],
        num_beams=num_beams,
        max_new_tokens=20,
    )
    for row in out.tolist():
        tokens = [t for t in row if t != tokenizer.pad_token_id]
        assert len(tokens) == len(set(tokens))
    # With prompt_length, generated tokens may repeat the prompt's but never each other.
    width, out = generate(
        tiny_model,
        tokenizer,
        PROMPTS,
        [StrictRepetitionPenaltyLogitsProcessor(INF, prompt_length=width), NucleusLogitsProcessor(0.9)],
        num_beams=num_beams,
        do_sample=num_beams == 1,
        max_new_tokens=20,
    )
    for row in out[:, width:].tolist():
        if tokenizer.eos_token_id in row:  # finished rows are padded after EOS
            row = row[: row.index(tokenizer.eos_token_id) + 1]
        assert len(row) == len(set(row))


def test_keep_eos_in_generate_leaves_the_models_stop_probability(tiny_model, tokenizer):
    """At every sampled step, P(EOS) after the wrapped nucleus is the model's own; plain top-p raises it."""
    eos = tokenizer.eos_token_id

    def stop_probabilities(processor):
        _, out = generate(
            tiny_model,
            tokenizer,
            PROMPTS,
            [processor],
            do_sample=True,
            eos_token_id=eos,
            max_new_tokens=8,
            output_scores=True,
            output_logits=True,
            return_dict_in_generate=True,
        )
        after = torch.stack([s.float().softmax(-1)[:, eos] for s in out.scores])
        before = torch.stack([s.float().softmax(-1)[:, eos] for s in out.logits])
        return after, before

    after, before = stop_probabilities(KeepEOSProbabilityLogitsProcessor(NucleusLogitsProcessor(0.3), eos))
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-5)
    after, before = stop_probabilities(NucleusLogitsProcessor(0.3))
    kept = after > 0
    assert bool((after[kept] >= before[kept] - 1e-7).all()) and bool((after[kept] > before[kept] * 1.5).any())


def test_processors_are_logits_processors():
    from transformers import LogitsProcessor

    assert issubclass(KeepEOSProbabilityLogitsProcessor, LogitsProcessor)
    assert issubclass(LengthPriorLogitsProcessor, LogitsProcessor)

    assert issubclass(NucleusLogitsProcessor, LogitsProcessor)
    assert issubclass(StrictRepetitionPenaltyLogitsProcessor, LogitsProcessor)
    assert math.isinf(StrictRepetitionPenaltyLogitsProcessor(INF).penalty)


def test_docstring_examples_run():
    import doctest

    import nsmc_gen.processors

    result = doctest.testmod(nsmc_gen.processors, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10 and result.failed == 0


# ---------------------------------------------------------------- pure functions (vLLM's adapters call them)


def test_top_k_cut_equals_transformers_bit_for_bit():
    scores = torch.randn(6, 300, generator=torch.Generator().manual_seed(3))
    scores[0, :5] = scores[0, 5]  # ties at the cut
    for k, keep in [(1, 1), (7, 1), (2, 5), (400, 1)]:
        expected = TopKLogitsWarper(k, min_tokens_to_keep=keep)(None, scores)
        assert torch.equal(top_k_cut(scores, k, keep), expected)


def test_penalty_on_rows_padded_with_ids_beyond_the_head_equals_each_row_alone():
    """vLLM's adapter pads the rows' histories (of different lengths) with the vocabulary size."""
    vocab = 40
    scores = torch.randn(3, vocab, generator=torch.Generator().manual_seed(0))
    histories = [[1, 2, 3, 2], [7], [5, 9, 11, 13, 5, 39]]
    width = max(map(len, histories))
    padded = torch.tensor([h + [vocab] * (width - len(h)) for h in histories])
    for penalty in (1.3, INF):
        together = repetition_penalty(scores, padded, penalty)
        for row, history in enumerate(histories):
            alone = StrictRepetitionPenaltyLogitsProcessor(penalty)(
                torch.tensor([history]), scores[row : row + 1]
            )
            assert torch.equal(together[row : row + 1], alone)


def test_add_eos_bias_per_row_equals_the_length_prior_row_by_row():
    scores = torch.randn(3, 10, generator=torch.Generator().manual_seed(1))
    prior = [-2.0, -1.0, 0.5]
    generated = [0, 1, 7]
    bias = torch.tensor([length_prior_bias(prior, g) for g in generated])
    together = add_eos_bias(scores, [0, 4], bias)
    for row, count in enumerate(generated):
        ids = torch.zeros(1, 2 + count, dtype=torch.long)
        alone = LengthPriorLogitsProcessor(prior, [0, 4], prompt_length=2)(ids, scores[row : row + 1])
        assert torch.equal(together[row : row + 1], alone)


def test_keep_eos_probability_function_equals_the_processor():
    scores = torch.randn(4, 50, generator=torch.Generator().manual_seed(2))
    processor = KeepEOSProbabilityLogitsProcessor([TopKLogitsWarper(10), NucleusLogitsProcessor(0.7)], [0, 3])
    by_function = keep_eos_probability(scores, [0, 3], lambda s: nucleus_cut(top_k_cut(s, 10), 0.7))
    assert torch.equal(by_function, processor(None, scores))
