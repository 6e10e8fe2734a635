"""The web demo: a Gradio page that generates reviews and shows the course's decoding lesson.

Three tabs:

- "Generate": the course's Flask page in Gradio, one control per decoding parameter, streaming.
- "Compare": one prompt decoded by greedy, beam, top-k, top-p and top-p with sentiment guidance,
  side by side, each review's repeated word 2-grams highlighted.
- "Why": for a chosen step of a sampled review, the model's real next-token distribution as bars,
  what a temperature does to it, and where top-k and top-p cut (the slides' pictures).

Every decision about decoding is made by :mod:`nsmc_gen.generation` (its strategy table also
decides which sliders a strategy shows, and their defaults) and every picture of the lesson is
computed by :mod:`nsmc_gen.lesson`; this module only lays out the controls, turns them into calls,
and shows the results. A ``ValueError`` from below (beam search with streaming,
``min_new_tokens > max_new_tokens``, ``top_p`` 0, ...) becomes a ``gr.Error`` toast in the page,
never a stack trace. Every event that runs the model is in one concurrency group of size 1: one
model, one generation at a time (and a seeded request is never disturbed by another's sampling).

The page's API (``gradio_client``), its parameters named as the controls: ``/generate``
(``prompt``, ``sentiment``, ``strategy``, ``stream``, ``seed``, one per decoding knob such as
``top_p`` or ``repetition_penalty``, ``strict_penalty``, ``guidance_scale``, ``num_samples``;
any left out takes the page's default), ``/compare`` and ``/sample``.

Elements a browser test reaches: ``#prompt textarea``, ``#go``, ``#out textarea`` (Generate);
``#compare-prompt textarea``, ``#compare-go``, ``#compare-<row>`` (Compare); ``#why-prompt
textarea``, ``#why-go``, ``#why-review``, ``#why-summary``, ``#why-model``, ``#why-cut`` (Why).

Example:
    >>> from nsmc_gen.modeling import load_model_and_tokenizer
    >>> model, tokenizer = load_model_and_tokenizer("embedded")
    >>> demo = build_demo(model, tokenizer)
    >>> demo.launch(server_name="127.0.0.1", server_port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

import html
import inspect
import math
from collections.abc import Iterator
from typing import Any

import gradio as gr

from nsmc_gen import lesson
from nsmc_gen.decoding import DECODING_DEFAULTS, DEFAULT_GUIDANCE_SCALE, DEFAULT_STRATEGY
from nsmc_gen.generation import COMMON_KNOBS, STRATEGIES, decoding_settings, generate_reviews, stream_review

SENTIMENT_CHOICES = [("긍정 (positive)", "positive"), ("부정 (negative)", "negative"), ("none", "none")]
BASE_MODEL_NOTE = (
    "This model is a plain base model, not fine-tuned on the 긍정/부정 review format: "
    "it has no sentiment to ask for, so sentiment is “none” and sentiment guidance is off."
)
# Every event that runs the model: one at a time (see the module docstring).
ONE_AT_A_TIME = {"concurrency_id": "model", "concurrency_limit": 1}

# The "compare" rows' element ids, in lesson.COMPARE_ROWS' order.
COMPARE_NAMES = tuple(lesson.COMPARE_ROWS)
COMPARE_IDS = ("compare-greedy", "compare-beam", "compare-top-k", "compare-top-p", "compare-guided")
REPEATED = "repeated"
# The "why" charts' colours, by category.
CUT_COLORS = {
    lesson.KEPT_BY_BOTH: "#16a34a",
    lesson.TOP_K_ONLY: "#2563eb",
    lesson.TOP_P_ONLY: "#a855f7",
    lesson.CUT_BY_BOTH: "#cbd5e1",
}
PICK_COLORS = {lesson.PICKED: "#f97316", lesson.NOT_PICKED: "#64748b"}
_BARS = 15  # tokens drawn per "why" chart

# Each knob's default, from the strategy table (a knob has the same default in every strategy).
KNOB_DEFAULTS: dict[str, Any] = {
    **{name: value for strategy in STRATEGIES.values() for name, value in strategy.knobs.items()},
    **COMMON_KNOBS,
}

# The slider of each knob: (minimum, maximum, step, label). The ranges let a user reach invalid
# values on purpose (top-p 0, temperature 0): the page answers them with the library's message.
_SLIDERS: dict[str, tuple[float, float, float, str]] = {
    "min_new_tokens": (0, 128, 1, "Min new tokens"),
    "max_new_tokens": (1, 128, 1, "Max new tokens"),
    "num_beams": (1, 8, 1, "Beams"),
    "top_k": (1, 200, 1, "Top-k"),
    "top_p": (0, 1, 0.01, "Top-p"),
    "temperature": (0, 2, 0.05, "Temperature"),
    "repetition_penalty": (1, 2, 0.05, "Repetition penalty"),
    "no_repeat_ngram_size": (0, 6, 1, "No-repeat n-gram size (0: off)"),
}


def _sentiment_radio(sentiment_control: bool) -> gr.Radio:
    """The sentiment control: 긍정 / 부정 / none, or only "none" for a plain base model."""
    if sentiment_control:
        return gr.Radio(SENTIMENT_CHOICES, value="positive", label="Sentiment")
    return gr.Radio(SENTIMENT_CHOICES[-1:], value="none", label="Sentiment", interactive=False)


def _sentiment(choice: str) -> str | None:
    return None if choice == "none" else choice


def _as_error(error: ValueError) -> gr.Error:
    """A bad combination of settings: a message in a toast, not a traceback."""
    return gr.Error(str(error), print_exception=False)


def _takes(strategy: str) -> set[str]:
    """The knobs ``strategy`` takes (an unknown strategy takes none; the library names it)."""
    return set(STRATEGIES[strategy].knobs) | set(COMMON_KNOBS) if strategy in STRATEGIES else set()


def _named_parameters(controls: dict[str, Any]) -> inspect.Signature:
    """A signature with one parameter per control name, in order."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature([inspect.Parameter(name, kind) for name in controls])


