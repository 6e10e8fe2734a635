r"""The web demo in a real browser: headless Debian Chromium driven by Playwright, on loopback.

Playwright's own browser download cannot work offline, so the tests drive the system Chromium
(``apt-get install chromium fonts-noto-cjk``; the fonts make Korean readable in the screenshot).
The screenshots are kept under ``$NSMC_GEN_ARTIFACTS`` (default: the test's tmp_path) and copied to
``test-artifacts/`` in the repository.

The "compare" and "why" views are tested on the shipped embedded base (a real, peaked next-token
distribution), or on the model named by ``$NSMC_GEN_DEMO_MODEL`` (a folder or Hub id): the README's
screenshot is this test's, run with a fine-tuned model::

    NSMC_GEN_DEMO_MODEL=runs/embedded NSMC_GEN_ARTIFACTS=docs \
        python -m pytest tests/test_demo.py -k "compare_view or why_view"
"""

from __future__ import annotations

import math
import os
import re
import runpy
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import gradio as gr
import pytest
import torch
from conftest import build_tiny_model
from gradio_client import Client
from playwright.sync_api import Page, expect

from nsmc_gen import lesson
from nsmc_gen.cli import main
from nsmc_gen.decoding import DEFAULT_GUIDANCE_SCALE
from nsmc_gen.demo import BASE_MODEL_NOTE, COMPARE_IDS, _reviews, build_demo
from nsmc_gen.generation import generate_reviews
from nsmc_gen.modeling import load_model_and_tokenizer

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


def serve(demo: gr.Blocks) -> str:
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def demo_url(model, tokenizer):
    demo = build_demo(model, tokenizer)
    yield serve(demo)
    demo.close()


LESSON_MODEL = os.environ.get("NSMC_GEN_DEMO_MODEL") or "embedded"
# The lesson views' page, served by its own process as a deployment is: the expectations computed
# here then share no random generator with the page's sampling (in one process, a seeded
# generation in the test while the page samples would change both). One thread on both sides:
# the same arithmetic, hence the same samples and bars.
SERVE_LESSON = """
import sys
from nsmc_gen.demo import build_demo
from nsmc_gen.modeling import load_model_and_tokenizer
build_demo(*load_model_and_tokenizer(sys.argv[1])).launch(
    server_name="127.0.0.1", server_port=int(sys.argv[2]), quiet=True
)
"""


@pytest.fixture(scope="module")
def lesson_model():
    """The model of the lesson views' tests: the embedded base, or $NSMC_GEN_DEMO_MODEL."""
    return load_model_and_tokenizer(LESSON_MODEL)


