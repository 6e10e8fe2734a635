"""Sentiment judges: who decides whether a generated review is positive or negative.

Two judges, each with ``predict(texts) -> list[int]`` (1 = positive, 0 = negative, as NSMC labels):

- :class:`BayesJudge`: the fine-tuned LM itself, by Bayes' rule with equal priors. It compares
  ``log p(review + EOS | 긍정)`` with ``log p(review + EOS | 부정)``, the prefixes (the words the
  model was trained on, from its generation config) tokenized exactly as in training. No extra
  model, but it grades its own homework: a model that ignores its prefix scores ~0.5 here, and one
  that learned a caricature of a sentiment can agree with itself.
- :class:`TfidfJudge`: an independent classifier (scikit-learn: character 1-3-gram TF-IDF and
  logistic regression) trained on NSMC train in seconds and cached by the content of its data.

A judge is only as good as its own accuracy on held-out test reviews: report it first
(:func:`sentiment_control_accuracy` with the test reviews and their true labels).

Example:
    >>> from nsmc_gen.modeling import NSMC_SAMPLE
    >>> judge = load_judge(NSMC_SAMPLE)
    >>> judge.predict(["최고의 영화", "시간 아깝다 최악"])
    [1, 0]
    >>> sentiment_control_accuracy(["최고의 영화", "시간 아깝다 최악"], ["positive", "positive"], judge)
    0.5
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from nsmc_gen.evaluation.scoring import review_log_probs
from nsmc_gen.files import atomic_write
from nsmc_gen.formatting import SENTIMENTS, Sentiment, normalize_sentiment

logger = logging.getLogger(__name__)

INSTALL_HINT = "the independent judge needs scikit-learn: pip install 'nsmc-gen[eval]' (or scikit-learn)"


class Judge(Protocol):
    """Anything that labels texts 1 (positive) or 0 (negative)."""

    def predict(self, texts: Sequence[str]) -> list[int]: ...


class BayesJudge:
    """The fine-tuned LM as a sentiment classifier, by Bayes' rule with equal priors.

    Example:
        >>> judge = BayesJudge(model, tokenizer)  # doctest: +SKIP
        >>> judge.predict(["재밌어요", "별로"])  # doctest: +SKIP
        [1, 0]
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 32) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def score(self, texts: Sequence[str]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-token log-probabilities of each text + EOS after the negative and the positive prefix."""
        texts = list(texts)
        # both prefixes in one batched pass: the first half under negative, the second under positive
        scores = review_log_probs(
            self.model,
            self.tokenizer,
            texts + texts,
            [SENTIMENTS[0]] * len(texts) + [SENTIMENTS[1]] * len(texts),
            batch_size=self.batch_size,
        )
        return scores[: len(texts)], scores[len(texts) :]

    def log_likelihoods(self, texts: Sequence[str]) -> torch.Tensor:
        """``[len(texts), 2]``: ``log p(text + EOS | prefix)`` for the negative and positive prefix."""
        return log_likelihoods(*self.score(texts))

    def log_odds(self, texts: Sequence[str]) -> torch.Tensor:
        """``log p(positive | text) - log p(negative | text)`` under equal priors."""
        both = self.log_likelihoods(texts)
        return both[:, 1] - both[:, 0]

    def predict(self, texts: Sequence[str]) -> list[int]:
        """1 where the positive prefix explains the text better (ties: positive), else 0."""
        return [int(x >= 0) for x in self.log_odds(texts).tolist()]


def log_likelihoods(negative: Sequence[torch.Tensor], positive: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum per-token scores from :meth:`BayesJudge.score` into ``[n, 2]`` (negative, positive) totals."""
    totals = [[float(n.sum()), float(p.sum())] for n, p in zip(negative, positive, strict=True)]
    return torch.tensor(totals, dtype=torch.float64).view(-1, 2)


class TfidfJudge:
    """An independent sentiment classifier: a fitted scikit-learn pipeline (text -> 0/1)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict(self, texts: Sequence[str]) -> list[int]:
        return [int(y) for y in self.pipeline.predict(list(texts))]

    def predict_proba(self, texts: Sequence[str]) -> list[float]:
        """The probability that each text is positive."""
        return self.pipeline.predict_proba(list(texts))[:, 1].tolist()

    def save(self, path: str | Path) -> None:
        """Write the fitted pipeline with joblib (scikit-learn's format), atomically."""
        import joblib

        atomic_write(path, lambda temporary: joblib.dump(self.pipeline, temporary))

    @classmethod
    def load(cls, path: str | Path) -> TfidfJudge:
        """Read a judge written by :meth:`save` (joblib unpickles: only load files you wrote)."""
        import joblib

        return cls(joblib.load(path))


JUDGE_PARAMS: dict[str, Any] = {
    "analyzer": "char_wb",  # Korean sentiment lives in morphemes; characters n-grams catch them untokenized
    "ngram_range": (1, 3),
    "min_df": 2,
    "sublinear_tf": True,
    "C": 2.0,
    # more features (~260k) than reviews (145k): the dual problem solves 4x faster, same accuracy
    "dual": True,
}


def train_judge(texts: Sequence[str], labels: Sequence[int], **params: Any) -> TfidfJudge:
    """Fit a :class:`TfidfJudge` on texts and their 0/1 labels (overrides: :data:`JUDGE_PARAMS` keys).

    Example:
        >>> judge = train_judge(["좋다", "최고", "별로", "최악"], [1, 1, 0, 0], min_df=1)
        >>> judge.predict(["최고 좋다"])
        [1]
    """
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    unknown = set(params) - set(JUDGE_PARAMS)
    if unknown:
        raise ValueError(f"unknown judge parameters {sorted(unknown)}; valid: {sorted(JUDGE_PARAMS)}")
    if len(texts) != len(labels) or len(set(labels)) != 2:
        raise ValueError("texts and labels must have equal length and labels must contain both 0 and 1")
    p = {**JUDGE_PARAMS, **params}
    vectorizer = TfidfVectorizer(
        analyzer=p["analyzer"],
        ngram_range=p["ngram_range"],
        min_df=p["min_df"],
        sublinear_tf=p["sublinear_tf"],
    )
    classifier = LogisticRegression(C=p["C"], solver="liblinear", dual=p["dual"], max_iter=1000)
    pipeline = make_pipeline(vectorizer, classifier)
    pipeline.fit(list(texts), [int(y) for y in labels])
    return TfidfJudge(pipeline)


def default_cache_dir() -> Path:
    """``$HF_HOME/nsmc-gen/judges``: beside the other Hugging Face caches (tests point HF_HOME elsewhere)."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "nsmc-gen" / "judges"


def load_judge(
    data_dir: str | Path | None = None, cache_dir: str | Path | None = None, **params: Any
) -> TfidfJudge:
    """The independent judge trained on NSMC train from ``data_dir``, cached by the data's content.

    Args:
        data_dir: NSMC files (e.g. the full NSMC rebuild); ``None``: the shipped 30k-row sample
            (a weaker judge: report its accuracy).
        cache_dir: where fitted judges are kept (default :func:`default_cache_dir`).
        params: overrides of :data:`JUDGE_PARAMS`.
    """
    try:
        import sklearn
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error

    from nsmc_gen.data import load_nsmc
    from nsmc_gen.modeling import NSMC_SAMPLE

    train = load_nsmc(NSMC_SAMPLE if data_dir is None else data_dir)["train"]
    key = hashlib.sha256(repr((sorted({**JUDGE_PARAMS, **params}.items()), sklearn.__version__)).encode())
    # [:] reads a column in one slice; iterating a datasets Column reads row by row (10x slower)
    documents, labels = train["document"][:], train["label"][:]
    for document, label in zip(documents, labels, strict=True):
        key.update(f"{label}\t{document}\n".encode())
    path = Path(cache_dir or default_cache_dir()) / f"tfidf-{key.hexdigest()[:16]}.joblib"
    if path.exists():
        return TfidfJudge.load(path)
    logger.info("training the independent judge on %d NSMC train reviews", train.num_rows)
    judge = train_judge(documents, labels, **params)
    judge.save(path)
    return judge


def sentiment_control_accuracy(
    texts: Sequence[str], asked_labels: Sequence[int | Sentiment], judge: Judge
) -> float:
    """The share of generated texts the judge assigns the sentiment they were asked for.

    Args:
        texts: generated reviews (without the sentiment word).
        asked_labels: the sentiment each was generated for: 1/0 or ``"positive"``/``"negative"``.
        judge: any object with ``predict(texts) -> list[int]``.
    """
    return control_report(texts, asked_labels, judge)["sentiment_control_accuracy"]


def control_report(
    texts: Sequence[str], asked_labels: Sequence[int | Sentiment], judge: Judge
) -> dict[str, float | None]:
    """:func:`sentiment_control_accuracy`, and the same among the texts asked for each sentiment.

    Returns:
        ``{"sentiment_control_accuracy": ..., "negative": ..., "positive": ...}``; a sentiment
        nobody asked for gets ``None``. The judge is called once.
    """
    if len(texts) != len(asked_labels):
        raise ValueError(
            f"texts and asked_labels must have equal length: {len(texts)} != {len(asked_labels)}"
        )
    if not texts:
        raise ValueError("texts must not be empty")
    asked = [SENTIMENTS.index(normalize_sentiment(y)) for y in asked_labels]
    hits = [a == j for a, j in zip(asked, judge.predict(list(texts)), strict=True)]
    report: dict[str, float | None] = {"sentiment_control_accuracy": sum(hits) / len(hits)}
    for label, name in enumerate(SENTIMENTS):
        mine = [hit for hit, a in zip(hits, asked, strict=True) if a == label]
        report[name] = sum(mine) / len(mine) if mine else None
    return report