def _show(reviews: list[str]) -> str:
    """One review as it is; several numbered, one per line."""
    if len(reviews) == 1:
        return reviews[0]
    return "\n".join(f"{i}. {review}" for i, review in enumerate(reviews, 1))


def _reviews(
    model: Any,
    tokenizer: Any,
    *,
    prompt: str,
    sentiment: str,
    strategy: str,
    stream: bool,
    seed: int,
    num_samples: int,
    strict_penalty: bool,
    guidance_scale: float,
    **knobs: float,
) -> Iterator[str]:
    """The page's request as a generation call; yields the output box's text as it grows.

    Only the knobs the strategy takes are passed (the others' sliders are hidden); sliders hand
    over floats, so each knob gets its default's type. Sample ``i`` of a stream uses seed
    ``seed + i``: each can be reproduced alone.
    """
    knobs = {
        name: type(KNOB_DEFAULTS[name])(value) for name, value in knobs.items() if name in _takes(strategy)
    }
    if strict_penalty:
        knobs["repetition_penalty"] = math.inf
    request = {
        "sentiment": _sentiment(sentiment),
        "prompt": prompt or "",
        "strategy": strategy,
        "guidance_scale": None if sentiment == "none" else float(guidance_scale),
        **knobs,
    }
    samples, seed = int(num_samples), int(seed)
    if not stream:
        yield _show(generate_reviews(model, tokenizer, num_return_sequences=samples, seed=seed, **request))
        return
    # Check the whole request (the number of samples too) before the first token is shown.
    decoding_settings(**{k: v for k, v in request.items() if k != "prompt"}, num_return_sequences=samples)
    done: list[str] = []
    for i in range(samples):
        review = ""
        for review in stream_review(model, tokenizer, seed=seed + i, **request):
            yield _show([*done, review])
        done.append(review)


