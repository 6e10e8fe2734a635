"""Sentiment control accuracy: the share of reviews a judge finds to have the asked sentiment.

``predictions`` are generated reviews, ``references`` the sentiment each was generated for
(1 positive, 0 negative); the judge is any object with ``predict(texts) -> list[int]``, e.g.
``nsmc_gen.evaluation.load_judge()`` (independent) or ``BayesJudge(model, tokenizer)``. The
result is only as trustworthy as the judge's own accuracy on held-out test reviews.

Example:
    >>> import evaluate
    >>> metric = evaluate.load("src/nsmc_gen/evaluation/metrics/sentiment_control")
    >>> metric.compute(predictions=["최고", "최악"], references=[1, 1], judge=judge)  # doctest: +SKIP
    {'sentiment_control_accuracy': 0.5, 'negative': None, 'positive': 0.5}
"""

import datasets
import evaluate

from nsmc_gen.evaluation.judges import control_report

_KWARGS = """
Args:
    predictions (list of str): generated reviews.
    references (list of int): the asked sentiment of each, 1 (positive) or 0 (negative).
    judge: an object with ``predict(texts) -> list[int]``.
Returns:
    ``sentiment_control_accuracy`` over all reviews, and ``negative``/``positive``: the accuracy
    among the reviews asked for that sentiment (None when there are none).
"""


class SentimentControl(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__.split("\n\n")[1],
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, judge):
        return control_report(predictions, references, judge)
