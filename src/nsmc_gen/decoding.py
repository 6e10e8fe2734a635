"""The project's recommended decoding defaults: the one place they are written down.

Every writer of ``generation_config.json`` (training, Hub) and every reader (generation, CLI,
demo) takes them from here. They are written explicitly, because ``pipeline("text-generation")``
otherwise adds ``temperature=0.7`` and ``generate`` applies ``top_k=50`` (see FIELD-NOTES).

Example:
    >>> from nsmc_gen.modeling import load_embedded_tokenizer
    >>> config = recommended_generation_config(load_embedded_tokenizer())
    >>> config.do_sample, config.top_p, config.top_k, config.temperature
    (True, 0.92, 0, 1.0)
"""

from __future__ import annotations

from typing import Any

from transformers import GenerationConfig

DECODING_DEFAULTS: dict[str, Any] = {
    "do_sample": True,
    "top_p": 0.92,
    "top_k": 0,
    "temperature": 1.0,
    "repetition_penalty": 1.2,
    "max_new_tokens": 64,
}


def recommended_generation_config(tokenizer: Any, **overrides: Any) -> GenerationConfig:
    """A ``GenerationConfig`` with the recommended defaults and the tokenizer's EOS/pad ids."""
    return GenerationConfig(
        **{**DECODING_DEFAULTS, **overrides},
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
