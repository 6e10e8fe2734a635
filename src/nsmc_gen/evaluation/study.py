"""The decoding study: the course's decoding lesson, measured on your own model.

For each decoding in :data:`STUDY_ROWS` (greedy, beam search, temperature, top-k, top-p, the
repetition penalty, no-repeat-3-gram, sentiment guidance, and the default's treatment of EOS) the
study generates ``num_reviews`` reviews per sentiment through
:func:`nsmc_gen.generation.generate_reviews` with one fixed seed (common random numbers: rows differ
by their decoding only) and measures control, diversity, fluency, length, realness (how well a
classifier tells the reviews from as many real test reviews: the ``discriminator`` metric) and
speed. The report is headed by the model's perplexity on the test reviews and the judges' own
accuracy, and ends with a reference row measured on real test reviews (its realness: against other
real ones). Figures are labelled with the data they were measured on (:func:`data_name`): the
shipped sample and the rebuild are "NSMC-rebuild", never "NSMC test".

Example:
    >>> from nsmc_gen.modeling import load_model_and_tokenizer
    >>> model, tok = load_model_and_tokenizer("runs/finetune")  # doctest: +SKIP
    >>> report = run_study(model, tok, num_reviews=100)  # doctest: +SKIP
    >>> write_report(report, "runs/finetune/study")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from nsmc_gen.decoding import DECODING_DEFAULTS
from nsmc_gen.evaluation import load_metric
from nsmc_gen.evaluation.judges import BayesJudge, Judge, control_report, load_judge, log_likelihoods
from nsmc_gen.evaluation.scoring import mean_token_loss
from nsmc_gen.formatting import SENTIMENTS

# Every row names all the knobs it touches; the others stay neutral (no penalty, no guidance), so
# each row isolates one idea. The penalty and guidance rows vary the project's default decoding
# (top-p sampling at DECODING_DEFAULTS' top_p); "default" is whatever generate_reviews does when
# asked nothing. No row has a length floor but eos-floor-8 (the floor the length prior replaced).
# The eos rows switch off, one at a time, what the default does about EOS: its untruncated
# probability under top-p, the model's calibrated length prior (if the model has one).
_NEUTRAL = {"repetition_penalty": 1.0, "guidance_scale": 1.0}
_TOP_P = {"strategy": "top-p", "top_p": DECODING_DEFAULTS["top_p"]}
STUDY_ROWS: dict[str, dict[str, Any]] = {
    "greedy": {"strategy": "greedy", **_NEUTRAL},
    **{f"beam-{b}": {"strategy": "beam", "num_beams": b, **_NEUTRAL} for b in (2, 3, 5)},
    **{f"temperature-{t}": {"strategy": "sampling", "temperature": t, **_NEUTRAL} for t in (0.5, 1.0, 1.5)},
    **{f"top-k-{k}": {"strategy": "top-k", "top_k": k, **_NEUTRAL} for k in (5, 50)},
    **{
        f"top-p-{p}": {"strategy": "top-p", "top_p": p, **_NEUTRAL}
        for p in sorted({0.5, 0.92, DECODING_DEFAULTS["top_p"]})
    },
    **{f"penalty-{r}": {**_TOP_P, **_NEUTRAL, "repetition_penalty": r} for r in (1.0, 1.2, 1.5)},
    "penalty-strict": {**_TOP_P, **_NEUTRAL, "repetition_penalty": math.inf},
    "no-repeat-3": {**_TOP_P, **_NEUTRAL, "no_repeat_ngram_size": 3},
    **{
        f"guidance-{g}": {**_TOP_P, **_NEUTRAL, "repetition_penalty": 1.2, "guidance_scale": g}
        for g in (1, 1.5, 2, 3)
    },
    "eos-keep-off": {"keep_eos_probability": False},
    "eos-prior-off": {"length_prior": False},
    "eos-both-off": {"keep_eos_probability": False, "length_prior": False},
    "eos-floor-8": {"min_new_tokens": 8},
    "default": {},
}


def resolved_decoding(decoding: dict[str, Any]) -> dict[str, Any]:
    """Every setting ``generate_reviews`` would use for a row asked with a sentiment."""
    from nsmc_gen.generation import decoding_settings

    return decoding_settings(sentiment=SENTIMENTS[1], **decoding)


def _merge_equal_rows(
    rows: dict[str, dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Rows that decode the same way, once: the first keeps its place, the others become its aliases.

    The sweeps overlap (the penalty sweep starts at top-p 0.8 without a penalty, which is the
    top-p-0.8 row; guidance 1 is penalty-1.2; guidance 2 is what generate_reviews does by default),
    and equal settings with one seed give the same reviews: a table listing both only repeats a row.
    """
    kept: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    first: dict[str, str] = {}
    for name, decoding in rows.items():
        key = repr(sorted(resolved_decoding(decoding).items()))
        if key in first:
            aliases[name] = first[key]
        else:
            first[key] = name
            kept[name] = decoding
    return kept, aliases


