"""Scoring reviews with a causal LM: the log-probability of every review token, batched.

One forward pass per batch serves three consumers: the perplexity metric, the Bayes judge
(the same reviews under ``긍정`` and under ``부정``) and ``benchmarks/lm_baselines.py``.
Reviews are tokenized exactly as training tokenizes them (:func:`nsmc_gen.formatting.tokenize_reviews`:
the formatted text, then EOS), and the sentiment prefix, in the words the model was trained on
(:func:`~nsmc_gen.formatting.review_format_of`), is cut off by the length of
:meth:`ReviewFormat.prompt_ids`, which is an exact prefix of the training ids. Tokenizing the
prefix and the review separately would not be: a byte-level BPE attaches the space to the review.

Example:
    >>> from nsmc_gen.modeling import load_embedded_default
    >>> model, tok = load_embedded_default()
    >>> scores = review_log_probs(model, tok, ["재밌어요"], sentiments=["positive"])
    >>> len(scores[0]) == len(tok("재밌어요")["input_ids"]) + 1  # review tokens + EOS
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from nsmc_gen.formatting import (
    ReviewCollator,
    Sentiment,
    normalize_sentiment,
    review_format_of,
    tokenize_reviews,
)


def review_log_probs(
    model: Any,
    tokenizer: Any,
    reviews: Sequence[str],
    sentiments: Sequence[Sentiment | int] | None = None,
    batch_size: int = 32,
    max_length: int = 128,
) -> list[torch.Tensor]:
    """Log-probabilities (natural log, float32) of each review's tokens and its EOS.

    Args:
        model: a causal LM (any ``AutoModelForCausalLM``), used in eval mode without gradients.
        tokenizer: its tokenizer (must define ``eos_token_id`` and ``pad_token_id``).
        reviews: the review texts, without any sentiment word.
        sentiments: one sentiment per review (``"positive"``/``"negative"`` or 1/0): each review
            is scored after that sentiment's prefix, as in training. ``None``: no prefix, and the
            first review token (which then has no context) is not scored. The prefix is the
            model's own (:func:`~nsmc_gen.formatting.review_format_of`).
        batch_size: reviews per forward pass (>= 1).
        max_length: tokens per formatted review, as in training; longer ones are cut (and then
            score no EOS).

    Returns:
        One 1-D tensor per review, in input order: ``log p(token | everything before it)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if sentiments is not None and len(sentiments) != len(reviews):
        raise ValueError(f"sentiments must have one entry per review: {len(sentiments)} != {len(reviews)}")
    reviews = list(reviews)
    if sentiments is None:
        encoded = tokenize_reviews({"document": reviews}, tokenizer, None, max_length)["input_ids"]
        starts = [1] * len(reviews)  # the first token is predicted from nothing: not scored
    else:
        review_format = review_format_of(model)
        labels = [normalize_sentiment(s) for s in sentiments]
        encoded = tokenize_reviews(
            {"document": reviews, "label": labels}, tokenizer, review_format, max_length
        )
        encoded = encoded["input_ids"]
        prefix_lengths = {y: len(review_format.prompt_ids(tokenizer, y)) for y in set(labels)}
        starts = [prefix_lengths[y] for y in labels]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return _score(model, pad, encoded, starts, batch_size)


@torch.inference_mode()
def _score(
    model: Any, pad_token_id: int, encoded: list[list[int]], starts: list[int], batch_size: int
) -> list[torch.Tensor]:
    was_training = model.training
    model.eval()
    collate = ReviewCollator(pad_token_id=pad_token_id)
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths: little padding
    results: list[torch.Tensor | None] = [None] * len(encoded)
    for first in range(0, len(order), batch_size):
        rows = order[first : first + batch_size]
        batch = collate([{"input_ids": encoded[i]} for i in rows])
        logits = (
            model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            .logits[:, :-1]
            .float()
        )
        targets = batch["input_ids"][:, 1:].to(device)
        # log_softmax gathered at the targets, without materialising a second vocabulary-sized tensor
        token_scores = logits.gather(-1, targets[..., None])[..., 0] - logits.logsumexp(-1)
        for row, i in enumerate(rows):
            # position t predicts token t + 1: the review starts at token starts[i]
            results[i] = token_scores[row, starts[i] - 1 : len(encoded[i]) - 1].cpu()
    model.train(was_training)
    return results  # type: ignore[return-value]


def mean_token_loss(log_probs: Sequence[torch.Tensor]) -> tuple[float, int]:
    """Mean negative log-likelihood per token over all reviews, and the number of tokens."""
    total = sum(float(scores.sum()) for scores in log_probs)
    count = sum(len(scores) for scores in log_probs)
    if count == 0:
        raise ValueError("no scored tokens: reviews must be non-empty")
    return -total / count, count
