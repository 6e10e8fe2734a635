"""Discriminator accuracy: how well a classifier tells generated reviews from real ones.

A character 1-3-gram TF-IDF + logistic regression classifier is trained to separate
``predictions`` (generated texts) from ``references`` (real texts, as many) and scored by k-fold
cross-validation; the vectoriser is fitted inside each fold, on its training part only, and
equal texts always fall in the same fold (a review both generated and real, such as "최고",
cannot be learnt from one copy and tested on the other: with plain folds, two identical sets
score ~0.1, not 0.5, since every held-out text's twin of the other kind is in training). 0.5 is
the best a generator can get (the sets cannot be told apart; two samples of real reviews score
about that), 1.0 the worst. Both sets must have the same size, so that chance is exactly 0.5.

Example:
    >>> import evaluate
    >>> metric = evaluate.load("src/nsmc_gen/evaluation/metrics/discriminator")
    >>> fake = [f"a{i} b c" for i in range(20)]
    >>> real = [f"가{i} 나 다" for i in range(20)]
    >>> metric.compute(predictions=fake, references=real)["discriminator_accuracy"]
    1.0
"""

import datasets
import evaluate

_KWARGS = """
Args:
    predictions (list of str): the generated texts.
    references (list of str): real texts, as many as predictions (so that chance is 0.5).
    folds (int, default 5): cross-validation folds, >= 2 and <= the texts of each kind.
    seed (int, default 0): the seed of the folds' shuffle.
    analyzer (str, default "char"): scikit-learn's TfidfVectorizer analyzer ("char", "char_wb",
        "word"); "char" n-grams cross word boundaries, so spacing counts too.
    ngram_range (tuple of int, default (1, 3)): the n-gram orders.
Returns:
    ``discriminator_accuracy``: the mean held-out accuracy over the folds (0.5: indistinguishable),
    and ``discriminator_accuracy_std``: its standard deviation over the folds.
"""


class Discriminator(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__.split("\n\n")[1],
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, folds=5, seed=0, analyzer="char", ngram_range=(1, 3)):
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
            from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
            from sklearn.pipeline import make_pipeline
        except ImportError as error:
            raise ImportError(
                "the discriminator metric needs scikit-learn: pip install scikit-learn"
            ) from error
        if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(predictions):
            raise ValueError(
                f"folds must be an integer in [2, {len(predictions)}] (the texts of each kind), got {folds!r}"
            )
        texts = list(predictions) + list(references)
        labels = [0] * len(predictions) + [1] * len(references)
        classifier = make_pipeline(
            TfidfVectorizer(analyzer=analyzer, ngram_range=tuple(ngram_range), sublinear_tf=True),
            LogisticRegression(max_iter=1000),
        )
        splits = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        first = {}
        groups = [first.setdefault(text, len(first)) for text in texts]  # equal texts, one group
        distinct = min(len(set(predictions)), len(set(references)))
        if distinct < 2:  # equal texts share a fold: the fold holding the one text trains on one kind
            raise ValueError(
                f"the discriminator needs at least 2 distinct texts of each kind, got {distinct}"
            )
        # error_score="raise": a fold that cannot be fitted is an error, not a warning and a NaN
        scores = cross_val_score(
            classifier, texts, labels, groups=groups, cv=splits, scoring="accuracy", error_score="raise"
        )
        return {
            "discriminator_accuracy": float(scores.mean()),
            "discriminator_accuracy_std": float(scores.std()),
        }
