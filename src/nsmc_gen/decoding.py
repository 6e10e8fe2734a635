"""The project's recommended decoding defaults: the one place they are written down.

Every writer of ``generation_config.json`` (training, Hub) and every reader (generation, CLI,
demo) takes them from here. They are written explicitly, because ``pipeline("text-generation")``
otherwise adds ``temperature=0.7`` and ``generate`` applies ``top_k=50`` (see FIELD-NOTES).

Sentiment guidance is not a field transformers' built-in decoding can use (its
``guidance_scale`` would guide against an empty prompt, not against the opposite sentiment), so
the config carries it in a field of its own, read only by nsmc-gen and by the model folder's
``custom_generate/`` (remote code); plain ``pipeline`` ignores it.

Example:
    >>> from nsmc_gen.modeling import load_embedded_tokenizer
    >>> config = recommended_generation_config(load_embedded_tokenizer())
    >>> config.do_sample, config.top_p, config.top_k, config.temperature
    (True, 0.8, 0, 1.0)
    >>> config.guidance_scale is None, sorted(config.sentiment_guidance["prompt_ids"])
    (True, ['negative', 'positive'])
"""

from __future__ import annotations

from typing import Any

from transformers import GenerationConfig

from nsmc_gen.custom_generate.generate import GUIDANCE_FIELD, KEEP_EOS_FIELD
from nsmc_gen.formatting import SENTIMENTS, ReviewFormat

DECODING_DEFAULTS: dict[str, Any] = {
    "do_sample": True,
    # 0.8 over the more common 0.92: fewer invented words at the same realness; 0.5 reads less real
    # (the decoding study's top-p rows: docs/decoding.md)
    "top_p": 0.8,
    "top_k": 0,
    "temperature": 1.0,
    "repetition_penalty": 1.2,
    # No floor: the length comes from the model's calibrated length prior (DEFAULT_USE_LENGTH_PRIOR)
    # and from EOS keeping its probability under top-p (DEFAULT_KEEP_EOS_PROBABILITY). A floor hides
    # a model that stops too early by continuing reviews that had ended, often with filler (the
    # decoding study's eos-floor-8 row).
    "min_new_tokens": 0,
    "max_new_tokens": 64,
}

# The strategy of nsmc_gen.generation that DECODING_DEFAULTS describe.
DEFAULT_STRATEGY = "top-p"

# Classifier-free guidance against the opposite sentiment's prompt, used whenever a sentiment is
# given; 1.0 switches guidance off. 2.0: the smallest scale reaching control >= 0.95 in the
# decoding study of the no-argument run's model; stronger guidance repeats stock phrases
# (the figures: docs/decoding.md, "Sentiment guidance").
DEFAULT_GUIDANCE_SCALE = 2.0


# Top-k/top-p act on the continuation tokens only and EOS keeps its untruncated probability
# (nsmc_gen.processors.KeepEOSProbabilityLogitsProcessor): truncation otherwise hands EOS the mass
# it cuts, ending reviews early, and would undo a length prior. A field of its own, like guidance:
# transformers' built-in decoding does not know it.
DEFAULT_KEEP_EOS_PROBABILITY = True

# Sampling applies the model's own calibrated length prior (the ``length_prior`` field its
# generation_config.json carries, see nsmc_gen.calibration.calibrate_length_prior), if it has one.
# The cause it corrects: a small LM over-predicts EOS, most of all when sampling guided, truncated
# text (docs/decoding.md, "EOS and length").
DEFAULT_USE_LENGTH_PRIOR = True

# Plain clients (``pipeline``/``generate`` without remote code) run transformers' own processors
# with the folder's generation_config.json: no length prior, no EOS kept out of the top-p cut. What
# transformers' own fields can do for them is a constant EOS bias in ``sequence_bias`` (the
# recipe calibrates it: nsmc_gen.calibration.calibrate_plain_eos_bias). nsmc-gen and
# custom_generate/ have their own EOS handling and zero it (custom_generate.generate.prepare).
PLAIN_EOS_BIAS_FIELD = "sequence_bias"


def eos_sequence_bias(eos_token_id: int | list[int] | None, bias: float) -> list[list[Any]]:
    """``sequence_bias`` in its list form, one entry per EOS id: ``[[[eos_id], bias], ...]``.

    The list form, because transformers 5.23 saves the dict form (``{(eos_id,): bias}``) with a
    string key and then refuses it on loading; 4.57 and 5.x both read and apply the list form.

    Example:
        >>> eos_sequence_bias(1, -1.5), eos_sequence_bias([1, 7], 0.25)
        ([[[1], -1.5]], [[[1], 0.25], [[7], 0.25]])
    """
    ids = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else eos_token_id
    return [[[int(i)], float(bias)] for i in ids]


def sentiment_guidance(tokenizer: Any, review_format: ReviewFormat | None = None) -> dict[str, Any]:
    """The ``sentiment_guidance`` field: the default scale, the prompt format's words, and each
    sentiment's prompt token ids.

    The words are what the model was trained on: every nsmc-gen consumer reads them back with
    :func:`nsmc_gen.formatting.review_format_of`. The ids let code without nsmc-gen (the model
    folder's ``custom_generate/``) find a prompt's sentiment prefix and swap it for the opposite one.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_tokenizer
        >>> field = sentiment_guidance(load_embedded_tokenizer(), ReviewFormat("좋아", "싫어"))
        >>> field["positive_word"], field["negative_word"], field["separator"], sorted(field["prompt_ids"])
        ('좋아', '싫어', ' ', ['negative', 'positive'])
    """
    review_format = review_format or ReviewFormat()
    return {
        "scale": DEFAULT_GUIDANCE_SCALE,
        **review_format.to_dict(),
        "prompt_ids": {s: review_format.prompt_ids(tokenizer, s) for s in SENTIMENTS},
    }


def recommended_generation_config(
    tokenizer: Any,
    review_format: ReviewFormat | None = None,
    max_positions: int | None = None,
    **overrides: Any,
) -> GenerationConfig:
    """A ``GenerationConfig`` with the recommended defaults and the tokenizer's EOS/pad ids.

    Args:
        tokenizer: the model's tokenizer (special token ids, sentiment prompt ids).
        review_format: the prompt format the model was trained on (default: ``ReviewFormat()``).
        max_positions: the model's positions
            (:func:`~nsmc_gen.custom_generate.generate.position_limit`): ``max_new_tokens`` is at
            most half of them, leaving the other half to the prompt, so that a client using the
            folder's defaults never generates past the last position (the embedded default: 128
            positions, 64 new tokens). Not ``max_length``: transformers 5.x warns on every call
            when a folder sets it beside ``max_new_tokens``. Clients that bring their own
            ``max_new_tokens`` (transformers 4.57's pipeline: 256) are capped by
            ``custom_generate/`` (:func:`nsmc_gen.custom_generate.generate.prepare`).
        overrides: any ``GenerationConfig`` field, replacing the defaults.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_tokenizer
        >>> recommended_generation_config(load_embedded_tokenizer(), max_positions=32).max_new_tokens
        16
    """
    limit = DECODING_DEFAULTS["max_new_tokens"]
    if max_positions is not None:
        limit = max(1, min(limit, int(max_positions) // 2))
    return GenerationConfig(
        **{
            **DECODING_DEFAULTS,
            "max_new_tokens": limit,
            GUIDANCE_FIELD: sentiment_guidance(tokenizer, review_format),
            KEEP_EOS_FIELD: DEFAULT_KEEP_EOS_PROBABILITY,
            **overrides,
        },
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
