"""Our logits processors: the CTRL repetition penalty with a strict form, a fast nucleus filter, a
wrapper that lets other processors act on the continuation only, leaving the model's probability of
ending the text as it is, and a length prior on that probability.

The arithmetic of each cut is one pure torch function (:func:`repetition_penalty`,
:func:`nucleus_cut`, :func:`top_k_cut`, :func:`keep_eos_probability`, :func:`add_eos_bias`); the
``transformers.LogitsProcessor`` classes below are thin wrappers over them, ``(input_ids, scores) ->
scores``, so they work in ``model.generate(logits_processor=LogitsProcessorList([...]))``, in pipelines
and in beam search. vLLM's adapters (:mod:`nsmc_gen.serving.nsmc_gen_vllm`) call the same functions.
Pass the classes with the built-in counterparts switched off (``repetition_penalty=1.0``,
``top_p=1.0``), or transformers applies both.

This module is self-contained (torch, transformers' ``LogitsProcessor`` base class and the standard
library only; any transformers version has it, vLLM's own included) so that it can be copied as is
into a model folder's ``custom_generate/`` and imported beside vLLM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real

import torch
from transformers import LogitsProcessor

__all__ = [
    "KeepEOSProbabilityLogitsProcessor",
    "LengthPriorLogitsProcessor",
    "NucleusLogitsProcessor",
    "StrictRepetitionPenaltyLogitsProcessor",
    "add_eos_bias",
    "keep_eos_probability",
    "length_prior_bias",
    "nucleus_cut",
    "nucleus_threshold",
    "repetition_penalty",
    "top_k_cut",
]


def _check_real(name: str, value, valid: str) -> float:
    """``value`` as a float; a ValueError naming ``name`` and ``valid`` when it is not a real number."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"`{name}` must be a number {valid}, got {value!r}")
    return float(value)


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_optional_index(name: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be None or an integer >= 0, got {value!r}")
    return value


class StrictRepetitionPenaltyLogitsProcessor(LogitsProcessor):
    r"""transformers' (CTRL) repetition penalty, plus its strict form and padding left alone: the logit
    of every token already seen is divided by ``penalty`` if it is positive and multiplied by it if it
    is negative, once per token however often it was seen.

    Named apart from ``transformers.RepetitionPenaltyLogitsProcessor`` for what it adds: for finite
    penalties the result is bit for bit that class's, but ``penalty=float("inf")`` is the strict form
    (a repeat is never picked) and ``pad_token_id`` is never penalised. Strict: a seen token's logit
    becomes ``-inf``, so its probability is exactly 0 and it can never be picked again (transformers'
    class, given ``inf``, would turn positive logits into 0 instead). ``penalty=1.0`` changes nothing;
    values below 1 reward repetition.

    Args:
        penalty: ``> 0``; 1.0 is no penalty, ``float("inf")`` forbids repeats.
        prompt_length: if set, only tokens at positions ``>= prompt_length`` of ``input_ids`` count as
            seen, i.e. only generated tokens are penalised (in a left-padded batch every row's prompt
            region has this same width: the padded prompt length).
        pad_token_id: if set, this token is never penalised (left padding does not count as seen).
            When it equals the EOS token (GPT-2 style), EOS is not penalised either.

    Token ids that are ``>= scores.shape[-1]`` (an embedding larger than the LM head) are ignored, as
    transformers does. Works for any number of rows (batch x beams); ``scores`` keeps its dtype.

    Examples:

    ```python
    >>> import torch
    >>> from nsmc_gen.processors import StrictRepetitionPenaltyLogitsProcessor
    >>> scores = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    >>> seen = torch.tensor([[0, 1, 1]])
    >>> StrictRepetitionPenaltyLogitsProcessor(2.0)(seen, scores)
    tensor([[ 1.0000, -2.0000,  0.5000,  3.0000]])
    >>> StrictRepetitionPenaltyLogitsProcessor(float("inf"))(seen, scores)
    tensor([[  -inf,   -inf, 0.5000, 3.0000]])
    >>> StrictRepetitionPenaltyLogitsProcessor(2.0, prompt_length=1)(seen, scores)  # token 0 is prompt
    tensor([[ 2.0000, -2.0000,  0.5000,  3.0000]])
    >>> StrictRepetitionPenaltyLogitsProcessor(2.0, pad_token_id=0)(seen, scores)
    tensor([[ 2.0000, -2.0000,  0.5000,  3.0000]])

    ```

    In ``generate``, with the built-in penalty left off so it is not applied twice:

    ```python
    >>> from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList
    >>> _ = torch.manual_seed(0)
    >>> model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=16, n_layer=1, n_head=2))
    >>> prompt = torch.tensor([[1, 2, 3]])
    >>> out = model.generate(
    ...     prompt, do_sample=False, max_new_tokens=20, repetition_penalty=1.0, pad_token_id=0,
    ...     logits_processor=LogitsProcessorList([StrictRepetitionPenaltyLogitsProcessor(float("inf"))]),
    ... )
    >>> tokens = out[0].tolist()
    >>> len(set(tokens)) == len(tokens)  # strict: no token appears twice, prompt included
    True

    ```
    """

    def __init__(self, penalty: float, prompt_length: int | None = None, pad_token_id: int | None = None):
        penalty = _check_real("penalty", penalty, "> 0 (1.0: no penalty, float('inf'): strict)")
        if not penalty > 0:  # also rejects NaN
            raise ValueError(f"`penalty` must be > 0 (1.0: no penalty, float('inf'): strict), got {penalty}")
        self.penalty = penalty
        self.prompt_length = _check_optional_index("prompt_length", prompt_length)
        self.pad_token_id = _check_optional_index("pad_token_id", pad_token_id)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        ids = input_ids if self.prompt_length is None else input_ids[:, self.prompt_length :]
        return repetition_penalty(scores, ids, self.penalty, self.pad_token_id)


def repetition_penalty(
    scores: torch.Tensor, seen_ids: torch.Tensor, penalty: float, pad_token_id: int | None = None
) -> torch.Tensor:
    """The CTRL repetition penalty of :class:`StrictRepetitionPenaltyLogitsProcessor`, as a pure function.

    Args:
        scores: ``(rows, vocabulary)`` logits; not modified.
        seen_ids: ``(rows, length)`` the token ids each row has seen; ids ``>= vocabulary`` and
            ``pad_token_id`` are ignored (so rows of different lengths can be padded with either).
        penalty: ``> 0``; 1.0 is no penalty, ``float("inf")`` the strict form (a seen token gets ``-inf``).
        pad_token_id: a token never penalised.

    Example:
        >>> repetition_penalty(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[0, 1, 9]]), 2.0)
        tensor([[ 1.0000, -2.0000,  0.5000]])
    """
    if penalty == 1.0:
        return scores
    ids = seen_ids
    if ids.shape[-1] == 0:
        return scores
    vocab_size = scores.shape[-1]
    # The common path is gather -> rule -> scatter into a copy: one full copy of ``scores`` (where
    # transformers makes two, padding by a column and scattering). Ignored positions (pad, ids beyond
    # the head) take the id of a token the same row does penalise, so every write to one place
    # carries the same value; a row with nothing to penalise writes its own score back.
    ignored = ids >= vocab_size
    if pad_token_id is not None:
        ignored |= ids == pad_token_id
    has_ignored = bool(ignored.any())
    if has_ignored:
        valid = ~ignored
        has_valid = valid.any(dim=1, keepdim=True)
        stand_in = ids.gather(1, valid.to(torch.uint8).argmax(dim=1, keepdim=True))
        stand_in = stand_in.masked_fill(~has_valid, 0)
        ids = torch.where(ignored, stand_in, ids)
    if math.isinf(penalty) and not has_ignored:
        return scores.scatter(1, ids, float("-inf"))
    score = torch.gather(scores, 1, ids)
    if math.isinf(penalty):
        penalised = torch.full_like(score, float("-inf"))
    else:
        # The same expression as transformers, hence the same bits.
        penalised = torch.where(score < 0, score * penalty, score / penalty)
    if has_ignored:
        penalised = torch.where(has_valid, penalised, score)
    return scores.scatter(1, ids, penalised)


class NucleusLogitsProcessor(LogitsProcessor):
    r"""Nucleus (top-p) filtering without sorting the vocabulary.

    Keeps the smallest set of most probable tokens whose probabilities add up to at least ``top_p`` (and
    always the ``min_tokens_to_keep`` most probable ones); every other score becomes ``filter_value``.
    Kept scores are returned unchanged.

    It decides exactly as ``transformers.TopPLogitsWarper`` does (a token is removed when the
    probability mass of it and of every less probable token is ``<= 1 - top_p``), except where that
    mass lies within float32 rounding of ``1 - top_p``, where the order of summation decides either
    way, and among tokens with exactly equal scores at the cut, where transformers' unstable sort picks
    arbitrarily and we keep lower token ids first. The arithmetic is done in float32: float16 and
    bfloat16 scores are converted to float32 for the decision and the result is returned in the input
    dtype (transformers' generate hands processors float32 scores anyway).

    It costs a few passes over the scores instead of a sort of the vocabulary
    (:func:`nucleus_threshold`; per call ``benchmarks/processors.py``, in whole generations
    ``benchmarks/nucleus_generation.py``).

    Args:
        top_p: in ``(0, 1]``; 1.0 keeps every token of non-zero probability.
        min_tokens_to_keep: an integer ``>= 1``.
        filter_value: the score given to removed tokens.

    Examples:

    ```python
    >>> import torch
    >>> from nsmc_gen.processors import NucleusLogitsProcessor
    >>> probs = torch.tensor([[0.5, 0.05, 0.3, 0.15]])
    >>> NucleusLogitsProcessor(0.75)(None, probs.log()).exp()  # 0.5 + 0.3 reaches 0.75
    tensor([[0.5000, 0.0000, 0.3000, 0.0000]])
    >>> NucleusLogitsProcessor(0.85)(None, probs.log()).exp()  # 0.5 + 0.3 + 0.15 needed
    tensor([[0.5000, 0.0000, 0.3000, 0.1500]])
    >>> NucleusLogitsProcessor(0.1, min_tokens_to_keep=2)(None, probs.log()).exp()
    tensor([[0.5000, 0.0000, 0.3000, 0.0000]])

    ```

    Sampling with it in ``generate`` (the built-in ``top_p`` and ``top_k`` off):

    ```python
    >>> from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList
    >>> _ = torch.manual_seed(0)
    >>> model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=16, n_layer=1, n_head=2))
    >>> out = model.generate(
    ...     torch.tensor([[1, 2, 3]]), do_sample=True, top_p=1.0, top_k=0, max_new_tokens=5, pad_token_id=0,
    ...     logits_processor=LogitsProcessorList([NucleusLogitsProcessor(0.9)]),
    ... )
    >>> out.shape
    torch.Size([1, 8])

    ```
    """

    def __init__(self, top_p: float, min_tokens_to_keep: int = 1, filter_value: float = -float("inf")):
        top_p = _check_real("top_p", top_p, "in (0, 1]")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"`top_p` must be in (0, 1], got {top_p}")
        k = min_tokens_to_keep
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`min_tokens_to_keep` must be an integer >= 1, got {min_tokens_to_keep!r}")
        self.top_p = top_p
        self.min_tokens_to_keep = min_tokens_to_keep
        self.filter_value = float(_check_real("filter_value", filter_value, "(a float)"))

    def __call__(self, input_ids: torch.LongTensor | None, scores: torch.FloatTensor) -> torch.FloatTensor:
        return nucleus_cut(scores, self.top_p, self.min_tokens_to_keep, self.filter_value)