def build_demo(
    model: Any, tokenizer: Any, title: str = "NSMC 영화 리뷰 생성기", *, sentiment_control: bool = True
) -> gr.Blocks:
    """The Gradio app for ``model`` and ``tokenizer``: launch it with ``.launch(...)``.

    Args:
        model: a causal LM fine-tuned on the ``"긍정 <review>"`` / ``"부정 <review>"`` format, or
            (with ``sentiment_control=False``) any causal LM.
        tokenizer: its tokenizer.
        title: the page title and heading.
        sentiment_control: False for a plain base model, not fine-tuned on the sentiment format:
            the page then offers only "none" for sentiment, with guidance off, and says why.

    Example:
        >>> from nsmc_gen.modeling import load_model_and_tokenizer
        >>> demo = build_demo(*load_model_and_tokenizer("embedded"))
        >>> demo.launch(server_name="127.0.0.1", server_port=7860)  # doctest: +SKIP
    """
    with gr.Blocks(title=title) as demo:
        gr.Markdown(
            f"# {title}\n"
            "Generate reviews, compare the decoding strategies of the lesson side by side, and see why "
            "they differ in the model's own next-token distribution."
        )
        if not sentiment_control:
            gr.Markdown(BASE_MODEL_NOTE, elem_id="base-model-note")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                _generate_view(model, tokenizer, sentiment_control)
            with gr.Tab("Compare strategies", id="compare"):
                _compare_view(model, tokenizer, sentiment_control)
            with gr.Tab("Why: the next-token distribution", id="why"):
                _why_view(model, tokenizer, sentiment_control)
    return demo


def _generate_view(model: Any, tokenizer: Any, sentiment_control: bool) -> None:
    """One review (or several) with every decoding parameter, streamed."""
    gr.Markdown("Pick a sentiment, optionally start the review, choose a decoding strategy, and generate.")
    with gr.Row():
        with gr.Column(scale=3):
            controls: dict[str, Any] = {
                "prompt": gr.Textbox(
                    label="Prompt (start of the review)", placeholder="이 영화", elem_id="prompt"
                ),
                "sentiment": _sentiment_radio(sentiment_control),
                "strategy": gr.Radio(list(STRATEGIES), value=DEFAULT_STRATEGY, label="Strategy"),
            }
            with gr.Row():
                controls["stream"] = gr.Checkbox(value=True, label="Stream tokens (not with beam search)")
                controls["seed"] = gr.Number(value=0, precision=0, label="Seed")
            go = gr.Button("Generate", variant="primary", elem_id="go")
            out = gr.Textbox(label="Generated review", lines=6, elem_id="out")
        with gr.Column(scale=2):
            knobs = {
                name: gr.Slider(
                    low,
                    high,
                    value=KNOB_DEFAULTS[name],
                    step=step,
                    label=label,
                    visible=name in _takes(DEFAULT_STRATEGY),
                )
                for name, (low, high, step, label) in _SLIDERS.items()
            }
            controls |= knobs
            controls["strict_penalty"] = gr.Checkbox(
                value=False, label="Strict repetition penalty (a token never repeats)"
            )
            controls["guidance_scale"] = gr.Slider(
                1,
                3,
                value=DEFAULT_GUIDANCE_SCALE if sentiment_control else 1,
                step=0.1,
                label="Sentiment guidance (1: off)",
                interactive=sentiment_control,
            )
            controls["num_samples"] = gr.Slider(1, 10, value=1, step=1, label="Number of samples")

    def generate(*values: Any) -> Iterator[str]:
        try:
            yield from _reviews(model, tokenizer, **dict(zip(controls, values, strict=True)))
        except ValueError as error:
            raise _as_error(error) from error

    # gradio names an endpoint's parameters after the function's (else param_0, param_1, ...):
    # one named parameter per control, in the controls' order, for gradio_client users.
    generate.__signature__ = _named_parameters(controls)

    def show_knobs(strategy: str) -> list[Any]:
        return [gr.update(visible=name in _takes(strategy)) for name in knobs]

    # The page's own reactions are no API: only /generate is offered to gradio_client users.
    page_only = {"api_visibility": "private"}
    controls["strategy"].change(show_knobs, controls["strategy"], list(knobs.values()), **page_only)
    controls["strict_penalty"].change(
        lambda on: gr.update(interactive=not on),
        controls["strict_penalty"],
        knobs["repetition_penalty"],
        **page_only,
    )
    controls["sentiment"].change(
        lambda s: gr.update(interactive=s != "none"),
        controls["sentiment"],
        controls["guidance_scale"],
        **page_only,
    )
    inputs = list(controls.values())
    go.click(generate, inputs, out, api_name="generate", **ONE_AT_A_TIME)
    controls["prompt"].submit(generate, inputs, out, api_visibility="undocumented", **ONE_AT_A_TIME)


