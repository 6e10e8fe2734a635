"""The web demo: a Gradio page with one control per decoding parameter, streaming the review.

The course served a Flask page with one input per decoding parameter; this is the same page in
Gradio. Every decision about decoding is made by :mod:`nsmc_gen.generation`; this module only
lays out the controls, turns them into a call, and shows the result. A ``ValueError`` from below
(a bad combination such as beam search with streaming, or ``min_new_tokens > max_new_tokens``)
becomes a ``gr.Error`` toast in the page, never a stack trace.

Elements a browser test reaches: ``#prompt textarea``, ``#go`` and ``#out textarea``.

Example:
    >>> from nsmc_gen.modeling import load_model_and_tokenizer
    >>> model, tokenizer = load_model_and_tokenizer("embedded")
    >>> demo = build_demo(model, tokenizer)
    >>> demo.launch(server_name="127.0.0.1", server_port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr
import torch
from transformers import PreTrainedModel, TextIteratorStreamer, set_seed

from nsmc_gen.decoding import DECODING_DEFAULTS
from nsmc_gen.formatting import ReviewFormat

STRATEGIES = ("greedy", "beam", "sampling", "top-k", "top-p")
SENTIMENT_CHOICES = [("긍정 (positive)", "positive"), ("부정 (negative)", "negative"), ("none", "none")]
SAMPLING_STRATEGIES = ("sampling", "top-k", "top-p")

# Which sliders mean something for which strategy (the others are hidden, not silently used).
_SHOWN_FOR = {
    "num_beams": ("beam",),
    "temperature": SAMPLING_STRATEGIES,
    "top_k": ("top-k",),
    "top_p": ("top-p",),
}


# --- INTERIM adapter: replaced by nsmc_gen.generation (stream_review / generate_reviews) once it
# --- lands on main. Nothing else in this module knows how decoding is done.
def _decoding_kwargs(strategy: str, **params: Any) -> dict[str, Any]:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if params["max_new_tokens"] < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {params['max_new_tokens']}")
    if params["min_new_tokens"] > params["max_new_tokens"]:
        raise ValueError(
            f"min_new_tokens ({params['min_new_tokens']}) must not exceed "
            f"max_new_tokens ({params['max_new_tokens']})"
        )
    if strategy == "top-p" and not 0 < params["top_p"] <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {params['top_p']}")
    if strategy in SAMPLING_STRATEGIES and not params["temperature"] > 0:
        raise ValueError(f"temperature must be > 0 for {strategy}, got {params['temperature']}")
    if strategy == "greedy" and params["num_return_sequences"] > 1:
        raise ValueError("greedy decoding gives one review: set the number of samples to 1")
    kwargs = {
        "do_sample": strategy in SAMPLING_STRATEGIES,
        "num_beams": params["num_beams"] if strategy == "beam" else 1,
        "repetition_penalty": params["repetition_penalty"],
        "no_repeat_ngram_size": params["no_repeat_ngram_size"],
        "min_new_tokens": params["min_new_tokens"],
        "max_new_tokens": params["max_new_tokens"],
    }
    if strategy in SAMPLING_STRATEGIES:
        kwargs["temperature"] = params["temperature"]
        kwargs["top_k"] = params["top_k"] if strategy == "top-k" else 0
        kwargs["top_p"] = params["top_p"] if strategy == "top-p" else 1.0
    if math.isinf(kwargs["repetition_penalty"]):
        raise ValueError("the strict repetition penalty needs nsmc_gen.generation (not merged yet)")
    return kwargs


def _stream_review(
    model: PreTrainedModel,
    tokenizer: Any,
    *,
    sentiment: str | None,
    prompt: str,
    strategy: str,
    **params: Any,
) -> Iterator[str]:
    """Yield the review so far (prefix stripped) as tokens arrive."""
    kwargs = _decoding_kwargs(strategy, num_return_sequences=1, **params)
    if kwargs["num_beams"] > 1:
        raise ValueError("beam search cannot stream: untick 'stream tokens' to use beam search")
    review_format = ReviewFormat()
    ids = torch.tensor([review_format.prompt_ids(tokenizer, sentiment, prompt)], device=model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_special_tokens=True, timeout=600)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                streamer=streamer,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **kwargs,
            )
        except BaseException as error:  # surfaced in the caller's thread below
            failure.append(error)
            streamer.end()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    text = ""
    for piece in streamer:
        if not piece:  # the streamer holds text back until a word is complete
            continue
        text += piece
        yield review_format.strip_prefix(text, sentiment)
    thread.join()
    if failure:
        raise failure[0]


def _generate_reviews(
    model: PreTrainedModel,
    tokenizer: Any,
    *,
    sentiment: str | None,
    prompt: str,
    strategy: str,
    num_return_sequences: int,
    **params: Any,
) -> list[str]:
    kwargs = _decoding_kwargs(strategy, num_return_sequences=num_return_sequences, **params)
    review_format = ReviewFormat()
    ids = torch.tensor([review_format.prompt_ids(tokenizer, sentiment, prompt)], device=model.device)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            num_return_sequences=num_return_sequences,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **kwargs,
        )
    texts = tokenizer.batch_decode(out, skip_special_tokens=True)
    return [review_format.strip_prefix(text, sentiment) for text in texts]


# --- end of the interim adapter


def _show(reviews: list[str]) -> str:
    """One review as it is; several numbered, one per line."""
    if len(reviews) == 1:
        return reviews[0]
    return "\n".join(f"{i}. {review}" for i, review in enumerate(reviews, 1))


def _reviews(
    model: PreTrainedModel,
    tokenizer: Any,
    prompt: str,
    sentiment: str,
    strategy: str,
    stream: bool,
    seed: float,
    min_new_tokens: float,
    max_new_tokens: float,
    num_beams: float,
    top_k: float,
    top_p: float,
    temperature: float,
    repetition_penalty: float,
    strict_penalty: bool,
    no_repeat_ngram_size: float,
    num_samples: float,
) -> Iterator[str]:
    """The page's request as a generation call; yields the output box's text as it grows."""
    request = {
        "sentiment": None if sentiment == "none" else sentiment,
        "prompt": prompt or "",
        "strategy": strategy,
        "min_new_tokens": int(min_new_tokens),
        "max_new_tokens": int(max_new_tokens),
        "num_beams": int(num_beams),
        "top_k": int(top_k),
        "top_p": float(top_p),
        "temperature": float(temperature),
        "repetition_penalty": math.inf if strict_penalty else float(repetition_penalty),
        "no_repeat_ngram_size": int(no_repeat_ngram_size),
    }
    samples = int(num_samples)
    set_seed(int(seed))
    if not stream:
        yield _show(_generate_reviews(model, tokenizer, num_return_sequences=samples, **request))
        return
    # Validate the whole request (samples included) before the first token is shown.
    _decoding_kwargs(num_return_sequences=samples, **{k: v for k, v in request.items() if k != "prompt"})
    done: list[str] = []
    for _ in range(samples):
        review = ""
        for review in _stream_review(model, tokenizer, **request):
            yield _show([*done, review])
        done.append(review)


def build_demo(model: PreTrainedModel, tokenizer: Any, title: str = "NSMC 영화 리뷰 생성기") -> gr.Blocks:
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
    model.eval()

    with gr.Blocks(title=title) as demo:
        gr.Markdown(
            f"# {title}\n"
            "Pick a sentiment, optionally start the review, choose a decoding strategy, and generate."
        )
        with gr.Row():
            with gr.Column(scale=3):
                controls = {
                    "prompt": gr.Textbox(
                        label="Prompt (start of the review)", placeholder="이 영화", elem_id="prompt"
                    ),
                    "sentiment": gr.Radio(SENTIMENT_CHOICES, value="positive", label="Sentiment"),
                    "strategy": gr.Radio(list(STRATEGIES), value="top-p", label="Strategy"),
                }
                with gr.Row():
                    controls["stream"] = gr.Checkbox(value=True, label="Stream tokens")
                    controls["seed"] = gr.Number(value=0, precision=0, label="Seed")
                go = gr.Button("Generate", variant="primary", elem_id="go")
                out = gr.Textbox(label="Generated review", lines=6, elem_id="out")
            with gr.Column(scale=2):
                controls |= _decoding_controls()
        values = set(controls.values())

        def generate(data: dict[gr.components.Component, Any]) -> Iterator[str]:
            try:
                yield from _reviews(model, tokenizer, **{name: data[c] for name, c in controls.items()})
            except ValueError as error:  # a bad combination of settings: a message, not a traceback
                raise gr.Error(str(error), print_exception=False) from error

        def show_sliders(chosen: str) -> list[Any]:
            return [gr.update(visible=chosen in strategies) for strategies in _SHOWN_FOR.values()]

        controls["strategy"].change(show_sliders, controls["strategy"], [controls[n] for n in _SHOWN_FOR])
        controls["strict_penalty"].change(
            lambda on: gr.update(interactive=not on),
            controls["strict_penalty"],
            controls["repetition_penalty"],
        )
        go.click(generate, values, out)
        controls["prompt"].submit(generate, values, out)
    return demo


def _decoding_controls() -> dict[str, gr.components.Component]:
    """One control per decoding parameter, named as :func:`_reviews` takes them."""
    shown = {name: "top-p" in strategies for name, strategies in _SHOWN_FOR.items()}  # the default strategy
    return {
        "min_new_tokens": gr.Slider(0, 128, value=0, step=1, label="Min new tokens"),
        "max_new_tokens": gr.Slider(
            1, 128, value=DECODING_DEFAULTS["max_new_tokens"], step=1, label="Max new tokens"
        ),
        "num_beams": gr.Slider(2, 8, value=3, step=1, label="Beams", visible=shown["num_beams"]),
        "top_k": gr.Slider(1, 200, value=50, step=1, label="Top-k", visible=shown["top_k"]),
        "top_p": gr.Slider(0, 1, value=DECODING_DEFAULTS["top_p"], step=0.01, label="Top-p"),
        "temperature": gr.Slider(
            0, 2, value=DECODING_DEFAULTS["temperature"], step=0.05, label="Temperature"
        ),
        "repetition_penalty": gr.Slider(
            1, 2, value=DECODING_DEFAULTS["repetition_penalty"], step=0.05, label="Repetition penalty"
        ),
        "strict_penalty": gr.Checkbox(value=False, label="Strict penalty (a generated token never repeats)"),
        "no_repeat_ngram_size": gr.Slider(0, 6, value=0, step=1, label="No-repeat n-gram size (0: off)"),
        "num_samples": gr.Slider(1, 10, value=1, step=1, label="Number of samples"),
    }
