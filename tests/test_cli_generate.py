"""``nsmc-gen generate``: output, JSON records, seeds, and bad input as one line with exit code 2."""

from __future__ import annotations

import json

import pytest

from nsmc_gen.cli import main
from nsmc_gen.decoding import (
    DECODING_DEFAULTS,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_KEEP_EOS_PROBABILITY,
    DEFAULT_USE_LENGTH_PRIOR,
)
from nsmc_gen.generation import generate_reviews
from nsmc_gen.modeling import load_model_and_tokenizer


def run(capsys, *argv: str) -> tuple[int, list[str], str]:
    capsys.readouterr()  # drop what fixtures printed (model saving progress bars)
    code = main(["generate", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_prints_the_reviews_generate_reviews_writes(capsys, tiny_model_dir):
    code, lines, _ = run(
        capsys,
        tiny_model_dir,
        "--sentiment",
        "negative",
        "--num-return-sequences",
        3,
        "--strategy",
        "top-k",
        "--top-k",
        20,
        "--seed",
        5,
        "--max-new-tokens",
        8,
    )
    assert code == 0
    model, tokenizer = load_model_and_tokenizer(str(tiny_model_dir))
    expected = generate_reviews(
        model,
        tokenizer,
        "negative",
        num_return_sequences=3,
        strategy="top-k",
        top_k=20,
        seed=5,
        max_new_tokens=8,
    )
    assert lines == expected


def test_json_records_and_seeds(capsys, tiny_model_dir):
    args = (
        tiny_model_dir,
        "--num-return-sequences",
        2,
        "--strategy",
        "top-p",
        "--top-p",
        0.8,
        "--repetition-penalty",
        1.3,
        "--seed",
        0,
        "--max-new-tokens",
        6,
        "--prompt",
        "이 영화",
        "--json",
    )
    code, lines, _ = run(capsys, *args)
    assert code == 0 and len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert all(r["text"].startswith("이 영화") for r in records)
    assert (
        records[0]["sentiment"] == "positive"
        and records[0]["seed"] == 0
        and records[0]["prompt"] == "이 영화"
    )
    assert records[0]["decoding"] == {
        "strategy": "top-p",
        "top_p": 0.8,
        "temperature": 1.0,
        "keep_eos_probability": DEFAULT_KEEP_EOS_PROBABILITY,
        "length_prior": DEFAULT_USE_LENGTH_PRIOR,
        "repetition_penalty": 1.3,
        "no_repeat_ngram_size": 0,
        "min_new_tokens": min(
            DECODING_DEFAULTS["min_new_tokens"], 6
        ),  # a default floor yields to the maximum
        "max_new_tokens": 6,
        "guidance_scale": DEFAULT_GUIDANCE_SCALE,
    }
    assert run(capsys, *args)[1] == lines  # same seed, same output
    assert run(capsys, *args[:-4], 1, *args[-3:])[1] != lines  # another seed


def test_strict_penalty_no_sentiment_and_guidance_off_in_json(capsys, tiny_model_dir):
    code, lines, _ = run(
        capsys,
        tiny_model_dir,
        "--sentiment",
        "none",
        "--strategy",
        "greedy",
        "--repetition-penalty",
        "inf",
        "--max-new-tokens",
        4,
        "--json",
    )
    record = json.loads(lines[0])
    assert code == 0 and record["sentiment"] is None
    assert record["decoding"]["repetition_penalty"] == "inf" and record["decoding"]["guidance_scale"] == 1.0
    code, lines, _ = run(capsys, tiny_model_dir, "--guidance-scale", 1, "--max-new-tokens", 4, "--json")
    assert code == 0 and json.loads(lines[0])["decoding"]["guidance_scale"] == 1.0


def test_embedded_model(capsys):
    code, lines, _ = run(capsys, "embedded", "--strategy", "greedy", "--max-new-tokens", 3)
    assert code == 0 and len(lines) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["", "--max-new-tokens", 2], "MODEL must be a model folder, a Hub id or 'embedded', got ''"),
        (["./no-such-model"], "MODEL './no-such-model': no such model folder"),
        (["{model}", "--max-new-tokens", 0], "max_new_tokens must be an integer >= 1, got 0"),
        (["{model}", "--top-p", 1.5], "top_p must be in (0, 1], got 1.5"),
        (["{model}", "--strategy", "greedy", "--top-p", 0.9], "--top-p does not apply to --strategy greedy"),
        (["{model}", "--sentiment", "none", "--guidance-scale", 2], "guidance_scale=2.0 needs a sentiment"),
        (
            ["{model}", "--strategy", "beam", "--num-beams", 2, "--num-return-sequences", 3],
            "num_return_sequences",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, tiny_model_dir, argv, message):
    code, lines, err = run(capsys, *[str(a).replace("{model}", str(tiny_model_dir)) for a in argv])
    assert code == 2 and lines == []
    (line,) = err.strip().splitlines()  # checked before the model loads: nothing else is printed
    assert line.startswith(f"nsmc-gen generate: error: {message}")


@pytest.mark.parametrize("argv", [["--sentiment", "happy"], ["--strategy", "nucleus"]])
def test_argparse_rejects_unknown_choices_with_exit_code_2(capsys, tiny_model_dir, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", str(tiny_model_dir), *argv])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