def _compare_view(model: Any, tokenizer: Any, sentiment_control: bool) -> None:
    """One prompt, one seed, each strategy of :data:`nsmc_gen.lesson.COMPARE_ROWS`, repetition marked."""
    gr.Markdown(
        "One prompt and one seed, decoded by each strategy with no repetition penalty. "
        "<mark>Highlighted</mark> words belong to a word pair (2-gram) the review had already "
        "written: the loops greedy and beam search fall into. Raise the repetition penalty, or make "
        "it strict, and watch them go."
    )
    with gr.Row():
        prompt = gr.Textbox(
            label="Prompt (start of the review)", placeholder="이 영화", elem_id="compare-prompt", scale=3
        )
        sentiment = _sentiment_radio(sentiment_control)
        seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
    with gr.Row():
        max_new_tokens = gr.Slider(1, 128, value=40, step=1, label="Max new tokens (every row)")
        penalty = gr.Slider(1, 2, value=1, step=0.05, label="Repetition penalty (every row; 1: off)")
        strict = gr.Checkbox(
            value=False, label="Strict repetition penalty (every row: a token never repeats)"
        )
    go = gr.Button("Compare", variant="primary", elem_id="compare-go")
    rows = [
        gr.HighlightedText(
            label=name,
            elem_id=elem_id,
            color_map={REPEATED: "#fbbf24"},
            show_legend=False,
            show_inline_category=False,
            visible=sentiment_control or lesson.COMPARE_ROWS[name].get("guidance_scale", 1) == 1,
        )
        for name, elem_id in zip(COMPARE_NAMES, COMPARE_IDS, strict=True)
    ]

    def compare(  # the parameters' names are the /compare endpoint's (gradio_client)
        prompt: str,
        sentiment: str,
        seed: float,
        max_new_tokens: float,
        repetition_penalty: float,
        strict_penalty: bool,
    ) -> Iterator[list[Any]]:
        shown: list[Any] = [
            gr.HighlightedText(value=None, label=f"{name}: …") for name in lesson.COMPARE_ROWS
        ]
        decoded = lesson.side_by_side(
            model,
            tokenizer,
            sentiment=_sentiment(sentiment),
            prompt=prompt or "",
            seed=int(seed),
            max_new_tokens=int(max_new_tokens),
            repetition_penalty=math.inf if strict_penalty else float(repetition_penalty),
        )
        try:
            for i, row in enumerate(decoded):
                if row.repetition is None:
                    shown[i] = gr.HighlightedText(value=[(row.note, None)], label=f"{row.name}: not run")
                else:
                    label = f"{row.name}: {row.repetition.describe()}"
                    shown[i] = gr.HighlightedText(value=row.repetition.highlighted(REPEATED), label=label)
                yield shown
        except ValueError as error:
            raise _as_error(error) from error

    inputs = [prompt, sentiment, seed, max_new_tokens, penalty, strict]
    strict.change(lambda on: gr.update(interactive=not on), strict, penalty, api_visibility="private")
    go.click(compare, inputs, rows, api_name="compare", **ONE_AT_A_TIME)
    prompt.submit(compare, inputs, rows, api_visibility="undocumented", **ONE_AT_A_TIME)