@pytest.fixture(scope="module")
def lesson_url(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("lesson-server") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE_LESSON, LESSON_MODEL, str(port)], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(WAIT // 250):
            assert server.poll() is None, f"the demo server exited:\n{log.read_text()}"
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


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


def keep_screenshot(page: Page, artifacts: Path, name: str) -> None:
    """A full-page screenshot under ``artifacts``, copied to the repository's test-artifacts/."""
    page.screenshot(path=artifacts / name, full_page=True)
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    if artifacts.resolve() != (REPO / "test-artifacts").resolve():
        shutil.copy(artifacts / name, REPO / "test-artifacts" / name)


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
    keep_screenshot(page, artifacts, "demo.png")

    # Beam search cannot stream: a readable toast, the last review left alone, no traceback.
    # (Choosing it shows its knob: the page's own reactions work without being API endpoints.)
    beams = page.get_by_label("number input for Beams")
    expect(beams).to_be_hidden()
    page.get_by_label("beam", exact=True).check()
    expect(beams).to_be_visible(timeout=WAIT)
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


def shown_pieces(page: Page, elem_id: str) -> list[str]:
    """The pieces (words and spaces) a HighlightedText shows, in order."""
    return page.locator(f"#{elem_id} .textfield .text").all_text_contents()


def repeated_words_shown(page: Page, elem_id: str) -> list[str]:
    """The words a HighlightedText shows with a label (gradio marks the others ``unlabeled``)."""
    return page.locator(f"#{elem_id} .textfield .text:not(.unlabeled)").all_text_contents()


@needs_chromium
def test_browser_compare_view_shows_each_strategys_review_and_its_repetition(
    page: Page, lesson_url, lesson_model, artifacts
):
    model, tokenizer = lesson_model
    # Every expectation is computed before the page asks for anything, and the test ends only
    # when the page has shown everything: the server shares this process's random generator, so
    # a seeded generation here while the page samples would change both.
    # "연기 연출" sends greedy and beam search into a loop ("연기, 연출, ...") on the embedded base
    # and on the no-argument run's model ("스토리" did on the three-stage base, not on the four-stage).
    rows = partial(lesson.side_by_side, model, tokenizer, prompt="연기 연출", seed=0, max_new_tokens=32)
    expected, strict = list(rows()), list(rows(repetition_penalty=math.inf))
    assert any(row.repetition.repeats for row in expected), "no row repeats: the marks would prove nothing"
    assert strict[1].repetition.repeats < expected[1].repetition.repeats  # beam search's loop is gone
    assert strict[0].review != expected[0].review, "the page's switch to the strict rows must show"

    def expect_rows(rows: list[lesson.Decoded]) -> None:
        for row, elem_id in zip(rows, COMPARE_IDS, strict=True):
            shown = page.locator(f"#{elem_id}")
            expect(shown).to_contain_text(f"{row.name}: {row.repetition.describe()}", timeout=WAIT)
            assert shown_pieces(page, elem_id) == list(row.repetition.pieces)
            marked = [p for p, on in zip(row.repetition.pieces, row.repetition.repeated, strict=True) if on]
            assert repeated_words_shown(page, elem_id) == marked

    page.set_default_timeout(WAIT)
    page.goto(lesson_url)
    page.get_by_role("tab", name="Compare strategies").click()
    page.locator("#compare-prompt textarea").fill("연기 연출")
    set_slider(page, "Max new tokens (every row)", 32)
    page.locator("#compare-go").click()
    expect_rows(expected)
    keep_screenshot(page, artifacts, "demo-compare.png")
    # The strict repetition penalty reaches every row (rows are shown in order, the first one
    # differs: once it shows, the others are the new run's or still pending).
    page.get_by_label("Strict repetition penalty (every row: a token never repeats)").check()
    page.locator("#compare-go").click()
    expect_rows(strict)


BAR = re.compile(r"^token: (?P<token>.*); probability: (?P<p>[-+0-9.e]+); (?P<column>\w+): (?P<category>.*)$")


def expect_bars(page: Page, chart: str, frame, category: str) -> None:
    """Wait until ``chart`` draws exactly ``frame``'s bars (read from Vega's SVG aria-labels).

    Vega orders the SVG marks by colour, not by position: bars are compared by token.
    """
    wanted = sorted((row["token"], row[category], row["probability"]) for _, row in frame.iterrows())
    bars = page.locator(f"{chart} [aria-roledescription=bar]")
    drawn: list[tuple[str, str, float]] = []
    for _ in range(WAIT // 250):
        labels = bars.evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")
        drawn = sorted((m["token"], m["category"], float(m["p"])) for m in map(BAR.match, labels) if m)
        if [bar[:2] for bar in drawn] == [bar[:2] for bar in wanted]:
            break
        page.wait_for_timeout(250)
    assert [bar[:2] for bar in drawn] == [bar[:2] for bar in wanted], chart
    assert [bar[2] for bar in drawn] == pytest.approx([bar[2] for bar in wanted], abs=1e-8), chart


@needs_chromium
def test_browser_why_view_draws_the_models_distribution_and_the_cuts(
    page: Page, lesson_url, lesson_model, artifacts
):
    model, tokenizer = lesson_model
    trace = lesson.sample_trace(model, tokenizer, "positive", "이 영화", seed=0, max_new_tokens=32)
    assert trace.steps >= 3, "the review must be long enough to pick a step"

    def view(step, temperature=0.7, top_k=10, top_p=0.8):
        return lesson.next_token_view(
            trace, tokenizer, step, temperature=temperature, top_k=top_k, top_p=top_p, bars=15
        )

    def expect_shown(expected: lesson.NextTokenView) -> None:
        """The summary, both charts' bars and the marked token are those of ``expected``."""
        expect(page.locator("#why-summary")).to_have_text(expected.summary(), timeout=WAIT)
        expect_bars(page, "#why-model", expected.model_frame(), "picked")
        expect_bars(page, "#why-cut", expected.cut_frame(), "cut")
        token = tokenizer.convert_ids_to_tokens(trace.token_ids[expected.step - 1])
        expect(page.locator("#why-review .textfield .text:not(.unlabeled)").last).to_have_text(token)

    page.set_default_timeout(WAIT)
    page.goto(lesson_url)
    page.get_by_role("tab", name="Why: the next-token distribution").click()
    page.locator("#why-prompt textarea").fill("이 영화")
    page.locator("#why-go").click()
    expect_shown(view(1))
    # A later step, a hotter temperature, other cuts: the page follows each.
    step = min(3, trace.steps)
    set_slider(page, "Step", step)
    expect_shown(view(step))
    set_slider(page, "Temperature (why view)", 1.5)
    set_slider(page, "Top-k (why view)", 3)
    expect_shown(view(step, temperature=1.5, top_k=3))
    # Back to the first step (the model choosing the review's first word: a flat distribution,
    # where top-k and top-p keep different tokens) for the screenshot.
    set_slider(page, "Temperature (why view)", 0.7)
    set_slider(page, "Top-k (why view)", 10)
    set_slider(page, "Step", 1)
    expect_shown(view(1))
    keep_screenshot(page, artifacts, "demo-why.png")


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
    assert error.startswith("nsmc-gen demo: error: MODEL") and "no such model folder" in error
    assert "Traceback" not in error


def test_space_app_loads_the_model_named_by_the_environment(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("NSMC_GEN_MODEL", str(tiny_model_dir))
    app = runpy.run_path(str(REPO / "app.py"))
    assert isinstance(app["demo"], gr.Blocks)


def api_parameters(client: Client) -> dict[str, list[str]]:
    """Each documented endpoint's parameter names, as gradio_client shows them."""
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    return {name: [p["parameter_name"] for p in api["parameters"]] for name, api in endpoints.items()}


@pytest.fixture
def generate_api(demo_url):
    """Calls the page's /generate endpoint by its parameters' names (gradio_client, real HTTP)."""
    client = Client(demo_url, verbose=False)
    return partial(client.predict, api_name="/generate")


def test_api_parameters_are_named_as_the_controls(demo_url, model, tokenizer):
    client = Client(demo_url, verbose=False)
    assert api_parameters(client) == {
        "/generate": [
            "prompt",
            "sentiment",
            "strategy",
            "stream",
            "seed",
            "min_new_tokens",
            "max_new_tokens",
            "num_beams",
            "top_k",
            "top_p",
            "temperature",
            "repetition_penalty",
            "no_repeat_ngram_size",
            "strict_penalty",
            "guidance_scale",
            "num_samples",
        ],
        "/compare": ["prompt", "sentiment", "seed", "max_new_tokens", "repetition_penalty", "strict_penalty"],
        "/sample": ["prompt", "sentiment", "seed"],
    }
    # A call by name: the names reach the knobs they say (top-p sampling, its top_p, a seed).
    settings = dict(prompt="이 영화", strategy="top-p", top_p=0.5, seed=4, max_new_tokens=16)
    review = client.predict(**settings, sentiment="negative", stream=False, api_name="/generate")
    expected = generate_reviews(model, tokenizer, "negative", **settings)
    assert [review] == expected
    assert [review] != generate_reviews(model, tokenizer, "negative", **{**settings, "top_p": 1.0})


def test_32_concurrent_api_users_each_get_their_own_review(generate_api, model, tokenizer):
    def user(seed: int) -> tuple[int, str, float]:
        start = time.perf_counter()
        review = generate_api(prompt="이 영화", seed=seed, max_new_tokens=24)
        return seed, review, time.perf_counter() - start

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(user, range(32)))
    # Each user gets the review of their own seed: no request's sampling disturbed another's.
    for seed, review, _ in answers:
        assert [review] == generate_reviews(
            model, tokenizer, "positive", "이 영화", seed=seed, max_new_tokens=24
        )
    assert len({review for _, review, _ in answers}) > 16
    latencies = sorted(seconds for *_, seconds in answers)
    print(f"32 concurrent /generate calls: max latency {latencies[-1]:.1f} s, median {latencies[16]:.1f} s")
    assert latencies[-1] < WAIT / 1000


def test_a_plain_base_model_gets_no_sentiment_and_no_guidance(model, tokenizer):
    demo = build_demo(model, tokenizer, sentiment_control=False)
    blocks = list(demo.blocks.values())
    radios = [b for b in blocks if isinstance(b, gr.Radio) and b.label == "Sentiment"]
    assert len(radios) == 3  # one per view
    assert all(
        r.choices == [("none", "none")] and r.value == "none" and r.interactive is False for r in radios
    )
    [guidance] = [b for b in blocks if isinstance(b, gr.Slider) and b.label.startswith("Sentiment guidance")]
    assert guidance.value == 1 and guidance.interactive is False
    assert any(isinstance(b, gr.Markdown) and b.value == BASE_MODEL_NOTE for b in blocks)
    [guided_row] = [b for b in blocks if getattr(b, "elem_id", None) == "compare-guided"]
    assert guided_row.visible is False
    # What the page sends by default is an unguided review with no sentiment word.
    url = serve(demo)
    try:
        review = Client(url, verbose=False).predict(prompt="이 영화", max_new_tokens=16, api_name="/generate")
    finally:
        demo.close()
    assert [review] == generate_reviews(model, tokenizer, None, "이 영화", seed=0, max_new_tokens=16)
    # The same page for a fine-tuned model asks for a sentiment (and guides) by default.
    assert BASE_MODEL_NOTE not in str(build_demo(model, tokenizer).config)
