"""Metric modules (hand-computed cases), the two judges, the report writer and the decoding study."""

from __future__ import annotations

import json
import math

import datasets
import pytest
import torch

from nsmc_gen.decoding import DECODING_DEFAULTS
from nsmc_gen.evaluation import (
    METRIC_NAMES,
    BayesJudge,
    TfidfJudge,
    control_report,
    load_metric,
    metric_path,
    review_log_probs,
    sentiment_control_accuracy,
    train_judge,
)
from nsmc_gen.formatting import ReviewCollator, ReviewFormat, tokenize_reviews

REVIEWS = ["재밌어요", "시간 아까운 최악의 영화", "배우들 연기가 정말 좋았다 ㅋㅋ"]


@pytest.fixture(scope="module")
def metrics():
    return {name: load_metric(name) for name in METRIC_NAMES}


class KeywordJudge:
    """A judge whose answers a test can compute by hand: positive iff the text contains '좋'."""

    def predict(self, texts):
        return [int("좋" in t) for t in texts]


# --- text metrics: hand-computed cases ---------------------------------------------------------


def test_metrics_are_shipped_module_folders():
    for name in METRIC_NAMES:
        assert metric_path(name).endswith(f"metrics/{name}")
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        metric_path("bleu")


def test_distinct_n_hand_computed(metrics):
    # unigrams a b a a b: 2 distinct of 5; bigrams (a b) (b a) (a b): 2 distinct of 3
    assert metrics["distinct_n"].compute(predictions=["a b a", "a b"]) == {
        "distinct-1": 0.4,
        "distinct-2": 2 / 3,
    }
    # characters as units: 가 나 가 -> 2/3; no 3-grams in "가나가"? one: (가 나 가) -> 1/1
    chars = metrics["distinct_n"].compute(predictions=["가나가"], ns=(1, 3), tokenizer=list)
    assert chars == {"distinct-1": 2 / 3, "distinct-3": 1.0}
    assert metrics["distinct_n"].compute(predictions=["a"], ns=(2,)) == {"distinct-2": 0.0}
    with pytest.raises(ValueError, match="ns must hold integers >= 1"):
        metrics["distinct_n"].compute(predictions=["a"], ns=(0,))


def test_repetition_rate_hand_computed(metrics):
    texts = ["a b a b", "a b c", "a a", "정말 정말 정말"]
    rate = metrics["repetition_rate"]
    assert rate.compute(predictions=texts, n=1) == {"repetition_rate": 3 / 4}  # all but "a b c"
    assert rate.compute(predictions=texts, n=2) == {
        "repetition_rate": 2 / 4
    }  # (a b) twice; (정말 정말) twice
    assert rate.compute(predictions=texts, n=3) == {"repetition_rate": 0.0}
    assert rate.compute(predictions=["ㅋㅋㅋ"], n=2, tokenizer=list) == {"repetition_rate": 1.0}
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        rate.compute(predictions=texts, n=0)


