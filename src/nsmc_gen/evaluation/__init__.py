"""Evaluation: metric modules for ``evaluate``, sentiment judges, and the decoding study.

The metrics are local ``evaluate`` modules shipped inside the package (Hub metrics cannot load
offline), found with :func:`metric_path` and loaded with :func:`load_metric`:
``review_perplexity``, ``distinct_n``, ``self_bleu``, ``repetition_rate``, ``sentiment_control``,
``discriminator`` (how well a classifier tells generated reviews from real ones).

Example:
    >>> metric = load_metric("distinct_n")
    >>> metric.compute(predictions=["정말 재밌다", "정말 별로다"])
    {'distinct-1': 0.75, 'distinct-2': 1.0}
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from nsmc_gen.evaluation.judges import (
    BayesJudge,
    Judge,
    TfidfJudge,
    control_report,
    load_judge,
    sentiment_control_accuracy,
    train_judge,
)
from nsmc_gen.evaluation.scoring import mean_token_loss, review_log_probs

METRIC_NAMES = (
    "review_perplexity",
    "distinct_n",
    "self_bleu",
    "repetition_rate",
    "sentiment_control",
    "discriminator",
)


def metric_path(name: str) -> str:
    """The folder of a shipped metric module, as ``evaluate.load`` takes it."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; shipped metrics: {', '.join(METRIC_NAMES)}")
    return str(resources.files("nsmc_gen") / "evaluation" / "metrics" / name)


def load_metric(name: str, **kwargs: Any):
    """``evaluate.load`` of a shipped metric module (works offline).

    Example:
        >>> load_metric("repetition_rate").compute(predictions=["좋다 좋다", "좋다"], n=1)
        {'repetition_rate': 0.5}
    """
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


__all__ = [
    "METRIC_NAMES",
    "BayesJudge",
    "Judge",
    "TfidfJudge",
    "control_report",
    "load_judge",
    "load_metric",
    "mean_token_loss",
    "metric_path",
    "review_log_probs",
    "sentiment_control_accuracy",
    "train_judge",
]
