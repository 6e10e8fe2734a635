"""The web demo in a real browser: headless Debian Chromium driven by Playwright, on loopback.

Playwright's own browser download cannot work offline, so the tests drive the system Chromium
(``apt-get install chromium fonts-noto-cjk``; the fonts make Korean readable in the screenshot).
The screenshot is kept under ``$NSMC_GEN_ARTIFACTS`` (default: the test's tmp_path) and copied to
``test-artifacts/demo.png`` in the repository.
"""

from __future__ import annotations

import math
import os
import re
import runpy
import shutil
import socket
import urllib.request
from pathlib import Path

import gradio as gr
import pytest
import torch
from conftest import build_tiny_model
from playwright.sync_api import Page, expect

from nsmc_gen.cli import main
from nsmc_gen.decoding import DEFAULT_GUIDANCE_SCALE
from nsmc_gen.demo import _reviews, build_demo
from nsmc_gen.generation import generate_reviews

CHROMIUM = Path("/usr/lib/chromium/chromium")
REPO = Path(__file__).resolve().parents[1]
WAIT = 120_000  # ms: an upper bound for a busy machine (Chromium shows the page in ~1 s when idle)
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Debian's Chromium is not installed ({CHROMIUM}): apt-get install chromium"
)

# What the page sends, by control name.
REQUEST = dict(
    prompt="이 영화",
    sentiment="positive",
    strategy="greedy",
    stream=True,
    seed=0,
    min_new_tokens=4,
    max_new_tokens=12,
    num_beams=3,
    top_k=50,
    top_p=0.92,
    temperature=1.0,
    repetition_penalty=1.2,
    strict_penalty=False,
    no_repeat_ngram_size=0,
    guidance_scale=DEFAULT_GUIDANCE_SCALE,  # what the page starts with
    num_samples=1,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page_outputs(model, tokenizer, **changes) -> list[str]:
    return list(_reviews(model, tokenizer, **{**REQUEST, **changes}))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Two intra-op threads on two busy cores wait for each other: a tiny model's generate ran
    # ~10x slower with two than with one while other jobs loaded the machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_tiny_model(tokenizer, seed=3)


@pytest.fixture(scope="module")
def demo_url(model, tokenizer):
    demo = build_demo(model, tokenizer)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # The resolver rule stops Chromium's own lookups of Google hosts (no network here).
    args = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": args}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}, "locale": "ko-KR"}


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("NSMC_GEN_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def greedy_review(model, tokenizer, **changes) -> str:
    """What the library writes for the page's request, greedily (the page must show exactly this)."""
    settings = {**REQUEST, **changes}
    [review] = generate_reviews(
        model,
        tokenizer,
        settings["sentiment"],
        settings["prompt"],
        strategy="greedy",
        seed=settings["seed"],
        guidance_scale=settings["guidance_scale"],
        **{
            k: settings[k]
            for k in ("min_new_tokens", "max_new_tokens", "repetition_penalty", "no_repeat_ngram_size")
        },
    )
    assert len(review) > len(settings["prompt"]), "the model wrote nothing: the test would prove nothing"
    return review


def set_slider(page: Page, label: str, value: int) -> None:
    box = page.get_by_label(f"number input for {label}")
    box.fill(str(value))
    box.press("Enter")


@needs_chromium
def test_browser_generates_the_models_review_and_shows_errors_as_toasts(
    page: Page, demo_url, model, tokenizer, artifacts
):
    expected = greedy_review(model, tokenizer)
    page.set_default_timeout(WAIT)
    page.goto(demo_url)
    page.locator("#prompt textarea").fill("이 영화")
    page.get_by_label("greedy").check()
    set_slider(page, "Min new tokens", 4)
    set_slider(page, "Max new tokens", 12)
    page.locator("#go").click()
    out = page.locator("#out textarea")
    expect(out).to_have_value(expected, timeout=WAIT)
    assert expected.startswith("이 영화")
    page.screenshot(path=artifacts / "demo.png", full_page=True)
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    shutil.copy(artifacts / "demo.png", REPO / "test-artifacts" / "demo.png")

    # Beam search cannot stream: a readable toast, the last review left alone, no traceback.
    page.get_by_label("beam", exact=True).check()
    page.locator("#go").click()
    toast = page.locator("[data-testid=toast-text]")
    expect(toast).to_contain_text("cannot be streamed", timeout=WAIT)
    expect(out).to_have_value(expected)
    assert "Traceback" not in page.content()
    # The toast fades in (svelte sets its opacity from script): wait until it is fully shown.
    expect(page.locator(".toast-body").filter(has_text="cannot be streamed")).to_have_css(
        "opacity", "1", timeout=WAIT
    )
    page.screenshot(path=artifacts / "demo-error.png", full_page=True)

    # min > max new tokens: the message names both.
    page.get_by_label("greedy").check()
    set_slider(page, "Min new tokens", 20)
    page.locator("#go").click()
    expect(toast.filter(has_text="min_new_tokens")).to_contain_text(
        "min_new_tokens must be <= max_new_tokens (12), got 20", timeout=WAIT
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategy": "beam"}, "strategy 'beam' cannot be streamed"),
        ({"min_new_tokens": 13}, "min_new_tokens must be <= max_new_tokens (12), got 13"),
        ({"strategy": "top-p", "top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"strategy": "sampling", "temperature": 0.0}, "temperature must be a finite number > 0"),
        ({"num_samples": 2}, "num_return_sequences must be 1 for greedy"),
        ({"strategy": "beam", "num_beams": 2, "num_samples": 3, "stream": False}, "<= num_beams (2)"),
        ({"strategy": "top-p", "top_p": 0.0, "stream": False}, "top_p must be in (0, 1]"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_invalid_settings_raise_before_any_output(model, tokenizer, changes, message):
    outputs = _reviews(model, tokenizer, **{**REQUEST, **changes})
    with pytest.raises(ValueError, match=re.escape(message)):
        next(outputs)


def test_streaming_grows_the_review_and_ends_with_the_full_one(model, tokenizer):
    outputs = page_outputs(model, tokenizer)
    assert len(set(outputs)) >= 2, "nothing was shown before generation ended"
    assert all(outputs[-1].startswith(shown) for shown in outputs)
    assert outputs[-1] == greedy_review(model, tokenizer)
    assert page_outputs(model, tokenizer, stream=False) == [outputs[-1]]


def test_hidden_knobs_are_not_sent_and_no_sentiment_means_no_guidance(model, tokenizer):
    # top_p 0 and temperature 0 would be refused; greedy does not take them (their sliders hide).
    assert page_outputs(model, tokenizer, top_p=0.0, temperature=0.0)[-1] == greedy_review(model, tokenizer)
    unguided = greedy_review(model, tokenizer, sentiment=None, guidance_scale=None)
    assert page_outputs(model, tokenizer, sentiment="none", stream=False) == [unguided]


def test_strict_penalty_box_asks_for_the_strict_penalty(model, tokenizer):
    unguided = {"sentiment": "none", "max_new_tokens": 40, "stream": False}
    strict = page_outputs(model, tokenizer, strict_penalty=True, **unguided)[-1]
    lib = {"sentiment": None, "guidance_scale": None, "max_new_tokens": 40}
    assert strict == greedy_review(model, tokenizer, repetition_penalty=math.inf, **lib)
    assert strict != greedy_review(model, tokenizer, **lib), "the test must tell them apart"


def test_several_samples_are_numbered_one_per_line(model, tokenizer):
    shown = page_outputs(model, tokenizer, strategy="top-p", num_samples=3)[-1].split("\n")
    assert [line[:3] for line in shown] == ["1. ", "2. ", "3. "]
    beams = page_outputs(model, tokenizer, strategy="beam", stream=False, num_samples=2)[-1].split("\n")
    assert [line[:3] for line in beams] == ["1. ", "2. "]


def test_cli_serves_the_page(monkeypatch, tiny_model_dir):
    launched: list[gr.Blocks] = []
    launch = gr.Blocks.launch

    def launch_without_blocking(self, **kwargs):
        launched.append(self)
        return launch(self, **kwargs, prevent_thread_lock=True, quiet=True)

    monkeypatch.setattr(gr.Blocks, "launch", launch_without_blocking)
    port = free_port()
    try:
        assert main(["demo", str(tiny_model_dir), "--port", str(port)]) == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as response:
            assert response.status == 200
            assert "NSMC 영화 리뷰 생성기" in response.read().decode()
    finally:
        for demo in launched:
            demo.close()


def test_cli_reports_a_missing_model_in_one_line(capsys, tmp_path):
    assert main(["demo", str(tmp_path / "no-such-model")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("nsmc-gen demo: error: cannot load MODEL") and "Traceback" not in error


def test_space_app_loads_the_model_named_by_the_environment(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("NSMC_GEN_MODEL", str(tiny_model_dir))
    app = runpy.run_path(str(REPO / "app.py"))
    assert isinstance(app["demo"], gr.Blocks)