def test_self_bleu_hand_computed(metrics):
    bleu = metrics["self_bleu"]
    # two copies match each other exactly (BLEU 1); the third shares no word with them (BLEU 0)
    assert bleu.compute(predictions=["a b c d", "a b c d", "x y z w"])["self_bleu"] == pytest.approx(2 / 3)
    # "a b" vs "a c": unigram precision 1/2, bigram 0/1 smoothed to 1/2 -> sqrt(1/2 * 1/2)
    assert bleu.compute(predictions=["a b", "a c"])["self_bleu"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 2 predictions"):
        bleu.compute(predictions=["a b"])


def test_sentiment_control_hand_computed(metrics):
    texts = ["좋다", "별로", "좋은데", "최악"]
    result = metrics["sentiment_control"].compute(
        predictions=texts, references=[1, 1, 0, 0], judge=KeywordJudge()
    )
    # asked positive: 좋다 yes, 별로 no; asked negative: 좋은데 no, 최악 yes
    assert result == {"sentiment_control_accuracy": 0.5, "negative": 0.5, "positive": 0.5}
    assert sentiment_control_accuracy(["좋다", "좋아"], ["positive", "positive"], KeywordJudge()) == 1.0
    assert control_report(["별로"], ["positive"], KeywordJudge()) == {
        "sentiment_control_accuracy": 0.0,
        "negative": None,
        "positive": 0.0,
    }
    with pytest.raises(ValueError, match="equal length"):
        sentiment_control_accuracy(["좋다"], [1, 0], KeywordJudge())


def test_discriminator_known_answers(metrics):
    disc = metrics["discriminator"]
    real = [f"정말 재밌는 영화 {i}번째 관람" for i in range(30)]
    fake = [f"movie number {i} was fine" for i in range(30)]
    assert disc.compute(predictions=fake, references=real)["discriminator_accuracy"] == 1.0
    # identical sets: nothing to tell apart (equal texts share a fold, so no copy is learnt from its twin)
    same = disc.compute(predictions=real, references=real)
    assert same["discriminator_accuracy"] == pytest.approx(0.5, abs=0.05)
    assert set(same) == {"discriminator_accuracy", "discriminator_accuracy_std"}


def test_discriminator_on_two_samples_of_real_reviews_is_near_chance(metrics, sample_rows):
    texts = [r["document"] for r in sample_rows]
    result = metrics["discriminator"].compute(predictions=texts[:200], references=texts[200:400], seed=1)
    assert 0.4 <= result["discriminator_accuracy"] <= 0.6, result
    # the same real reviews against a caricature of generated ones (every review ends the same way)
    fake = [t + " 입니다." for t in texts[400:600]]
    caricature = metrics["discriminator"].compute(predictions=fake, references=texts[:200])
    assert caricature["discriminator_accuracy"] > 0.9


def test_study_realness_column_compares_equal_numbers_of_texts(metrics):
    from nsmc_gen.evaluation.study import realness

    real = [f"정말 재밌는 영화 {i}번째 관람" for i in range(10)]
    fake = [f"movie number {i} was fine" for i in range(10)]
    assert realness(fake, real, metrics) == 1.0
    assert realness(fake, real[:9], metrics) is None  # chance would not be 0.5
    assert realness(fake[:4], real[:4], metrics) is None  # too few for 5 folds


def test_study_says_in_one_line_why_a_row_of_one_review_has_no_realness(metrics):
    """Beam search can give one review for both sentiments: the folds then train on real reviews
    alone. scikit-learn's answer was a FitFailedWarning traceback per fold and a NaN."""
    import warnings

    from nsmc_gen.evaluation.study import realness, realness_note

    real = [f"정말 재밌는 영화 {i}번째 관람" for i in range(20)]
    one_review = ["그냥 그래요"] * 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FitFailedWarning, no other warning
        assert realness(one_review, real, metrics) is None
    note = realness_note(one_review, real)
    assert note == ("real vs generated not measured: one distinct review (its fold trains on real ones only)")
    two_reviews = ["그냥 그래요", "최고"] * 10  # greedy's two reviews (one per sentiment) can be measured
    assert realness_note(two_reviews, real) is None and realness(two_reviews, real, metrics) > 0.5
    assert realness_note(real, list(reversed(real))) is None
    with pytest.raises(ValueError, match="at least 2 distinct texts of each kind"):
        metrics["discriminator"].compute(predictions=one_review, references=real)


def test_discriminator_rejects_bad_input(metrics):
    with pytest.raises(ValueError, match="folds must be an integer in \\[2, 3\\]"):
        metrics["discriminator"].compute(predictions=["a", "b", "c"], references=["d", "e", "f"], folds=4)
    with pytest.raises(ValueError, match="Mismatch in the number of predictions"):
        metrics["discriminator"].compute(predictions=["a", "b"], references=["c"])


# --- scoring, perplexity and the Bayes judge on a tiny model ------------------------------------


def explicit_review_log_probs(model, tokenizer, review, sentiment):
    """The reference: one unpadded sequence, log_softmax over the vocabulary, review positions only."""
    fmt = ReviewFormat()
    text = review if sentiment is None else fmt.example(review, sentiment)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    start = 1 if sentiment is None else len(fmt.prompt_ids(tokenizer, sentiment))
    with torch.no_grad():
        log_probs = model(torch.tensor([ids])).logits[0].log_softmax(-1)
    return torch.stack([log_probs[t - 1, ids[t]] for t in range(start, len(ids))])


@pytest.mark.parametrize("sentiments", [None, ["positive", 0, "negative"]])
def test_review_log_probs_equal_explicit_computation(tiny_model, tokenizer, sentiments):
    # batch_size 2 mixes lengths: padding must not change any score
    scores = review_log_probs(tiny_model, tokenizer, REVIEWS, sentiments, batch_size=2)
    for i, review in enumerate(REVIEWS):
        expected = explicit_review_log_probs(
            tiny_model, tokenizer, review, None if sentiments is None else sentiments[i]
        )
        n_review = len(tokenizer(review)["input_ids"])
        assert len(scores[i]) == (n_review if sentiments is None else n_review + 1)  # EOS counted, prefix not
        torch.testing.assert_close(scores[i], expected, rtol=0, atol=1e-5)


def test_review_perplexity_metric(metrics, tiny_model, tokenizer):
    result = metrics["review_perplexity"].compute(
        predictions=REVIEWS, model=tiny_model, tokenizer=tokenizer, sentiments=[1, 0, 1], batch_size=2
    )
    explicit = [
        explicit_review_log_probs(tiny_model, tokenizer, r, s)
        for r, s in zip(REVIEWS, [1, 0, 1], strict=True)
    ]
    total = torch.cat(explicit)
    assert result["num_tokens"] == len(total)
    assert result["loss"] == pytest.approx(-float(total.mean()), abs=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(-float(total.mean())), rel=1e-5)
    assert result["perplexities"] == pytest.approx([math.exp(-float(e.mean())) for e in explicit], rel=1e-5)
    # a random 6,000-token model is about as perplexed as a uniform guess
    assert 1000 < result["perplexity"] < 20000


def test_bayes_judge_equals_the_two_explicit_log_likelihoods(tiny_model, tokenizer):
    judge = BayesJudge(tiny_model, tokenizer, batch_size=4)
    both = judge.log_likelihoods(REVIEWS)
    for i, review in enumerate(REVIEWS):
        for label, sentiment in enumerate(("negative", "positive")):
            expected = float(explicit_review_log_probs(tiny_model, tokenizer, review, sentiment).sum())
            assert float(both[i, label]) == pytest.approx(expected, abs=1e-4)
    assert judge.predict(REVIEWS) == [int(pos >= neg) for neg, pos in both.tolist()]


def test_bayes_judge_reads_the_prefix(tokenizer):
    """A model that only ever saw '긍정 좋다' / '부정 별로' must judge those reviews by their prefix."""
    from conftest import build_tiny_model

    model = build_tiny_model(tokenizer, seed=1)
    rows = tokenize_reviews({"document": ["좋다", "별로"], "label": [1, 0]}, tokenizer)["input_ids"]
    batch = ReviewCollator(tokenizer.pad_token_id)([{"input_ids": ids} for ids in rows])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    assert BayesJudge(model, tokenizer).predict(["좋다", "별로"]) == [1, 0]


# --- the independent judge ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_rows():
    from nsmc_gen.data import read_nsmc_file
    from nsmc_gen.modeling import NSMC_SAMPLE

    rows = []
    for row in read_nsmc_file(NSMC_SAMPLE / "ratings_train.txt.gz"):
        rows.append(row)
        if len(rows) == 4000:
            return rows


def test_independent_judge_beats_chance_on_held_out_rows(sample_rows, tmp_path):
    train, held_out = sample_rows[:3000], sample_rows[3000:]
    judge = train_judge([r["document"] for r in train], [r["label"] for r in train])
    texts, labels = [r["document"] for r in held_out], [r["label"] for r in held_out]
    accuracy = sentiment_control_accuracy(texts, labels, judge)
    majority = max(sum(labels), len(labels) - sum(labels)) / len(labels)
    assert accuracy > majority + 0.1, (accuracy, majority)
    judge.save(tmp_path / "judge.joblib")
    assert TfidfJudge.load(tmp_path / "judge.joblib").predict(texts) == judge.predict(texts)
    assert [p > 0.5 for p in judge.predict_proba(texts[:20])] == [bool(y) for y in judge.predict(texts[:20])]


def test_train_judge_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown judge parameters"):
        train_judge(["a", "b"], [0, 1], ngram=(1, 2))
    with pytest.raises(ValueError, match="both 0 and 1"):
        train_judge(["a", "b"], [1, 1])


# --- the report writer and the study's row table -------------------------------------------------


def fake_report(rows=("greedy", "top-p-0.92", "guidance-2")):
    from nsmc_gen.evaluation.study import STUDY_ROWS, family, row_names

    def row(i, name):
        return {
            "name": name,
            "aliases": row_names(name)[1:],
            "family": family(name),
            "decoding": STUDY_ROWS[name],
            "deterministic": name == "greedy",
            "control": 0.5 + 0.1 * i,
            "control_bayes": 0.6,
            "distinct_1": 0.3,
            "distinct_2": 0.4 + 0.1 * i,
            "repetition_rate": 0.1,
            "self_bleu": 0.2,
            "mean_length": 20.0 + i,
            "short_share": 0.05,
            "known_words": 0.7,
            "discriminator": 0.9 - 0.1 * i if i else None,
            "tokens_per_s": 123.4 if i else None,
            "examples": {"negative": ["별로"], "positive": ["최고의 영화"]},
        }

    return {
        "model": "tiny",
        "num_reviews": 2,
        "seed": 0,
        "data": "src/nsmc_gen/assets/nsmc-sample",
        "data_name": "NSMC-rebuild sample",
        "perplexity": {"perplexity": 42.0, "loss": math.log(42.0), "num_tokens": 100, "test_reviews": 10},
        "judges": {
            "independent": {"accuracy": 0.8, "test_reviews": 10, "name": "tfidf", "train_reviews": 1000},
            "bayes": {"accuracy": 0.7, "test_reviews": 10},
        },
        "rows": [row(i, name) for i, name in enumerate(rows)],
        "reference": {**row(0, "greedy"), "name": "NSMC-rebuild sample test reviews"},
        "notes": [
            "beam-3: real vs generated not measured: one distinct review (its fold trains on real ones only)"
        ],
    }


def test_write_report_writes_table_json_and_png(tmp_path):
    from nsmc_gen.evaluation.report import COLUMNS, write_report

    report = fake_report()
    paths = write_report(report, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "decoding_study.json",
        "decoding_study.md",
        "decoding_study.png",
    ]  # no temporary files left behind
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == report
    table = [
        line for line in paths["markdown"].read_text(encoding="utf-8").splitlines() if line.startswith("| ")
    ]
    assert len(table) == 1 + len(report["rows"]) + 1  # header, rows, the human reference
    assert all(line.count("|") == len(COLUMNS) + 3 for line in table)
    assert table[1].startswith("| greedy | strategy=greedy | 0.50 |")  # neutral knobs not repeated
    assert table[2].endswith(" 0.80 | 123 |") and table[1].endswith(" - | - |")  # missing values: "-"
    assert "| real vs generated | tokens/s |" in table[0]
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "**42.00**" in markdown
    assert "- beam-3: real vs generated not measured" in markdown  # the study's notes, one line each
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_labels_its_figures_with_their_data_never_as_nsmc_test(tmp_path):
    """The shipped sample and the rebuild are not the official NSMC: no figure may read "NSMC test"."""
    from nsmc_gen.evaluation.report import render_markdown

    markdown = render_markdown(fake_report())
    assert "NSMC test" not in markdown and "NSMC train" not in markdown
    assert "Perplexity on 10 NSMC-rebuild sample test reviews" in markdown
    assert "trained on 1,000 NSMC-rebuild sample train reviews" in markdown
    assert "| *NSMC-rebuild sample test reviews* | human reviews |" in markdown


def test_report_names_a_merged_row_once_with_its_aliases():
    from nsmc_gen.evaluation.report import find_row, render_table

    report = fake_report()  # its guidance-2 row is the default decoding, as in the study
    table = render_table(report)
    assert (
        "| guidance-2 | strategy=top-p, top_p=0.8, repetition_penalty=1.2, guidance_scale=2; "
        "also named default |" in table
    )
    assert table.count("guidance-2") == 1
    assert find_row(report, "default")["name"] == "guidance-2" and find_row(report, "beam-9") is None


def test_study_rows_are_distinct_decodings():
    """Two rows with the same settings and one seed give the same reviews: each decoding is one row
    (penalty-1.0 was top-p-0.8, guidance-1 was penalty-1.2, default is guidance-2)."""
    from nsmc_gen.evaluation.study import DISTINCT_ROWS, ROW_ALIASES, STUDY_ROWS, resolved_decoding, row_names

    resolved = [repr(sorted(resolved_decoding(d).items())) for d in DISTINCT_ROWS.values()]
    assert len(set(resolved)) == len(resolved)
    assert set(STUDY_ROWS) == set(DISTINCT_ROWS) | set(ROW_ALIASES)  # the lesson's rows all remain
    assert ROW_ALIASES == {"penalty-1.0": "top-p-0.8", "guidance-1": "penalty-1.2", "default": "guidance-2"}
    for alias, name in ROW_ALIASES.items():
        assert alias in row_names(name)


def test_study_rows_cover_the_lesson():
    from nsmc_gen.evaluation.study import STUDY_ROWS, family

    assert {
        "greedy",
        "beam-2",
        "beam-3",
        "beam-5",
        "temperature-0.5",
        "temperature-1.0",
        "temperature-1.5",
        "top-k-5",
        "top-k-50",
        "top-p-0.5",
        "top-p-0.92",
        "penalty-1.0",
        "penalty-1.2",
        "penalty-1.5",
        "penalty-strict",
        "no-repeat-3",
        "guidance-1",
        "guidance-1.5",
        "guidance-2",
        "guidance-3",
        "default",
    } <= set(STUDY_ROWS)
    assert STUDY_ROWS["penalty-strict"]["repetition_penalty"] == math.inf
    # rows outside the guidance family never guide; the guidance family varies nothing else; the eos
    # rows vary the default decoding by one of its EOS settings
    assert all(
        d.get("guidance_scale", 1.0) == 1.0
        for n, d in STUDY_ROWS.items()
        if not n.startswith(("guidance", "default", "eos-"))
    )
    eos_rows = {n: d for n, d in STUDY_ROWS.items() if family(n) == "eos"}
    assert {k for d in eos_rows.values() for k in d} == {
        "keep_eos_probability",
        "length_prior",
        "min_new_tokens",
    }
    assert STUDY_ROWS["eos-floor-8"] == {"min_new_tokens": 8} and DECODING_DEFAULTS["min_new_tokens"] == 0
    assert {family(n) for n in STUDY_ROWS} == {
        "greedy",
        "beam",
        "temperature",
        "top-k",
        "top-p",
        "penalty",
        "no-repeat",
        "guidance",
        "eos",
        "default",
    }


# --- the decoding study, end to end on the tiny model ---------------------------------------------

DEFAULT_TOP_P_ROW = f"top-p-{DECODING_DEFAULTS['top_p']}"  # penalty-1.0 decodes exactly like it
STUDY_SUBSET = ["greedy", "beam-2", DEFAULT_TOP_P_ROW, "penalty-1.0", "default", "eos-floor-8"]


@pytest.fixture(scope="module")
def sample_judge(sample_rows):
    return train_judge([r["document"] for r in sample_rows], [r["label"] for r in sample_rows])


@pytest.mark.slow
def test_study_end_to_end_on_the_tiny_model(tmp_path, tokenizer, sample_judge, sample_rows):
    from conftest import build_tiny_model

    from nsmc_gen.evaluation.report import write_report
    from nsmc_gen.evaluation.study import run_study

    columns = {key: [r[key] for r in sample_rows] for key in ("id", "document", "label")}
    splits = datasets.Dataset.from_dict(columns).train_test_split(test_size=100, seed=0)
    sample_splits = datasets.DatasetDict({"train": splits["train"], "test": splits["test"]})
    model = build_tiny_model(tokenizer)
    report = run_study(
        model,
        tokenizer,
        num_reviews=2,
        rows=STUDY_SUBSET,
        test_reviews=20,
        judge=sample_judge,
        nsmc=sample_splits,
        max_new_tokens=8,
        progress=False,
    )
    # asked by an alias, a merged row comes once under its name
    assert [row["name"] for row in report["rows"]] == [
        "greedy",
        "beam-2",
        DEFAULT_TOP_P_ROW,
        "guidance-2",
        "eos-floor-8",
    ]
    assert report["rows"][2]["aliases"] == ["penalty-1.0"] and report["rows"][3]["aliases"] == ["default"]
    assert all(row["decoding"]["max_new_tokens"] == 8 for row in report["rows"])
    by_name = {row["name"]: row for row in report["rows"]}
    for name, row in by_name.items():
        for key in ("control", "control_bayes", "distinct_1", "distinct_2", "self_bleu", "repetition_rate"):
            assert 0.0 <= row[key] <= 1.0, (name, key, row[key])
        assert row["discriminator"] is None  # 2 + 2 reviews: too few for 5 folds
        assert row["mean_length"] > 0 and row["tokens_per_s"] > 0
    # greedy writes one review per sentiment: two copies each, so distinct-1 is at most 1/2
    assert by_name["greedy"]["deterministic"] and by_name["greedy"]["distinct_1"] <= 0.5
    assert len(by_name["greedy"]["examples"]["positive"]) == 1
    assert by_name["eos-floor-8"]["short_share"] == 0  # the floor: 8 tokens at least
    assert report["perplexity"]["test_reviews"] == 20 and report["perplexity"]["perplexity"] > 100
    assert 0 <= report["judges"]["bayes"]["accuracy"] <= 1
    assert report["reference"]["name"] == "NSMC-rebuild sample test reviews"
    assert report["data_name"] == "NSMC-rebuild sample"
    # 2 + 2 reviews per row: realness is not measured, said once for the whole study
    assert report["notes"] == [
        "real vs generated not measured: 4 reviews against 4 real ones (it needs as many, and at least 10)"
    ]
    paths = write_report(report, tmp_path)
    assert all(path.stat().st_size > 0 for path in paths.values())


def test_cli_evaluate_runs_the_study(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from nsmc_gen import cli
    from nsmc_gen.evaluation import study

    calls = {}

    def fake_study(model, tokenizer, **kwargs):  # the study itself is tested above: check the wiring
        calls.update(kwargs, model_type=type(model).__name__)
        return fake_report()

    monkeypatch.setattr(study, "run_study", fake_study)
    argv = ["evaluate", str(tiny_model_dir), "--num-reviews", "3", "--rows", "greedy, top-k-5", "--seed", "4"]
    argv += ["--max-new-tokens", "12"]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "out"), "--no-progress"]) == 0
    assert calls["num_reviews"] == 3 and calls["rows"] == ["greedy", "top-k-5"] and calls["seed"] == 4
    assert calls["model_type"] == "GPT2LMHeadModel" and calls["max_new_tokens"] == 12
    assert (tmp_path / "out" / "decoding_study.png").exists()
    assert "| greedy |" in capsys.readouterr().out