# STUDY_ROWS names every row of the lesson (the notebook and the demo show them all); the study
# measures each decoding once: DISTINCT_ROWS in table order, ROW_ALIASES a merged row's other names
# -> its name (``--rows penalty-1.0`` still works; the table's top-p-0.8 row says "also named penalty-1.0").
DISTINCT_ROWS, ROW_ALIASES = _merge_equal_rows(STUDY_ROWS)


def row_names(name: str) -> list[str]:
    """A row's name and its aliases.

    Example:
        >>> row_names("top-p-0.8")
        ['top-p-0.8', 'penalty-1.0']
    """
    return [name, *(alias for alias, kept in ROW_ALIASES.items() if kept == name)]


DETERMINISTIC_STRATEGIES = ("greedy", "beam")  # one review per prompt: asking N times gives N copies
REPETITION_N = 2  # the repetition column: a word 2-gram occurring twice in one review
SHORT = 5  # the "short output" column: fewer characters than this
EXAMPLES = 3  # distinct reviews per sentiment kept in the report
INDEPENDENT_JUDGE = "TF-IDF char 1-3-grams + logistic regression"
DISCRIMINATOR_FOLDS = 5


def family(name: str) -> str:
    """The plot colour group of a row: its name up to the last dash (``top-p-0.5`` -> ``top-p``);
    ``eos`` for the eos rows."""
    if name.startswith("eos-"):
        return "eos"
    head, _, tail = name.rpartition("-")
    return head if head and tail[:1].isdigit() or tail == "strict" else name


def text_metrics(
    texts: Sequence[str],
    labels: Sequence[int],
    known_words: set[str] | frozenset[str],
    metrics: dict[str, Any],
) -> dict[str, float]:
    """Diversity, repetition, length and vocabulary columns of one set of reviews.

    Self-BLEU is the mean over the two sentiments of the self-BLEU within each: sameness inside
    a sentiment is the collapse to watch, and it costs half of one quadratic pass over all.

    Args:
        texts: the reviews, at least 2 per sentiment.
        labels: the sentiment each was asked for (0/1).
        known_words: the whitespace words of NSMC train reviews.
        metrics: loaded metric modules ``distinct_n``, ``repetition_rate`` and ``self_bleu``.
    """
    texts = list(texts)
    groups = [[t for t, y in zip(texts, labels, strict=True) if y == label] for label in (0, 1)]
    self_bleu = [metrics["self_bleu"].compute(predictions=group)["self_bleu"] for group in groups]
    return {
        **{
            k.replace("-", "_"): v
            for k, v in metrics["distinct_n"].compute(predictions=texts, ns=(1, 2)).items()
        },
        **metrics["repetition_rate"].compute(predictions=texts, n=REPETITION_N),
        "self_bleu": sum(self_bleu) / len(self_bleu),
        "mean_length": sum(map(len, texts)) / len(texts),
        "short_share": sum(len(t) < SHORT for t in texts) / len(texts),
        "known_words": known_share(texts, known_words),
    }


def known_share(texts: Sequence[str], known_words: set[str] | frozenset[str]) -> float:
    """The share of the texts' whitespace words found in ``known_words`` (0.0 without words).

    Example:
        >>> known_share(["재밌다 굿", "굿굿"], frozenset({"재밌다", "굿"}))
        0.6666666666666666
    """
    words = [w for text in texts for w in text.split()]
    return sum(w in known_words for w in words) / len(words) if words else 0.0