def nucleus_cut(
    scores: torch.Tensor, top_p: float, min_tokens_to_keep: int = 1, filter_value: float = -math.inf
) -> torch.Tensor:
    """The nucleus filter of :class:`NucleusLogitsProcessor`, as a pure function (arguments checked there).

    Example:
        >>> nucleus_cut(torch.tensor([[0.5, 0.05, 0.3, 0.15]]).log(), 0.75).exp()
        tensor([[0.5000, 0.0000, 0.3000, 0.0000]])
    """
    if scores.dim() != 2:
        raise ValueError(f"`scores` must be 2-D (rows, vocabulary), got shape {tuple(scores.shape)}")
    logits = scores.float()
    top = logits.amax(dim=-1, keepdim=True)
    if not bool(torch.isfinite(top).all()):
        # NaN, +inf or an all -inf row: no histogram can be built; decide literally, by sorting.
        return _nucleus_by_sort(logits, top_p, min_tokens_to_keep, filter_value).to(scores.dtype)
    probs = torch.softmax(logits, dim=-1)
    k = min(min_tokens_to_keep, logits.shape[-1])
    if top_p == 1.0:  # transformers removes exactly the tokens of probability 0 (beyond the k)
        remove = (probs == 0) & (logits < logits.topk(k, dim=-1).values[:, -1:])
    else:
        threshold, tied_out = nucleus_threshold(logits, probs, top_p, k)
        remove = logits < threshold.unsqueeze(1)
        remove[tied_out] = True
    return logits.masked_fill(remove, filter_value).to(scores.dtype)