def test_cli_evaluate_puts_the_study_into_a_trained_folders_card(tiny_model_dir, monkeypatch, capsys):
    from nsmc_gen import cli
    from nsmc_gen.evaluation import study
    from nsmc_gen.model_folder import RUN_FACTS

    monkeypatch.setattr(study, "run_study", lambda model, tokenizer, **kwargs: fake_report())
    (tiny_model_dir / RUN_FACTS).write_text(
        json.dumps({"base_model": "embedded", "seed": 7}), encoding="utf-8"
    )
    assert cli.main(["evaluate", str(tiny_model_dir), "--no-progress"]) == 0
    run = json.loads((tiny_model_dir / RUN_FACTS).read_text(encoding="utf-8"))
    assert run["seed"] == 7 and run["test_perplexity"] == round(fake_report()["perplexity"]["perplexity"], 2)
    card = (tiny_model_dir / "README.md").read_text(encoding="utf-8")
    assert "### Decoding study" in card and "| guidance-2 |" in card
    assert run["sentiment_control"] == fake_report()["rows"][2]["control"]  # guidance-2 is the default
    assert (tiny_model_dir / "decoding-study" / "decoding_study.md").is_file()


def test_cli_evaluate_rejects_unknown_rows(tiny_model_dir, capsys):
    from nsmc_gen import cli

    assert cli.main(["evaluate", str(tiny_model_dir), "--rows", "greedy,nucleus"]) == 2
    assert "unknown study rows ['nucleus']" in capsys.readouterr().err


def test_docstring_examples_of_the_study_and_report_run():
    import doctest

    from nsmc_gen.evaluation import report, study

    for module in (study, report):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__