def generate_row(
    model: Any, tokenizer: Any, decoding: dict[str, Any], num_reviews: int, seed: int
) -> tuple[list[str], list[int], float, int]:
    """``num_reviews`` reviews per sentiment for one row: (texts, asked labels, seconds, new tokens).

    Deterministic strategies are asked once per sentiment and their review repeated: that is
    what ``num_reviews`` requests return, without paying for the copies (so their tokens/s is
    that of one review at a time, where sampling rows generate ``num_reviews`` in one batch).
    """
    from nsmc_gen.generation import generate_reviews

    deterministic = decoding.get("strategy") in DETERMINISTIC_STRATEGIES
    count = 1 if deterministic else num_reviews
    # untimed warm-up: lazy initialisation and first-shape costs must not count against one row
    generate_reviews(
        model,
        tokenizer,
        sentiment=SENTIMENTS[0],
        num_return_sequences=count,
        seed=seed,
        **{**decoding, "max_new_tokens": 2, "min_new_tokens": 0},
    )
    texts: list[str] = []
    labels: list[int] = []
    seconds, tokens = 0.0, 0
    for label, sentiment in enumerate(SENTIMENTS):
        start = time.perf_counter()
        reviews = generate_reviews(
            model,
            tokenizer,
            sentiment=sentiment,
            num_return_sequences=count,
            seed=seed,
            **decoding,
        )
        seconds += time.perf_counter() - start
        # new tokens, counted back from the texts: each review's tokens + its EOS
        tokens += sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) + 1 for r in reviews)
        if deterministic:
            reviews = reviews * num_reviews
        texts += reviews
        labels += [label] * num_reviews
    return texts, labels, seconds, tokens


def human_sample(
    texts: Sequence[str], labels: Sequence[int], per_label: int, skip: int = 0
) -> tuple[list[str], list[int]]:
    """``per_label`` texts of each label (negative first), after the first ``skip`` of each."""
    sample: list[str] = []
    sample_labels: list[int] = []
    for label in (0, 1):
        chosen = [t for t, y in zip(texts, labels, strict=True) if y == label][skip : skip + per_label]
        sample += chosen
        sample_labels += [label] * len(chosen)
    return sample, sample_labels


def known_vocabulary(train_texts: Sequence[str]) -> frozenset[str]:
    """The whitespace words of the training reviews."""
    return frozenset(w for text in train_texts for w in text.split())


