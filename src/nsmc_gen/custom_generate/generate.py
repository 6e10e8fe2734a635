"""nsmc-gen decoding for transformers: our logits processors in place of the built-in ones.

This file has two homes. In the nsmc_gen package it is the code :mod:`nsmc_gen.generation` runs.
In a model folder, ``nsmc_gen.model_folder.install_custom_generate`` copies it to
``custom_generate/generate.py`` next to a copy of ``nsmc_gen/processors.py``; transformers then
runs its :func:`generate` in place of ``model.generate`` when the model is loaded with
``trust_remote_code=True`` (``pipeline("text-generation", model=..., trust_remote_code=True)``).
Hub users need not have nsmc_gen installed, so this file imports only torch, transformers and
that sibling copy.

Why not the built-ins: transformers applies a custom processor IN ADDITION to its own when the
generation config also asks for it (FIELD-NOTES), so :func:`prepare` moves the repetition
penalty, temperature, top-k, top-p and guidance out of the config (setting them to their neutral
values) into one :class:`~transformers.LogitsProcessorList`, in this order, per step:

1. transformers' masks that stay in the config (``min_new_tokens``, ``no_repeat_ngram_size``);
2. sentiment guidance (:class:`GuidanceLogitsProcessor`, log-probabilities);
3. our repetition penalty, on the guided scores (transformers' order: guidance first);
4. temperature, then top-k (transformers' warpers), then our nucleus (top-p) - transformers'
   order, which its own warpers would break by running after any custom processor. With the
   config's ``keep_eos_probability`` field true, top-k and top-p act on the continuation tokens
   only and EOS keeps the probability it has before them
   (:class:`~nsmc_gen.processors.KeepEOSProbabilityLogitsProcessor`): truncation otherwise hands
   EOS the mass it cuts from the tail, and ends texts early. A ``length_prior`` field (a model's
   calibrated EOS bias per generated-token count, :class:`~nsmc_gen.processors.LengthPriorLogitsProcessor`)
   applies when sampling, after temperature and before top-k/top-p.

Plain clients of the folder get a constant EOS bias in ``sequence_bias`` instead (transformers'
own field; the recipe calibrates it): :func:`prepare` zeroes it, since the processors above do that
job, so the two never apply together. It also caps the length at the model's positions
(:func:`within_positions`): transformers 4.57's pipeline brings its own ``max_new_tokens=256``.

Sentiment guidance (classifier-free guidance) contrasts the prompt with the same prompt under the
opposite sentiment word: ``scale * (log p(x | 긍정 ...) - log p(x | 부정 ...)) + log p(x | 부정 ...)``.
A model folder's ``generation_config.json`` carries, in its ``sentiment_guidance`` field, the
default scale and both sentiment prompts' token ids, so :func:`generate` can build the negative
prompt itself: ``pipe("긍정")`` is guided, ``pipe("긍정", guidance_scale=1.0)`` is not. The field
also records the words themselves, which nsmc_gen reads back to build its prompts.

The valid range of every setting is written once, in :data:`SETTING_CHECKS`: :func:`prepare` checks
the resolved config with it, and nsmc_gen checks a request with it before loading a model.

Example (a model folder with this file installed):
    >>> from transformers import pipeline
    >>> pipe = pipeline("text-generation", "path/to/model", trust_remote_code=True)  # doctest: +SKIP
    >>> pipe("긍정", num_return_sequences=2, guidance_scale=2.0)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import transformers
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper

try:  # in a model folder: the copy of nsmc_gen/processors.py installed beside this file
    from .processors import (
        KeepEOSProbabilityLogitsProcessor,
        LengthPriorLogitsProcessor,
        NucleusLogitsProcessor,
        StrictRepetitionPenaltyLogitsProcessor,
    )
except ImportError:  # in the nsmc_gen package
    from nsmc_gen.processors import (
        KeepEOSProbabilityLogitsProcessor,
        LengthPriorLogitsProcessor,
        NucleusLogitsProcessor,
        StrictRepetitionPenaltyLogitsProcessor,
    )

# The generation_config.json field with the default guidance scale and the sentiment prompts' ids.
GUIDANCE_FIELD = "sentiment_guidance"
# The generation_config.json field (bool): top-k/top-p leave EOS its untruncated probability.
KEEP_EOS_FIELD = "keep_eos_probability"
# The generation_config.json field (list of numbers): the model's calibrated EOS bias per generated-token
# count, used when sampling; empty or absent: none.
LENGTH_PRIOR_FIELD = "length_prior"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _finite(value: Any) -> bool:
    return _number(value) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The one place the decoding settings' valid ranges are written: name -> (check, valid range as the
# error message words it). :func:`prepare` checks the resolved config with it, so that a Hub user and
# nsmc_gen.generation (which checks a request with it before loading a model) get the same messages.
SETTING_CHECKS: dict[str, tuple[Any, str]] = {
    "temperature": (lambda v: _number(v) and 0 < v < math.inf, "a finite number > 0"),
    "top_p": (lambda v: _number(v) and 0 < v <= 1, "in (0, 1]"),
    "top_k": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: off)"),
    "num_beams": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "repetition_penalty": (lambda v: _number(v) and v > 0, "a number > 0 (inf: never repeat a token)"),
    "no_repeat_ngram_size": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: off)"),
    "min_new_tokens": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "max_new_tokens": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "num_return_sequences": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "guidance_scale": (lambda v: _finite(v) and v > 0, "a finite number > 0 (1: off)"),
    KEEP_EOS_FIELD: (lambda v: isinstance(v, bool), "True or False"),
    LENGTH_PRIOR_FIELD: (
        lambda v: isinstance(v, bool) or (isinstance(v, (list, tuple)) and all(_finite(b) for b in v)),
        "True (the model's own, if any), False (none) or a list of finite numbers (EOS bias per step)",
    ),
}


def check_settings(settings: Mapping[str, Any] | GenerationConfig) -> None:
    """Raise a ValueError naming the first setting of :data:`SETTING_CHECKS` outside its range.

    ``settings`` is a mapping or a ``GenerationConfig``; unset (None) settings are not checked.

    Example:
        >>> check_settings({"top_p": 0.9, "temperature": None})
        >>> check_settings(GenerationConfig(top_p=1.5))
        Traceback (most recent call last):
        ...
        ValueError: top_p must be in (0, 1], got 1.5
    """
    for name, (valid, words) in SETTING_CHECKS.items():
        value = settings.get(name) if isinstance(settings, Mapping) else getattr(settings, name, None)
        if value is not None and not valid(value):
            raise ValueError(f"{name} must be {words}, got {value!r}")


def left_pad(
    rows: Sequence[Sequence[int]], pad_token_id: int, device: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows as one left-padded batch and its attention mask: a decoder-only model
    continues every row from its last column.

    Example:
        >>> ids, mask = left_pad([[5, 6], [7]], pad_token_id=0)
        >>> ids.tolist(), mask.tolist()
        ([[5, 6], [0, 7]], [[1, 1], [0, 1]])
    """
    width = max(map(len, rows))
    ids = torch.tensor([[pad_token_id] * (width - len(r)) + list(r) for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


class GuidanceLogitsProcessor(LogitsProcessor):
    """Classifier-free guidance against a negative prompt, right for batches and beam search.

    Scores combine as in transformers' ``UnbatchedClassifierFreeGuidanceLogitsProcessor``: both
    branches go through log-softmax, then ``scale * (scores - negative) + negative``. Unlike it,
    the negative branch gets position ids from its attention mask (transformers' counts the left
    padding as positions, so a padded row's guidance differs from the same row alone), its rows
    are repeated to match ``num_return_sequences``, and with ``use_cache=False`` it re-reads the
    whole generated text at each step, which stays right when beam search reorders the rows.

    Args:
        guidance_scale: > 0; 1 returns the log-softmax of the scores (no guidance).
        model: the model being generated from (it runs the negative branch).
        negative_prompt_ids: ``(batch, length)`` negative prompts, left-padded.
        negative_prompt_attention_mask: their attention mask (default: all ones).
        use_cache: keep the negative branch's key/value cache between steps; must be False for
            beam search, where rows are reordered between steps.

    Example:
        >>> import torch
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10)).eval()
        >>> guide = GuidanceLogitsProcessor(2.0, model, torch.tensor([[3, 4]]))
        >>> guide(torch.tensor([[5, 6]]), torch.zeros(1, 10)).shape
        torch.Size([1, 10])
    """

    def __init__(
        self,
        guidance_scale: float,
        model: Any,
        negative_prompt_ids: torch.Tensor,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        use_cache: bool = True,
    ) -> None:
        check_settings({"guidance_scale": guidance_scale})
        if negative_prompt_ids.ndim != 2:
            raise ValueError(
                f"negative_prompt_ids must be (batch, length), got shape {tuple(negative_prompt_ids.shape)}"
            )
        self.guidance_scale = float(guidance_scale)
        self.model = model
        self.negative_ids = negative_prompt_ids
        self.negative_mask = (
            torch.ones_like(negative_prompt_ids)
            if negative_prompt_attention_mask is None
            else negative_prompt_attention_mask
        )
        self.use_cache = use_cache
        self._takes_positions = "position_ids" in inspect.signature(model.forward).parameters
        self._start: int | None = None  # prompt width: where the generated tokens begin
        self._width: int | None = None  # input width at the previous step
        self._mask: torch.Tensor | None = None
        self._past: Any = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = torch.nn.functional.log_softmax(scores, dim=-1)
        if self.guidance_scale == 1:
            return scores
        negative = torch.nn.functional.log_softmax(self._negative_logits(input_ids).to(scores.dtype), dim=-1)
        return self.guidance_scale * (scores - negative) + negative

    @torch.no_grad()
    def _negative_logits(self, input_ids: torch.LongTensor) -> torch.Tensor:
        rows, width = input_ids.shape
        if self._width is None or width != self._width + 1:  # a new generation starts
            self._start, self._past = width, None
        self._width = width
        if self.use_cache and self._past is not None:
            ids = input_ids[:, -1:]
            mask = torch.cat([self._mask, self._mask.new_ones(rows, 1)], dim=1)
        else:
            generated = input_ids[:, self._start :]
            ids = torch.cat([self._rows(self.negative_ids, rows).to(input_ids.device), generated], dim=1)
            negative_mask = self._rows(self.negative_mask, rows).to(input_ids.device)
            mask = torch.cat([negative_mask, negative_mask.new_ones(generated.shape)], dim=1)
        inputs = {"input_ids": ids, "attention_mask": mask, "use_cache": self.use_cache}
        if self._takes_positions:  # positions count real tokens only, as generate's own branch does
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        if self.use_cache:
            inputs["past_key_values"] = self._past
        output = self.model(**inputs)
        if self.use_cache:
            self._past, self._mask = output.past_key_values, mask
        return output.logits[:, -1, :]

    @staticmethod
    def _rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
        """Repeat each negative prompt for its row's sequences, as generate expands the inputs."""
        if rows % tensor.shape[0]:
            raise ValueError(
                f"negative prompts ({tensor.shape[0]}) must divide the batch ({rows} rows): one per prompt"
            )
        return tensor.repeat_interleave(rows // tensor.shape[0], dim=0)


def opposite_sentiment_prompts(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    prompt_ids: Mapping[str, Sequence[int]],
    pad_token_id: int = 0,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Each row's prompt with its sentiment prefix swapped for the other one (left-padded).

    Args:
        input_ids: ``(batch, length)`` prompts, left-padded.
        attention_mask: their attention mask (default: all ones).
        prompt_ids: the token ids of each of the two sentiment prompts (``"positive"``, ``"negative"``).
        pad_token_id: the id written into the padding of the result.

    Returns:
        ``(ids, attention_mask)``, or None when a row starts with neither sentiment prompt.

    Example:
        >>> ids, mask = opposite_sentiment_prompts(
        ...     torch.tensor([[7, 8, 5], [9, 5, 6]]), None, {"positive": [7, 8], "negative": [9]}
        ... )
        >>> ids.tolist(), mask.tolist()
        ([[0, 0, 9, 5], [7, 8, 5, 6]], [[0, 0, 1, 1], [1, 1, 1, 1]])
    """
    if len(prompt_ids) != 2:
        raise ValueError(f"prompt_ids must hold the two sentiments' prompts, got {sorted(prompt_ids)}")
    a, b = (list(ids) for ids in prompt_ids.values())
    swaps = sorted([(a, b), (b, a)], key=lambda pair: -len(pair[0]))  # the longer prefix first
    rows = []
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    for row, keep in zip(input_ids.tolist(), mask.tolist(), strict=True):
        tokens = [token for token, on in zip(row, keep, strict=True) if on]
        swapped = next(
            (new + tokens[len(old) :] for old, new in swaps if old and tokens[: len(old)] == old), None
        )
        if swapped is None:
            return None
        rows.append(swapped)
    return left_pad(rows, pad_token_id, input_ids.device)


def our_processors(
    config: GenerationConfig,
    model: Any = None,
    negative_prompt_ids: torch.Tensor | None = None,
    negative_prompt_attention_mask: torch.Tensor | None = None,
    prompt_length: int | None = None,
) -> LogitsProcessorList:
    """Our processors for what ``config`` asks of guidance, repetition penalty, temperature, top-k, top-p,
    and of its ``length_prior`` (when sampling, and ``prompt_length`` is known) and ``keep_eos_probability``.

    In the order of the module docstring; :func:`switched_off` gives the config fields that stop
    transformers from applying them a second time. The other fields (beams, lengths, n-gram
    blocking) stay with transformers.

    Example:
        >>> config = GenerationConfig(do_sample=True, top_p=0.9, top_k=0, repetition_penalty=1.2)
        >>> [type(p).__name__ for p in our_processors(config)]
        ['StrictRepetitionPenaltyLogitsProcessor', 'NucleusLogitsProcessor']
        >>> config = GenerationConfig(do_sample=True, top_p=0.9, top_k=0, eos_token_id=2)
        >>> config.keep_eos_probability = True
        >>> [type(p).__name__ for p in our_processors(config)]
        ['KeepEOSProbabilityLogitsProcessor']
    """
    processors = LogitsProcessorList()
    beams = config.num_beams or 1
    scale = config.guidance_scale
    if scale is not None and scale != 1:
        if negative_prompt_ids is None or model is None:
            raise ValueError(f"guidance_scale={scale} needs a model and negative prompts (1 = off)")
        use_cache = beams == 1 and config.use_cache is not False
        processors.append(
            GuidanceLogitsProcessor(
                scale, model, negative_prompt_ids, negative_prompt_attention_mask, use_cache
            )
        )
    if config.repetition_penalty is not None and config.repetition_penalty != 1:
        processors.append(
            StrictRepetitionPenaltyLogitsProcessor(
                config.repetition_penalty, pad_token_id=config.pad_token_id
            )
        )
    if config.do_sample:
        keep = 2 if beams > 1 else 1  # beam sampling keeps a non-EOS token, as transformers does
        if config.temperature is not None and config.temperature != 1:
            processors.append(TemperatureLogitsWarper(config.temperature))
        prior = getattr(config, LENGTH_PRIOR_FIELD, None)
        if prior and prompt_length is not None and config.eos_token_id is not None:
            processors.append(LengthPriorLogitsProcessor(prior, config.eos_token_id, prompt_length))
        truncation = []
        if config.top_k:
            truncation.append(TopKLogitsWarper(config.top_k, min_tokens_to_keep=keep))
        if config.top_p is not None and config.top_p < 1:
            truncation.append(NucleusLogitsProcessor(config.top_p, min_tokens_to_keep=keep))
        eos = config.eos_token_id
        if truncation and getattr(config, KEEP_EOS_FIELD, False) and eos is not None and eos != []:
            truncation = [KeepEOSProbabilityLogitsProcessor(truncation, eos)]
        processors.extend(truncation)
    return processors


def switched_off(do_sample: bool | None) -> dict[str, Any]:
    """The config fields, at neutral values, that keep transformers from building what we do.

    When not sampling, top-k is set to transformers' default 50 rather than 0: no warper is built
    either way, and any other value draws its "flag not valid" warning.

    Example:
        >>> switched_off(do_sample=True)
        {'repetition_penalty': 1.0, 'guidance_scale': 1.0, 'temperature': 1.0, 'top_p': 1.0, 'top_k': 0}
    """
    top_k = 0 if do_sample else 50
    return {
        "repetition_penalty": 1.0,
        "guidance_scale": 1.0,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": top_k,
    }


def without_eos_bias(config: GenerationConfig) -> dict[str, Any]:
    """``sequence_bias`` with every bias on EOS set to 0, or nothing when the config has none.

    A folder's generation_config.json carries a constant EOS bias in ``sequence_bias`` for plain
    clients (transformers' own decoding, which has neither our length prior nor EOS kept out of
    the top-p cut; the recipe calibrates it). Our EOS handling replaces it: applying both would end
    reviews twice over. Zeroed rather than removed: transformers refills an unset (None) field of a
    passed config from the model's generation_config.json, and refuses an empty one. Biases on
    other tokens stay as they are.

    Example:
        >>> config = GenerationConfig(eos_token_id=1, sequence_bias=[[[1], -1.5], [[5, 1], 2.0], [[9], 3.0]])
        >>> without_eos_bias(config)
        {'sequence_bias': [[[1], 0.0], [[5, 1], 0.0], [[9], 3.0]]}
        >>> without_eos_bias(GenerationConfig(eos_token_id=1))
        {}
    """
    bias = config.sequence_bias
    if not bias:
        return {}
    eos = config.eos_token_id
    eos = set() if eos is None else {eos} if isinstance(eos, int) else set(eos)

    def zeroed(ids: Sequence[int], value: float) -> float:
        return 0.0 if list(ids)[-1:] and list(ids)[-1] in eos else float(value)

    if isinstance(bias, Mapping):
        return {"sequence_bias": {ids: zeroed(ids, value) for ids, value in bias.items()}}
    return {"sequence_bias": [[list(ids), zeroed(ids, value)] for ids, value in bias]}


def position_limit(model_config: Any) -> int | None:
    """The model's positions (``n_positions``/``max_position_embeddings``), or None if it has no limit.

    Example:
        >>> from transformers import GPT2Config
        >>> position_limit(GPT2Config(n_positions=128))
        128
    """
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(model_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def within_positions(model_config: Any, config: GenerationConfig, prompt_width: int | None) -> dict[str, Any]:
    """The length settings, capped so that prompt and generated tokens fit the model's positions;
    empty when they fit (or the model has no position limit).

    A client may bring its own ``max_new_tokens`` (transformers 4.57's text-generation pipeline
    brings 256, over the folder's 64): on a model of 128 positions, a batch whose slowest row does
    not stop would index past the last position (``IndexError: index out of range in self``).

    Raises:
        ValueError: the prompt alone fills the model's positions.

    Example:
        >>> from transformers import GPT2Config
        >>> within_positions(GPT2Config(n_positions=128), GenerationConfig(max_new_tokens=256), 2)
        {'max_new_tokens': 126}
        >>> within_positions(GPT2Config(n_positions=128), GenerationConfig(max_new_tokens=64), 2)
        {}
    """
    positions = position_limit(model_config)
    if positions is None or prompt_width is None:
        return {}
    room = positions - prompt_width
    if room < 1:
        raise ValueError(
            f"the prompt ({prompt_width} tokens) fills the model's {positions} positions: no room to generate"
        )
    capped: dict[str, Any] = {}
    if config.max_new_tokens is not None:
        if config.max_new_tokens > room:
            capped["max_new_tokens"] = room
    elif config.max_length is not None and config.max_length > positions:
        capped["max_length"] = positions
    if capped and config.min_new_tokens is not None and config.min_new_tokens > room:
        capped["min_new_tokens"] = room
    if capped and (config.max_new_tokens, positions) not in _CAPPED:
        _CAPPED.add((config.max_new_tokens, positions))
        logger.warning(
            "max_new_tokens=%s / max_length=%s reach past the model's %d positions: at most %d new tokens",
            config.max_new_tokens,
            config.max_length,
            positions,
            room,
        )
    return capped


_CAPPED: set[tuple[Any, int]] = set()  # warned once per (asked, positions)
logger = logging.getLogger(__name__)


def prepare(
    model: Any,
    generation_config: GenerationConfig | None = None,
    logits_processor: LogitsProcessorList | None = None,
    negative_prompt_ids: torch.Tensor | None = None,
    negative_prompt_attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """``generate()`` arguments that decode as asked, with our processors doing the work.

    Takes what ``model.generate`` takes. The config is resolved as ``generate`` resolves it
    (arguments over ``generation_config`` over ``model.generation_config``), then split by
    :func:`our_processors`; ``keep_eos_probability`` and ``length_prior`` (fields transformers does
    not know) are taken from the arguments too (``length_prior=False`` or ``[]`` switches a model's
    prior off, ``True`` keeps it). Every setting is checked against :data:`SETTING_CHECKS`.
    Without ``guidance_scale``, a model whose config has the
    ``sentiment_guidance`` field is guided by its default scale when every prompt starts with a
    sentiment word; with ``guidance_scale`` != 1 and no ``negative_prompt_ids``, the negative
    prompts are the inputs with the opposite sentiment word. A constant EOS bias the folder keeps
    for plain clients (``sequence_bias``) is zeroed: our EOS handling replaces it
    (:func:`without_eos_bias`). The length settings are capped at the model's positions
    (:func:`within_positions`).
    """
    # our fields, taken from the arguments here: a config without them would hand them to the model
    ours = {name: kwargs.pop(name) for name in (KEEP_EOS_FIELD, LENGTH_PRIOR_FIELD) if name in kwargs}
    if _REFILLS_PASSED_CONFIG and generation_config is not None:
        generation_config = folder_over_pipeline_defaults(model, generation_config, kwargs)
    # A private method, but the one that resolves a config exactly as generate will (arguments over
    # generation_config over model.generation_config); tests/test_one_path.py fails loudly if it changes.
    config, model_kwargs = model._prepare_generation_config(generation_config, **kwargs)
    for name, value in ours.items():
        setattr(config, name, value)
    if getattr(config, LENGTH_PRIOR_FIELD, None) is True:  # True: the model's own prior, if any
        setattr(config, LENGTH_PRIOR_FIELD, getattr(model.generation_config, LENGTH_PRIOR_FIELD, None))
    check_settings(config)
    guidance = getattr(config, GUIDANCE_FIELD, None) or {}
    input_ids = model_kwargs.get("input_ids", model_kwargs.get("inputs"))
    if negative_prompt_ids is None and guidance.get("prompt_ids") and input_ids is not None:
        pad = config.pad_token_id if isinstance(config.pad_token_id, int) else 0
        opposite = opposite_sentiment_prompts(
            input_ids, model_kwargs.get("attention_mask"), guidance["prompt_ids"], pad
        )
        if opposite is not None:
            negative_prompt_ids, negative_prompt_attention_mask = opposite
            if config.guidance_scale is None:
                config.guidance_scale = guidance.get("scale", 1.0)
    if config.guidance_scale not in (None, 1) and negative_prompt_ids is None:
        raise ValueError(
            f"guidance_scale={config.guidance_scale} needs negative_prompt_ids, or prompts that start with a "
            "sentiment word of the model's sentiment_guidance field (guidance_scale=1 switches it off)"
        )
    width = input_ids.shape[-1] if input_ids is not None else None
    # the guidance branch reads the opposite prompt, which may be the longer one
    widest = max(width or 0, negative_prompt_ids.shape[-1] if negative_prompt_ids is not None else 0)
    limits = within_positions(model.config, config, widest or None)
    processors = our_processors(config, model, negative_prompt_ids, negative_prompt_attention_mask, width)
    processors.extend(logits_processor or [])
    # generate gets what the caller passed, in the same form (generate fills in the model's
    # defaults, as usual), with ours switched off; not the resolved config, whose every field
    # would read as set by the caller.
    settings = {
        **{key: value for key, value in kwargs.items() if key not in model_kwargs},
        **switched_off(config.do_sample),
        **without_eos_bias(config),
        **limits,
    }
    if generation_config is not None:
        generation_config = copy.deepcopy(generation_config)
        generation_config.update(**settings)
        # transformers 4.x: the settings go as keywords too: it refills every value of a passed config
        # that equals a library default from the model's generation_config.json (do_sample=False
        # would sample, and the built-in penalty / top-p would run beside ours); keywords win there.
        # 5.x fills only unset values, and deprecates passing a config and its settings together.
        settings = {"generation_config": generation_config, **(settings if _REFILLS_PASSED_CONFIG else {})}
    return {**settings, "logits_processor": processors, **model_kwargs}


_REFILLS_PASSED_CONFIG = int(transformers.__version__.split(".")[0]) < 5


def folder_over_pipeline_defaults(
    model: Any, config: GenerationConfig, kwargs: Mapping[str, Any]
) -> GenerationConfig:
    """transformers 4.x: the model's own generation_config.json over the text-generation pipeline's
    defaults, as 5.x has it (it adds a pipeline default only where the model sets none).

    A 4.x pipeline passes a config in which its defaults (``max_new_tokens=256``,
    ``temperature=0.7``) override the folder's (64, 1.0): reviews come out at half their length
    and a batch can walk past the last position. Where the passed value is the pipeline's default
    and the model sets another, the model's wins; a value passed as a keyword (a call's
    ``temperature=0.7``) is the caller's and stays. (One the caller gave when building the pipeline,
    equal to the pipeline's default, cannot be told apart and yields to the model's too.)
    """
    try:
        from transformers.pipelines.text_generation import TextGenerationPipeline
    except ImportError:  # no pipelines in this install: no pipeline defaults to undo
        return config
    defaults = getattr(TextGenerationPipeline, "_default_generation_config", None)
    if defaults is None:
        return config
    own = model.generation_config
    updated = copy.deepcopy(config)
    for key, value in defaults.to_diff_dict().items():
        if key == "transformers_version":
            continue
        mine = getattr(own, key, None)
        if key not in kwargs and getattr(config, key, None) == value and mine is not None and mine != value:
            setattr(updated, key, mine)
    return updated


class _FinishedRowPadding(logging.Filter):
    """Drops transformers' "We strongly recommend passing in an `attention_mask`" warning.

    It is harmless here, and the caller did pass the mask: transformers 5.x drops an all-ones mask
    (no padding to hide), then appends the pad token to every row that has already ended; GPT-2's
    forward sees a pad token in the last column without a mask and warns. Those rows' later tokens
    are thrown away, so nothing they attend to matters.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "recommend passing in an `attention_mask`" not in str(record.msg)


@contextlib.contextmanager
def _quiet_finished_row_padding(attention_mask_given: bool) -> Any:
    logger = logging.getLogger("transformers.modeling_utils")
    quiet = _FinishedRowPadding() if attention_mask_given else None
    if quiet:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        if quiet:
            logger.removeFilter(quiet)


def generate(*args: Any, model: Any, **kwargs: Any) -> Any:
    """``model.generate`` with our processors: what transformers runs for a model folder with remote code.

    Takes and returns what ``model.generate`` does; transformers binds ``model`` by keyword
    (``functools.partial(generate, model=model)``), so the inputs may come positionally too.
    """
    if args:
        kwargs["inputs"] = args[0]
    with _quiet_finished_row_padding(kwargs.get("attention_mask") is not None):
        return type(model).generate(model, **prepare(model, **kwargs))