def _nucleus_by_sort(logits: torch.Tensor, top_p: float, min_tokens_to_keep: int, filter_value: float):
    """transformers' own procedure, for inputs the histogram cannot take (NaN, +inf, all -inf)."""
    sorted_logits, sorted_indices = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[..., -min_tokens_to_keep:] = False
    remove = remove.scatter(1, sorted_indices, remove)
    return logits.masked_fill(remove, filter_value)


def top_k_cut(
    scores: torch.Tensor, top_k: int, min_tokens_to_keep: int = 1, filter_value: float = -math.inf
) -> torch.Tensor:
    """transformers' ``TopKLogitsWarper`` as a pure function (the same expression, hence the same
    bits): every score below the ``max(top_k, min_tokens_to_keep)``-th highest becomes ``filter_value``.

    Example:
        >>> top_k_cut(torch.tensor([[1.0, 3.0, 2.0]]), 2)
        tensor([[-inf, 3., 2.]])
    """
    k = min(max(top_k, min_tokens_to_keep), scores.size(-1))
    remove = scores < torch.topk(scores, k)[0][..., -1, None]
    return scores.masked_fill(remove, filter_value)


# Histogram bins: the top float32 bits of a probability (exponent and 5 mantissa bits), i.e. 32 bins per
# halving of the probability, each 2.2% wide; probabilities in [0, 1] give bins 0 .. 4064.
_SHIFT = 18
_NUM_BINS = (0x3F800000 >> _SHIFT) + 1


