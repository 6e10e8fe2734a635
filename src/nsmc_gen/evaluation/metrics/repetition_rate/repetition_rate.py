"""Repetition rate: the share of generations that repeat an n-gram within themselves.

A generation counts as repetitive when some n-gram of it occurs at least twice in it (the
degenerate loops of greedy and beam search: "정말 재밌어요 정말 재밌어요"). Units are
whitespace-separated words unless a ``tokenizer`` is given; ``n`` is configurable.

Example:
    >>> import evaluate
    >>> metric = evaluate.load("src/nsmc_gen/evaluation/metrics/repetition_rate")
    >>> metric.compute(predictions=["a b a b", "a b c", "a a"], n=2)
    {'repetition_rate': 0.3333333333333333}
"""

import datasets
import evaluate

_KWARGS = """
Args:
    predictions (list of str): the generations.
    n (int, default 2): the n-gram order, >= 1.
    tokenizer (callable str -> list of str, optional): the units; default ``str.split`` (words).
Returns:
    ``repetition_rate``: the share of generations with an n-gram that occurs twice or more in it.
"""


def has_repeat(units, n):
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    return len(set(grams)) < len(grams)


class RepetitionRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__.split("\n\n")[1],
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, n=2, tokenizer=None):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if not predictions:
            raise ValueError("predictions must not be empty")
        tokenizer = tokenizer or str.split
        repeats = sum(has_repeat(tokenizer(text), n) for text in predictions)
        return {"repetition_rate": repeats / len(predictions)}