def _why_view(model: Any, tokenizer: Any, sentiment_control: bool) -> None:
    """A sampled review, a chosen step, and the model's next-token distribution there, cut."""
    top_p = DECODING_DEFAULTS["top_p"]
    gr.Markdown(
        f"Sample a review, then pick a step. Left: the model's own next-token distribution there "
        f"(its {_BARS} most probable tokens). Right: the same after the temperature, coloured by "
        f"what top-k and top-p keep. The review is sampled with top-p {top_p} at temperature 1 and "
        "nothing else (no guidance, no repetition penalty), so the left bars are exactly what the "
        f"sampler saw: every token it took is inside the top-p {top_p} cut."
    )
    with gr.Row():
        prompt = gr.Textbox(
            label="Prompt (start of the review)", placeholder="이 영화", elem_id="why-prompt", scale=3
        )
        sentiment = _sentiment_radio(sentiment_control)
        seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
        go = gr.Button("Sample a review", variant="primary", elem_id="why-go")
    review = gr.HighlightedText(
        label="The review, token by token (the chosen step highlighted)",
        elem_id="why-review",
        color_map={"prompt": "#e2e8f0", "step": "#f97316"},
        show_legend=False,
    )
    with gr.Row():
        step = gr.Slider(1, 32, value=1, step=1, label="Step", elem_id="why-step")
        temperature = gr.Slider(0.1, 2, value=0.7, step=0.05, label="Temperature (why view)")
        top_k = gr.Slider(1, 200, value=10, step=1, label="Top-k (why view)")
        top_p_cut = gr.Slider(0.05, 1, value=top_p, step=0.01, label="Top-p (why view)")
    summary = gr.Markdown(elem_id="why-summary")
    with gr.Row():
        chart = {"x": "token", "y": "probability", "x_label_angle": -40, "height": 360, "sort": "-y"}
        model_plot = gr.BarPlot(
            color="picked",
            color_map=PICK_COLORS,
            title="The model (temperature 1)",
            elem_id="why-model",
            **chart,
        )
        cut_plot = gr.BarPlot(
            color="cut",
            color_map=CUT_COLORS,
            title="After the temperature: the cuts",
            elem_id="why-cut",
            **chart,
        )
    trace = gr.State(None)

    def sample(prompt: str, sentiment: str, seed: float) -> tuple[Any, Any]:
        try:
            sampled = lesson.sample_trace(
                model, tokenizer, _sentiment(sentiment), prompt or "", seed=int(seed), max_new_tokens=32
            )
        except ValueError as error:
            raise _as_error(error) from error
        return sampled, gr.Slider(maximum=sampled.steps, value=1)

    def draw(sampled: lesson.Trace | None, step: float, temperature: float, top_k: float, top_p: float):
        if sampled is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            view = lesson.next_token_view(
                sampled,
                tokenizer,
                min(int(step), sampled.steps),
                temperature=float(temperature),
                top_k=int(top_k),
                top_p=float(top_p),
                bars=_BARS,
            )
        except ValueError as error:
            raise _as_error(error) from error
        # The frames alone: gradio 6.31 draws a plot's previous data when a property (y_lim,
        # sort) changes in the same update. Bars are sorted by probability, i.e. by rank.
        return (
            _review_pieces(sampled, tokenizer, view.step),
            # Markdown passes HTML through: the EOS token "</s>" would be read as a tag and vanish.
            html.escape(view.summary(), quote=False),
            view.model_frame(),
            view.cut_frame(),
        )

    shown = [review, summary, model_plot, cut_plot]
    knobs = [trace, step, temperature, top_k, top_p_cut]
    # Redraws: instant, page-only, in the order the knobs moved (one queue: no stale chart last).
    quiet = {
        "api_visibility": "undocumented",
        "show_progress": "hidden",
        "concurrency_id": "why-draw",
        "concurrency_limit": 1,
    }
    sampled = go.click(sample, [prompt, sentiment, seed], [trace, step], api_name="sample", **ONE_AT_A_TIME)
    sampled.then(draw, knobs, shown, **quiet)
    for knob in (step, temperature, top_k, top_p_cut):
        knob.input(draw, knobs, shown, **quiet)


def _review_pieces(trace: lesson.Trace, tokenizer: Any, step: int) -> list[tuple[str, str | None]]:
    """The prompt, then each generated token as the tokenizer spells it, the chosen step marked."""
    prompt = tokenizer.decode(list(trace.context_ids), skip_special_tokens=True)
    tokens = tokenizer.convert_ids_to_tokens(list(trace.token_ids))
    return [(prompt, "prompt")] + [
        (f" {token}", "step" if i == step else None) for i, token in enumerate(tokens, 1)
    ]
