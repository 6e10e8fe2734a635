"""The web demo: a Gradio page with one control per decoding parameter, streaming the review.

The course served a Flask page with one input per decoding parameter; this is the same page in
Gradio. Every decision about decoding is made by :mod:`nsmc_gen.generation` (its strategy table
also decides which sliders a strategy shows, and their defaults); this module only lays out the
controls, turns them into a call, and shows the result. A ``ValueError`` from below (beam search
with streaming, ``min_new_tokens > max_new_tokens``, ``top_p`` 0, ...) becomes a ``gr.Error``
toast in the page, never a stack trace.

Elements a browser test reaches: ``#prompt textarea``, ``#go`` and ``#out textarea``.

Example:
    >>> from nsmc_gen.modeling import load_model_and_tokenizer
    >>> model, tokenizer = load_model_and_tokenizer("embedded")
    >>> demo = build_demo(model, tokenizer)
    >>> demo.launch(server_name="127.0.0.1", server_port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import gradio as gr

from nsmc_gen.decoding import DEFAULT_GUIDANCE_SCALE, DEFAULT_STRATEGY
from nsmc_gen.generation import COMMON_KNOBS, STRATEGIES, decoding_settings, generate_reviews, stream_review

SENTIMENT_CHOICES = [("긍정 (positive)", "positive"), ("부정 (negative)", "negative"), ("none", "none")]

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


def _takes(strategy: str) -> set[str]:
    """The knobs ``strategy`` takes (an unknown strategy takes none; the library names it)."""
    return set(STRATEGIES[strategy].knobs) | set(COMMON_KNOBS) if strategy in STRATEGIES else set()


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
        "sentiment": None if sentiment == "none" else sentiment,
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


def build_demo(model: Any, tokenizer: Any, title: str = "NSMC 영화 리뷰 생성기") -> gr.Blocks:
    """The Gradio app for ``model`` and ``tokenizer``: launch it with ``.launch(...)``.

    Args:
        model: a causal LM fine-tuned on the ``"긍정 <review>"`` / ``"부정 <review>"`` format.
        tokenizer: its tokenizer.
        title: the page title and heading.

    Example:
        >>> from nsmc_gen.modeling import load_model_and_tokenizer
        >>> demo = build_demo(*load_model_and_tokenizer("embedded"))
        >>> demo.launch(server_name="127.0.0.1", server_port=7860)  # doctest: +SKIP
    """
    with gr.Blocks(title=title) as demo:
        gr.Markdown(
            f"# {title}\n"
            "Pick a sentiment, optionally start the review, choose a decoding strategy, and generate."
        )
        with gr.Row():
            with gr.Column(scale=3):
                controls: dict[str, Any] = {
                    "prompt": gr.Textbox(
                        label="Prompt (start of the review)", placeholder="이 영화", elem_id="prompt"
                    ),
                    "sentiment": gr.Radio(SENTIMENT_CHOICES, value="positive", label="Sentiment"),
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
                    1, 3, value=DEFAULT_GUIDANCE_SCALE, step=0.1, label="Sentiment guidance (1: off)"
                )
                controls["num_samples"] = gr.Slider(1, 10, value=1, step=1, label="Number of samples")

        def generate(data: dict[Any, Any]) -> Iterator[str]:
            try:
                yield from _reviews(model, tokenizer, **{name: data[c] for name, c in controls.items()})
            except ValueError as error:  # a bad combination of settings: a message, not a traceback
                raise gr.Error(str(error), print_exception=False) from error

        def show_knobs(strategy: str) -> list[Any]:
            return [gr.update(visible=name in _takes(strategy)) for name in knobs]

        controls["strategy"].change(show_knobs, controls["strategy"], list(knobs.values()))
        controls["strict_penalty"].change(
            lambda on: gr.update(interactive=not on), controls["strict_penalty"], knobs["repetition_penalty"]
        )
        controls["sentiment"].change(
            lambda s: gr.update(interactive=s != "none"), controls["sentiment"], controls["guidance_scale"]
        )
        go.click(generate, set(controls.values()), out)
        controls["prompt"].submit(generate, set(controls.values()), out)
    return demo