def test_header(
    model: Any,
    tokenizer: Any,
    test_texts: Sequence[str],
    test_labels: Sequence[int],
    judge: Judge,
    bayes: BayesJudge,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Perplexity and the Bayes judge's accuracy from one scoring of the test reviews under both
    prefixes; the independent judge's accuracy on the same reviews."""
    negative, positive = bayes.score(test_texts)
    true_prefix = [p if y else n for n, p, y in zip(negative, positive, test_labels, strict=True)]
    loss, count = mean_token_loss(true_prefix)
    totals = log_likelihoods(negative, positive)
    bayes_hits = [int(pos >= neg) == y for (neg, pos), y in zip(totals.tolist(), test_labels, strict=True)]
    perplexity = {
        "perplexity": math.exp(loss),
        "loss": loss,
        "num_tokens": count,
        "test_reviews": len(test_texts),
    }
    judges = {
        "independent": {
            "accuracy": control_report(test_texts, test_labels, judge)["sentiment_control_accuracy"]
        },
        "bayes": {"accuracy": sum(bayes_hits) / len(bayes_hits)},
    }
    for entry in judges.values():
        entry["test_reviews"] = len(test_texts)
    return perplexity, judges


def measure(
    texts: Sequence[str],
    labels: Sequence[int],
    judge: Judge,
    bayes: BayesJudge,
    known_words: frozenset[str],
    metrics: dict[str, Any],
    real_texts: Sequence[str] = (),
) -> dict[str, float | None]:
    """All the columns of one row but speed: control by both judges, :func:`text_metrics`, and the
    discriminator's accuracy against ``real_texts`` (None unless there are as many, >= 10)."""
    return {
        "control": control_report(texts, labels, judge)["sentiment_control_accuracy"],
        "control_bayes": control_report(texts, labels, bayes)["sentiment_control_accuracy"],
        **text_metrics(texts, labels, known_words, metrics),
        "discriminator": realness(texts, real_texts, metrics),
    }


def realness(texts: Sequence[str], real_texts: Sequence[str], metrics: dict[str, Any]) -> float | None:
    """The ``discriminator`` metric's accuracy (0.5: indistinguishable from the real texts).

    None where it cannot be measured: unequal or too few texts, or a classifier that cannot be
    fitted (a row whose reviews are all one text, as beam search gives when both sentiments get
    the same review: some folds then train on real reviews only). :func:`realness_note` says why.
    """
    if realness_note(texts, real_texts) is not None:
        return None
    try:
        result = metrics["discriminator"].compute(
            predictions=list(texts), references=list(real_texts), folds=DISCRIMINATOR_FOLDS
        )
    except ValueError:  # a fold without generated reviews to train on: the caller's note says so
        return None
    return result["discriminator_accuracy"]


def realness_note(texts: Sequence[str], real_texts: Sequence[str]) -> str | None:
    """Why :func:`realness` cannot be measured on these texts, in one line (None: it can).

    Example:
        >>> realness_note(["같은 리뷰"] * 20, [f"리뷰 {i}" for i in range(20)])
        'real vs generated not measured: one distinct review (its fold trains on real ones only)'
    """
    return _count_note(len(texts), len(real_texts)) or _distinct_note(texts)


def _count_note(count: int, real: int) -> str | None:
    if count != real or count < 2 * DISCRIMINATOR_FOLDS:
        return (
            f"real vs generated not measured: {count} reviews against {real} real ones "
            f"(it needs as many, and at least {2 * DISCRIMINATOR_FOLDS})"
        )
    return None


def _distinct_note(texts: Sequence[str]) -> str | None:
    # Equal texts share a fold (the discriminator groups them): with one distinct review, the fold
    # that holds it trains on real reviews alone, and the classifier cannot be fitted.
    if len(set(texts)) < 2:
        return "real vs generated not measured: one distinct review (its fold trains on real ones only)"
    return None


def data_name(data_dir: str | Path) -> str:
    """How the report names the reviews in ``data_dir``: never "NSMC" for the rebuild.

    The shipped sample and ``../shared/nsmc-rebuild`` are drawn from a rebuild of NSMC, not the
    official files; another folder is named by its name (the study cannot tell official files).

    Example:
        >>> from nsmc_gen.modeling import NSMC_SAMPLE
        >>> data_name(NSMC_SAMPLE), data_name("../shared/nsmc-rebuild"), data_name("/data/my-reviews")
        ('NSMC-rebuild sample', 'NSMC-rebuild', 'my-reviews')
    """
    from nsmc_gen.modeling import NSMC_SAMPLE

    path = Path(data_dir)
    if path.resolve() == NSMC_SAMPLE.resolve():
        return "NSMC-rebuild sample"
    if "rebuild" in path.name.lower():
        return "NSMC-rebuild"
    return path.resolve().name


def run_study(
    model: Any,
    tokenizer: Any,
    *,
    num_reviews: int = 100,
    rows: Sequence[str] | None = None,
    seed: int = 0,
    nsmc_dir: str | Path | None = None,
    nsmc: Any | None = None,
    test_reviews: int = 2000,
    judge: Judge | None = None,
    max_new_tokens: int | None = None,
    model_name: str = "model",
    progress: bool = True,
) -> dict[str, Any]:
    """Run the decoding study on a fine-tuned model and return the report (see :mod:`.report`).

    Args:
        model, tokenizer: a model trained on the sentiment format (``긍정 <review>``).
        num_reviews: reviews per sentiment and row (>= 2: self-BLEU compares reviews).
        rows: names from :data:`STUDY_ROWS` (default: all, in table order); rows that decode the
            same way are measured once, under the first name (:data:`ROW_ALIASES`).
        seed: the generation seed of every row, and of the test sample.
        nsmc_dir: NSMC files (the full rebuild gives the better judge); ``None``: the shipped sample.
        nsmc: the splits already loaded (a ``DatasetDict`` with ``train`` and ``test``) instead of
            ``load_nsmc(nsmc_dir)``.
        test_reviews: test reviews (seeded sample) for perplexity and the judges' accuracy
            (0: all of them).
        judge: the independent judge (default: :func:`load_judge` on ``nsmc_dir``, cached).
        max_new_tokens: a cap on every row's review length in tokens (default: generate_reviews').
        model_name: how the report names the model.
        progress: show a tqdm progress bar.
    """
    from nsmc_gen.data import load_nsmc
    from nsmc_gen.modeling import NSMC_SAMPLE

    asked = list(STUDY_ROWS) if rows is None else list(rows)
    unknown = [name for name in asked if name not in STUDY_ROWS]
    if unknown:
        raise ValueError(f"unknown study rows {unknown}; valid rows: {', '.join(STUDY_ROWS)}")
    names = list(dict.fromkeys(ROW_ALIASES.get(name, name) for name in asked))  # a merged row once
    if num_reviews < 2:
        raise ValueError(f"num_reviews must be >= 2 (self-BLEU compares reviews), got {num_reviews}")
    if test_reviews < 0:
        raise ValueError(f"test_reviews must be >= 0 (0: the whole test split), got {test_reviews}")
    data_dir = NSMC_SAMPLE if nsmc_dir is None else Path(nsmc_dir)
    nsmc = nsmc if nsmc is not None else load_nsmc(data_dir)
    judge = judge if judge is not None else load_judge(data_dir)
    bayes = BayesJudge(model, tokenizer)
    test = nsmc["test"].shuffle(seed=seed)
    test = test.select(range(min(test_reviews, test.num_rows))) if test_reviews else test
    metrics = {
        name: load_metric(name) for name in ("distinct_n", "repetition_rate", "self_bleu", "discriminator")
    }
    known = known_vocabulary(nsmc["train"]["document"][:])  # [:]: one slice, not row-by-row reads
    test_texts, test_labels = test["document"][:], test["label"][:]
    # real reviews, num_reviews per sentiment: the reference row, and what realness compares with
    human_texts, human_labels = human_sample(test_texts, test_labels, num_reviews)
    other_human, _ = human_sample(test_texts, test_labels, num_reviews, skip=num_reviews)

    bar = tqdm(total=len(names) + 1, desc="decoding study", disable=not progress)
    bar.set_postfix_str("perplexity and judges on the test reviews")
    perplexity, judges = test_header(model, tokenizer, test_texts, test_labels, judge, bayes)
    judges["independent"].update(name=INDEPENDENT_JUDGE, train_reviews=nsmc["train"].num_rows)
    bar.update()
    report_rows = []
    notes = [note] if (note := _count_note(2 * num_reviews, len(human_texts))) else []
    for name in names:
        bar.set_postfix_str(name)
        decoding = {
            **STUDY_ROWS[name],
            **({} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}),
        }
        texts, labels, seconds, tokens = generate_row(model, tokenizer, decoding, num_reviews, seed)
        row = {
            "name": name,
            "aliases": row_names(name)[1:],
            "family": family(name),
            "decoding": {k: "inf" if v == math.inf else v for k, v in decoding.items()},  # strict JSON
            "deterministic": decoding.get("strategy") in DETERMINISTIC_STRATEGIES,
            **measure(texts, labels, judge, bayes, known, metrics, human_texts),
            "tokens_per_s": tokens / seconds if seconds > 0 else None,
        }
        row["examples"] = {
            sentiment: list(dict.fromkeys(t for t, y in zip(texts, labels, strict=True) if y == label))[
                :EXAMPLES
            ]
            for label, sentiment in enumerate(SENTIMENTS)
        }
        if row["discriminator"] is None and not _count_note(len(texts), len(human_texts)):
            note = _distinct_note(texts) or "real vs generated not measured: a fold could not be fitted"
            notes.append(f"{name}: {note}")
            bar.write(f"decoding study: {name}: {note}")  # one line, beside the bar
        report_rows.append(row)
        bar.update()
    bar.close()
    # the same columns on real reviews (realness: against the next num_reviews of each sentiment)
    label = data_name(data_dir)
    reference = {
        "name": f"{label} test reviews",
        **measure(human_texts, human_labels, judge, bayes, known, metrics, other_human),
    }
    return {
        "model": model_name,
        "num_reviews": num_reviews,
        "seed": seed,
        "data": str(data_dir),
        "data_name": label,
        "perplexity": perplexity,
        "judges": judges,
        "rows": report_rows,
        "reference": reference,
        "notes": notes,
    }
