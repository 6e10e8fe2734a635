"""distinct-n: the diversity of a set of generations (Li et al., 2016).

Distinct-n is the number of different n-grams divided by the number of n-grams, over all
generations together: 1.0 when no n-gram repeats anywhere, near 0 when every generation says the
same thing. Units are whitespace-separated words unless a ``tokenizer`` is given.

Example:
    >>> import evaluate
    >>> metric = evaluate.load("src/nsmc_gen/evaluation/metrics/distinct_n")
    >>> metric.compute(predictions=["a b a", "a b"])
    {'distinct-1': 0.4, 'distinct-2': 0.6666666666666666}
"""

from collections import Counter

import datasets
import evaluate

_CITATION = """@inproceedings{li-etal-2016-diversity,
  title={A Diversity-Promoting Objective Function for Neural Conversation Models},
  author={Li, Jiwei and Galley, Michel and Brockett, Chris and Gao, Jianfeng and Dolan, Bill},
  booktitle={NAACL}, year={2016}}"""

_KWARGS = """
Args:
    predictions (list of str): the generations.
    ns (sequence of int, default (1, 2)): the n-gram orders to report, each >= 1.
    tokenizer (callable str -> list of str, optional): the units; default ``str.split`` (words).
Returns:
    ``distinct-<n>`` for each n: distinct n-grams / all n-grams (0.0 when there are no n-grams).
"""


def ngrams(units, n):
    return [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]


class DistinctN(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__.split("\n\n")[1],
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, ns=(1, 2), tokenizer=None):
        if any(not isinstance(n, int) or n < 1 for n in ns):
            raise ValueError(f"ns must hold integers >= 1, got {list(ns)}")
        tokenizer = tokenizer or str.split
        units = [tokenizer(text) for text in predictions]
        result = {}
        for n in ns:
            counts = Counter(gram for u in units for gram in ngrams(u, n))
            total = sum(counts.values())
            result[f"distinct-{n}"] = len(counts) / total if total else 0.0
        return result