# Why a histogram: the kept set is "every token down to the first one (in descending order) at which the
# mass of the tokens above it reaches top_p", so only that cut has to be found, and a full sort of the
# vocabulary (what transformers does: ~100x the cost of a softmax at vocabulary 51,200) is not needed for
# it. One pass puts every token in a bin by its probability (the float's top bits: bins are fine
# everywhere, 2.2% of the value wide) and sums the probability of each bin; the cumulative bin masses,
# from the top, name the bin that holds the cut. Only that bin's few tokens (a few dozen for a flat
# distribution at vocabulary 51,200) are then sorted, by score, and decided one by one with the exact
# mass above them. Every token in a higher bin is kept, every token in a lower one is removed, so the
# output is a per-row threshold on the scores (softmax is monotonic, so the order of the bins is the
# order of the scores). Plain torch throughout: CPU-specific tuning (scratch buffers kept between calls,
# per-row int32 histograms, a word-wise search of the cut bin, per-row torch.threshold) made single
# calls faster but did not show in whole generations (benchmarks/nucleus_generation.py).
def nucleus_threshold(
    logits: torch.Tensor, probs: torch.Tensor, top_p: float, min_tokens_to_keep: int
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The top-p nucleus of each row as a score threshold: keep ``logits >= threshold[:, None]``,
    except the tokens at ``tied_out`` (equal to the threshold but past the cut; lower ids kept first).

    Args:
        logits: float32 ``(rows, vocabulary)``, every row with a finite maximum and no NaN or +inf.
        probs: ``softmax(logits, dim=-1)``.
        top_p: in ``(0, 1)``.
        min_tokens_to_keep: ``1 .. vocabulary``.

    Returns:
        ``(threshold, tied_out)``: a ``(rows,)`` tensor and the ``(row, column)`` index tensors.

    Example:
        >>> logits = torch.tensor([[0.5, 0.05, 0.3, 0.15]]).log()
        >>> threshold, tied_out = nucleus_threshold(logits, logits.softmax(-1), 0.75, 1)
        >>> (logits >= threshold[:, None]).tolist(), tied_out[0].numel()
        ([[True, False, True, False]], 0)
    """
    rows, vocab = logits.shape
    bins = (probs.view(torch.int32) >> _SHIFT).long()
    mass = torch.zeros(rows, _NUM_BINS, dtype=probs.dtype, device=probs.device).scatter_add_(1, bins, probs)
    # cum[:, j]: the mass of bin _NUM_BINS - 1 - j and of every higher bin; cum[:, -1] is the total, as
    # transformers' float64 cumsum of the float32 probabilities has it (to ~1e-8: each bin adds
    # probabilities within 2.2% of each other; a float32 probs.sum() would be ~10x further off).
    cum = mass.flip(-1).double().cumsum(dim=-1)
    total = cum[:, -1:]
    # transformers removes a token when the mass at and below it is <= float32(1 - top_p), i.e. it keeps
    # tokens while the mass strictly above them is < total - that.
    need = total - float(torch.tensor(1.0 - top_p, dtype=torch.float32))
    cut = (cum < need).sum(dim=-1).clamp_(max=_NUM_BINS - 1)  # in cum's (descending) order
    # min_tokens_to_keep: the k-th highest score, how many tokens tied with it are still needed to make
    # k, and its bin if that is lower than the cut.
    highest, highest_index = logits.topk(min_tokens_to_keep, dim=-1)
    kth = highest[:, -1]
    short = min_tokens_to_keep - (highest > kth.unsqueeze(1)).sum(dim=-1)
    cut = torch.maximum(cut, _NUM_BINS - 1 - bins.gather(1, highest_index[:, -1:]).squeeze(1))
    above = torch.where(cut > 0, cum.gather(1, (cut - 1).clamp(min=0).unsqueeze(1)).squeeze(1), 0.0)

    # The cut bin's tokens, row by row, in descending order of score (equal scores: lower id first).
    row, col = (bins == (_NUM_BINS - 1 - cut).unsqueeze(1)).nonzero(as_tuple=True)
    value = logits[row, col]
    order = torch.sort(value, descending=True, stable=True).indices
    order = order[torch.sort(row[order], stable=True).indices]
    row, col, value = row[order], col[order], value[order]
    counts = torch.bincount(row, minlength=rows)
    starts = counts.cumsum(0) - counts
    prob = probs[row, col].double()
    running = prob.cumsum(0) - prob  # mass before each token, over the flattened rows
    mass_above = above[row] + running - running[starts[row]]
    at_kth = value == kth[row]
    tie_rank = at_kth.cumsum(0) - at_kth.long()
    tie_rank = tie_rank - tie_rank[starts[row]]
    by_rank = (value > kth[row]) | (at_kth & (tie_rank < short[row]))
    kept = (mass_above < need.squeeze(1)[row]) | by_rank
    # kept is a prefix of each row's run; the last kept token gives the row's threshold.
    n_kept = torch.zeros(rows, dtype=torch.int64, device=row.device).index_add_(0, row, kept.long())
    last = value[(starts + n_kept - 1).clamp(min=0)]
    threshold = torch.where(n_kept > 0, last, highest[:, 0])
    tied_out = (~kept) & (value == threshold[row])
    return threshold, (row[tied_out], col[tied_out])


class KeepEOSProbabilityLogitsProcessor(LogitsProcessor):
    r"""Runs ``processors`` on the continuation tokens only: the end-of-text tokens keep the probability
    the scores give them.

    Why: truncation (top-k, top-p) keeps EOS whenever it is among the probable tokens and cuts the tail
    of the others; renormalising then hands EOS the cut mass too, so at a flat step (where the tail is
    large) a text ends far more often than the model says it should. Here each EOS token gets exactly
    ``softmax(scores)[eos]``, and the rest, ``1 - P(EOS)``, is shared among the other tokens as
    ``processors`` distribute it when they see only those (EOS set to ``-inf`` before they run). So a
    nucleus of ``top_p`` is taken over what the model would say next if it goes on, and the model's
    own probability of stopping is left alone.

    The result is log-probabilities (rows sum to 1 after ``exp``), in the dtype of ``scores``
    (computed in float32). A row whose ``processors`` leave no continuation token, or whose EOS
    probability is 1, gets all its mass on EOS; a row with no finite score is returned as it is.

    Args:
        processors: a ``LogitsProcessor`` or a sequence of them (applied in order), e.g. top-k and
            nucleus warpers. They must not need to see the EOS scores.
        eos_token_id: the end-of-text token id, or several (each keeps its own probability); ids
            ``>= scores.shape[-1]`` are ignored.

    Examples:

    ```python
    >>> import torch
    >>> from nsmc_gen.processors import KeepEOSProbabilityLogitsProcessor, NucleusLogitsProcessor
    >>> probs = torch.tensor([[0.4, 0.3, 0.1, 0.1, 0.1]])  # token 0 is EOS
    >>> NucleusLogitsProcessor(0.7)(None, probs.log()).softmax(-1)  # plain top-p: EOS 0.4 -> 0.57
    tensor([[0.5714, 0.4286, 0.0000, 0.0000, 0.0000]])
    >>> keep = KeepEOSProbabilityLogitsProcessor(NucleusLogitsProcessor(0.7), eos_token_id=0)
    >>> keep(None, probs.log()).exp()  # EOS keeps 0.4; the nucleus of the other 0.6 is 1, 2, 3 or 4
    tensor([[0.4000, 0.3600, 0.1200, 0.1200, 0.0000]])

    ```

    Sampling in ``generate`` (the built-in ``top_p`` and ``top_k`` off):

    ```python
    >>> from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList
    >>> _ = torch.manual_seed(0)
    >>> model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=16, n_layer=1, n_head=2))
    >>> nucleus = KeepEOSProbabilityLogitsProcessor([NucleusLogitsProcessor(0.9)], eos_token_id=0)
    >>> out = model.generate(
    ...     torch.tensor([[1, 2, 3]]), do_sample=True, top_p=1.0, top_k=0, max_new_tokens=5, pad_token_id=0,
    ...     eos_token_id=0, logits_processor=LogitsProcessorList([nucleus]),
    ... )
    >>> out.shape[0]
    1

    ```
    """

    def __init__(
        self, processors: LogitsProcessor | Sequence[LogitsProcessor], eos_token_id: int | Sequence[int]
    ):
        processors = [processors] if callable(processors) else list(processors)
        if not all(callable(p) for p in processors):
            raise ValueError(
                f"`processors` must be a LogitsProcessor or a sequence of them, got {processors}"
            )
        ids = [eos_token_id] if isinstance(eos_token_id, int) else eos_token_id
        if not isinstance(ids, Sequence) or not ids or not all(_is_index(i) for i in ids):
            raise ValueError(
                f"`eos_token_id` must be an integer >= 0 or a non-empty list of them, got {ids!r}"
            )
        self.processors = processors
        self.eos_token_id = sorted(set(ids))

    def __call__(self, input_ids: torch.LongTensor | None, scores: torch.FloatTensor) -> torch.FloatTensor:
        def cut(continuation: torch.Tensor) -> torch.Tensor:
            for processor in self.processors:
                continuation = processor(input_ids, continuation)
            return continuation

        return keep_eos_probability(scores, self.eos_token_id, cut)


def keep_eos_probability(
    scores: torch.Tensor, eos_token_id: Sequence[int], cut: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """:class:`KeepEOSProbabilityLogitsProcessor` as a pure function: ``cut`` (scores -> scores, e.g. a
    nucleus) acts on the continuation tokens, each EOS keeps ``softmax(scores)[eos]``; log-probabilities.

    Args:
        scores: ``(rows, vocabulary)``.
        eos_token_id: the end-of-text token ids (ids ``>= vocabulary`` are ignored).
        cut: applied to the scores with every EOS set to ``-inf``.

    Example:
        >>> probs = torch.tensor([[0.4, 0.3, 0.1, 0.1, 0.1]])  # token 0 is EOS
        >>> keep_eos_probability(probs.log(), [0], lambda s: nucleus_cut(s, 0.7)).exp()
        tensor([[0.4000, 0.3600, 0.1200, 0.1200, 0.0000]])
    """
    if scores.dim() != 2:
        raise ValueError(f"`scores` must be 2-D (rows, vocabulary), got shape {tuple(scores.shape)}")
    logits = scores.float()
    eos = torch.tensor([i for i in eos_token_id if i < logits.shape[-1]], dtype=torch.long)
    eos = eos.to(logits.device)
    finite = torch.isfinite(logits.amax(dim=-1, keepdim=True))
    log_probs = torch.log_softmax(logits, dim=-1)
    stop = log_probs.index_select(1, eos)
    # log(1 - P(EOS)), from the continuation's own log-probabilities: exact where P(EOS) is near 1
    go_on = torch.logsumexp(log_probs.index_fill(1, eos, -math.inf), dim=-1, keepdim=True)
    continuation = cut(logits.index_fill(1, eos, -math.inf))
    continuation = continuation.float().index_fill(1, eos, -math.inf)
    alive = torch.isfinite(continuation.amax(dim=-1, keepdim=True)) & (go_on > -math.inf)
    share = torch.log_softmax(torch.where(alive, continuation, 0.0), dim=-1) + go_on
    out = torch.where(alive, share, -math.inf)
    # no continuation left: the whole mass goes to EOS (shared as the scores share it)
    stop = torch.where(alive, stop, torch.log_softmax(stop, dim=-1))
    out = out.index_copy(1, eos, stop)
    return torch.where(finite, out, logits).to(scores.dtype)


class LengthPriorLogitsProcessor(LogitsProcessor):
    r"""A prior on the length of the text: after ``k`` generated tokens, the odds of ending it (EOS) are
    multiplied by ``exp(eos_bias[k])``; the other tokens keep their relative probabilities.

    That is ``eos_bias[k]`` added to the EOS scores (scores are logits or log-probabilities: a row's
    softmax does not change when a constant is added to all of it, so adding to EOS alone moves only
    its log-odds). Steps beyond the list use its last value. ``-inf`` scores stay ``-inf``, so a
    forbidden EOS (``min_new_tokens``) stays forbidden. A negative bias makes texts longer.

    It exists because a small language model stops too early: its EOS probabilities are pulled
    toward EOS's average frequency, and sampling from its own text stops earlier still. A bias
    calibrated on the lengths of generated against real texts
    (:func:`nsmc_gen.calibration.calibrate_length_prior`) gives back the real length distribution
    without a floor that forces a text on when it has ended.

    Args:
        eos_bias: finite numbers, one per generated-token count (0, 1, 2, ...); the last one for
            every later step.
        eos_token_id: the end-of-text token id, or several.
        prompt_length: the width of the prompt in ``input_ids`` (of a left-padded batch): the
            generated-token count is ``input_ids.shape[1] - prompt_length``.

    Examples:

    ```python
    >>> import torch
    >>> from nsmc_gen.processors import LengthPriorLogitsProcessor
    >>> prior = LengthPriorLogitsProcessor([-2.0, -1.0, 0.0], eos_token_id=0, prompt_length=3)
    >>> probs = torch.tensor([[0.5, 0.25, 0.25]])  # EOS odds 1
    >>> prior(torch.zeros(1, 4, dtype=torch.long), probs.log()).softmax(-1)  # 1 generated: odds e^-1
    tensor([[0.2689, 0.3655, 0.3655]])
    >>> prior(torch.zeros(1, 9, dtype=torch.long), probs.log()).softmax(-1)  # 6 generated: the last, 0
    tensor([[0.5000, 0.2500, 0.2500]])

    ```
    """

    def __init__(self, eos_bias: Sequence[float], eos_token_id: int | Sequence[int], prompt_length: int):
        if isinstance(eos_bias, (str, bytes)) or not isinstance(eos_bias, Sequence) or not eos_bias:
            raise ValueError(f"`eos_bias` must be a non-empty list of finite numbers, got {eos_bias!r}")
        bias = [_check_real("eos_bias", b, "(a non-empty list of finite numbers)") for b in eos_bias]
        if not all(math.isfinite(b) for b in bias):
            raise ValueError(f"`eos_bias` must be a non-empty list of finite numbers, got {eos_bias!r}")
        ids = [eos_token_id] if isinstance(eos_token_id, int) else eos_token_id
        if not isinstance(ids, Sequence) or not ids or not all(_is_index(i) for i in ids):
            raise ValueError(
                f"`eos_token_id` must be an integer >= 0 or a non-empty list of them, got {ids!r}"
            )
        if not _is_index(prompt_length):
            raise ValueError(f"`prompt_length` must be an integer >= 0, got {prompt_length!r}")
        self.eos_bias = bias
        self.eos_token_id = sorted(set(ids))
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids.shape[-1] - self.prompt_length
        if generated < 0:
            raise ValueError(
                f"`input_ids` ({input_ids.shape[-1]} columns) is shorter than `prompt_length` "
                f"({self.prompt_length})"
            )
        return add_eos_bias(scores, self.eos_token_id, length_prior_bias(self.eos_bias, generated))


def length_prior_bias(eos_bias: Sequence[float], generated: int) -> float:
    """The EOS bias of a length prior after ``generated`` tokens: steps beyond the list use its last.

    Example:
        >>> length_prior_bias([-2.0, -1.0, 0.0], 1), length_prior_bias([-2.0, -1.0, 0.0], 6)
        (-1.0, 0.0)
    """
    return eos_bias[min(generated, len(eos_bias) - 1)]


def add_eos_bias(
    scores: torch.Tensor, eos_token_id: Sequence[int], bias: float | torch.Tensor
) -> torch.Tensor:
    """``bias`` added to the EOS scores (ids ``>= vocabulary`` ignored): :class:`LengthPriorLogitsProcessor`
    as a pure function. ``bias`` is one number, or a ``(rows,)`` tensor (one per row).

    Example:
        >>> add_eos_bias(torch.zeros(2, 3), [0], torch.tensor([-1.0, 2.0]))
        tensor([[-1.,  0.,  0.],
                [ 2.,  0.,  0.]])
    """
    eos = [i for i in eos_token_id if i < scores.shape[-1]]
    if not eos or (not isinstance(bias, torch.Tensor) and bias == 0):
        return scores
    out = scores.clone()
    if isinstance(bias, torch.Tensor):
        out[:, eos] += bias.to(out.dtype).unsqueeze(1)
    else:
        out[:, eos] += bias
    return out
