"""Self-BLEU: how much each generation resembles the others (Zhu et al., 2018, Texygen).

Each generation is scored with sentence BLEU (sacrebleu, exponential smoothing, effective n-gram
order) against all the other generations as references; self-BLEU is the mean, scaled to 0-1.
High self-BLEU means low diversity: 1.0 when all generations are identical.

Example:
    >>> import evaluate
    >>> metric = evaluate.load("src/nsmc_gen/evaluation/metrics/self_bleu")
    >>> metric.compute(predictions=["정말 재밌는 영화", "정말 재밌는 영화"])
    {'self_bleu': 1.0}
"""

import datasets
import evaluate
from sacrebleu.metrics import BLEU

_CITATION = """@inproceedings{zhu2018texygen,
  title={Texygen: A Benchmarking Platform for Text Generation Models},
  author={Zhu, Yaoming and Lu, Sidi and Zheng, Lei and Guo, Jiaxian and Zhang, Weinan
    and Wang, Jun and Yu, Yong},
  booktitle={SIGIR}, year={2018}}"""

_KWARGS = """
Args:
    predictions (list of str): at least two generations.
    max_ngram_order (int, default 4): BLEU's highest n-gram order.
    tokenize (str, default "13a"): sacrebleu's tokenizer ("13a", "char", "none", ...).
Returns:
    ``self_bleu``: mean sentence BLEU of each generation against the others, in [0, 1].
"""


class SelfBleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__.split("\n\n")[1],
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, max_ngram_order=4, tokenize="13a"):
        if len(predictions) < 2:
            raise ValueError(f"self-BLEU needs at least 2 predictions, got {len(predictions)}")
        bleu = BLEU(max_ngram_order=max_ngram_order, tokenize=tokenize, effective_order=True)
        scores = [
            bleu.sentence_score(text, predictions[:i] + predictions[i + 1 :]).score
            for i, text in enumerate(predictions)
        ]
        return {
            "self_bleu": min(1.0, sum(scores) / len(scores) / 100)
        }  # sacrebleu can round to 100.00000000000004
