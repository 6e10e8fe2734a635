"""nsmc-gen's decoding inside vLLM: one V1 logits processor over the same pure functions as our
transformers processors (:mod:`nsmc_gen.processors`).

Register it with vLLM's OpenAI-compatible server (``nsmc-gen serve MODEL`` does all of this)::

    PYTHONPATH=<this file's folder> python -m vllm.entrypoints.openai.api_server --model MODEL \\
        --logits-processors nsmc_gen_vllm:NsmcGenLogitsProcessor

This file imports only the standard library, torch, vLLM and ``processors.py`` (torch and the
``LogitsProcessor`` base class of whatever transformers vLLM brings): found beside this file (a model
folder's ``custom_generate/`` carries both), one folder up (the nsmc_gen package), or as
``nsmc_gen.processors``. So vLLM's own environment (transformers < 5.20) can run it without the rest of
nsmc-gen.

What it does per request, in transformers' order (the order of ``custom_generate/generate.py``):
strict-capable repetition penalty (prompt and output, pad never penalised) -> when sampling:
temperature -> the model's length prior (an EOS bias per generated-token count) -> top-k and the
nucleus (top-p), with EOS keeping its untruncated probability when the model's
``keep_eos_probability`` says so.

Never both: vLLM applies its own penalties, temperature and top-k/top-p AFTER custom processors,
which would break that order and apply a second cut. So :meth:`NsmcGenLogitsProcessor.validate_params`
(which vLLM runs on each request's own, freshly built ``SamplingParams`` before the engine copies them)
takes the request's ``repetition_penalty``, ``temperature``, ``top_k`` and ``top_p`` (the server fills
them from ``generation_config.json`` when the request leaves them out) into ``extra_args`` and sets
vLLM's to their neutral values; this processor then applies them. A greedy request (temperature 0)
keeps vLLM's argmax and gets the penalty only, as ``do_sample=False`` does in transformers.

Per-request settings of our own go in ``vllm_xargs`` (``SamplingParams.extra_args``):
``repetition_penalty`` (a number > 0 or ``"inf"``: the strict form, which vLLM's own field refuses),
``keep_eos_probability`` (true/false), ``length_prior`` (true: the model's; false: none; or a list
of EOS biases). ``guidance_scale`` other than 1 is refused: vLLM cannot run classifier-free guidance
(it needs a second sequence per request). Defaults come from the model's ``generation_config.json``
(``keep_eos_probability``, ``length_prior``, ``eos_token_id``, ``pad_token_id``), read through vLLM's
own ``ModelConfig`` (a folder, a Hub id, ``--generation-config`` and ``--override-generation-config``
all work).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from vllm import SamplingParams
from vllm.exceptions import VLLMValidationError
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

# generation_config.json's fields of our own; the same names as nsmc_gen.custom_generate.generate's
# (that file needs transformers' generation classes; tests/test_serving.py checks they agree).
GUIDANCE_FIELD = "sentiment_guidance"
KEEP_EOS_FIELD = "keep_eos_probability"
LENGTH_PRIOR_FIELD = "length_prior"

# extra_args key holding the standard settings this processor took over from vLLM (see the docstring)
TAKEN = "nsmc_gen"
# vllm_xargs a request may set, and what each one means (for the error on an unknown one)
REQUEST_SETTINGS = {
    "repetition_penalty": "a number > 0, or 'inf' (never repeat a token)",
    KEEP_EOS_FIELD: "true or false",
    LENGTH_PRIOR_FIELD: "true (the model's), false (none) or a list of finite numbers",
    "guidance_scale": "1 only (vLLM cannot run guidance)",
}
# extra_args keys vLLM itself puts there (the server copies kv/ec transfer parameters into them)
VLLM_OWN_EXTRA_ARGS = frozenset({"kv_transfer_params", "ec_transfer_params"})
_SAMPLING_EPS = 1e-5  # vLLM's: a temperature below it is greedy


def _load_processors() -> ModuleType:
    """nsmc_gen's processors.py: beside this file, one folder up, or the installed package."""
    here = Path(__file__).resolve().parent
    for path in (here / "processors.py", here.parent / "processors.py"):
        if path.is_file():
            name = "_nsmc_gen_vllm_processors"
            if name not in sys.modules:
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[name] = module
            return sys.modules[name]
    try:
        return importlib.import_module("nsmc_gen.processors")
    except ImportError as error:
        raise ImportError(
            f"{__file__} needs nsmc_gen's processors.py beside it (a model folder's custom_generate/ "
            "has it) or `pip install --no-deps nsmc-gen` in this environment"
        ) from error


P = _load_processors()


def _invalid(name: str, value: Any, valid: str) -> VLLMValidationError:
    return VLLMValidationError(f"{name} must be {valid}, got {value!r}", parameter=name, value=value)


def _bool(name: str, value: Any) -> bool:
    # vllm_xargs values are str, int, float or lists of them: JSON true arrives as 1
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _invalid(name, value, "true or false")


def _penalty(name: str, value: Any) -> float:
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _invalid(name, value, REQUEST_SETTINGS["repetition_penalty"]) from None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not number > 0:
        raise _invalid(name, value, REQUEST_SETTINGS["repetition_penalty"])
    return float(number)


def _prior(name: str, value: Any) -> bool | list[float]:
    if isinstance(value, list):
        if all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in value):
            return [float(b) for b in value]
        raise _invalid(name, value, REQUEST_SETTINGS[LENGTH_PRIOR_FIELD])
    try:
        return _bool(name, value)
    except VLLMValidationError:
        raise _invalid(name, value, REQUEST_SETTINGS[LENGTH_PRIOR_FIELD]) from None


def _check_taken(taken: Any, params: SamplingParams) -> None:
    """What :meth:`NsmcGenLogitsProcessor.validate_params` took over, checked when it meets it again."""
    name = f"vllm_xargs.{TAKEN}"
    greedy = params.temperature < _SAMPLING_EPS
    neutral = params.repetition_penalty == 1.0 and (
        greedy or (params.temperature == 1.0 and params.top_k in (0, -1) and params.top_p == 1.0)
    )
    valid = {
        "repetition_penalty": lambda v: _penalty(name, v) > 0,
        "temperature": lambda v: isinstance(v, (int, float)) and 0 < v < math.inf,
        "top_k": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "top_p": lambda v: isinstance(v, (int, float)) and 0 < v <= 1,
    }
    if (
        not neutral
        or not isinstance(taken, dict)
        or "repetition_penalty" not in taken
        or not all(key in valid and valid[key](value) for key, value in taken.items())
    ):
        raise _invalid(name, taken, "left to the server (it moves the standard settings there)")


def check_request_settings(extra_args: Mapping[str, Any]) -> dict[str, Any]:
    """The request's own settings (``vllm_xargs``) checked and normalised; a 400 naming a bad one.

    Example:
        >>> check_request_settings({"repetition_penalty": "inf", "keep_eos_probability": 0})
        {'repetition_penalty': inf, 'keep_eos_probability': False}
    """
    settings: dict[str, Any] = {}
    for key, value in extra_args.items():
        name = f"vllm_xargs.{key}"
        if key in VLLM_OWN_EXTRA_ARGS or key == TAKEN:
            continue
        if key == "guidance_scale":
            if value not in (1, 1.0, "1", "1.0"):
                raise VLLMValidationError(
                    f"{name}: sentiment guidance is not available through vLLM: classifier-free guidance "
                    "needs a second sequence (the prompt with the opposite sentiment) run beside each "
                    "request, which vLLM cannot do. Leave guidance_scale out (or 1), or use `nsmc-gen "
                    "generate` / the model with trust_remote_code=True, which guide by default",
                    parameter=name,
                    value=value,
                )
        elif key == "repetition_penalty":
            settings[key] = _penalty(name, value)
        elif key == KEEP_EOS_FIELD:
            settings[key] = _bool(name, value)
        elif key == LENGTH_PRIOR_FIELD:
            settings[key] = _prior(name, value)
        else:
            known = ", ".join(REQUEST_SETTINGS)
            raise VLLMValidationError(
                f"{name} is not a setting of this server's decoding (nsmc-gen): the known ones are {known}",
                parameter=name,
                value=value,
            )
    return settings


@dataclass(frozen=True)
class Settings:
    """One request's decoding, resolved; requests with equal settings are processed as one batch."""

    penalty: float = 1.0
    sampling: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    keep_eos: bool = False
    prior: tuple[float, ...] | None = None

    def is_identity(self) -> bool:
        return self.penalty == 1.0 and not (
            self.sampling and (self.temperature != 1.0 or self.top_k > 0 or self.top_p < 1.0 or self.prior)
        )


@dataclass
class _Request:
    settings: Settings
    prompt_ids: list[int]
    output_ids: list[int]  # vLLM's live list: it grows as the request generates


class NsmcGenLogitsProcessor(LogitsProcessor):
    """nsmc-gen's decoding as a vLLM V1 logits processor (see the module docstring).

    Example (offline; the server takes ``--logits-processors nsmc_gen_vllm:NsmcGenLogitsProcessor``):

    ```python
    >>> from vllm import LLM, SamplingParams  # doctest: +SKIP
    >>> llm = LLM("path/to/model", logits_processors=[NsmcGenLogitsProcessor])  # doctest: +SKIP
    >>> params = SamplingParams(top_p=0.8, repetition_penalty=1.2, seed=0,
    ...                         extra_args={"repetition_penalty": "inf"})  # doctest: +SKIP
    >>> llm.generate(["긍정"], params)  # doctest: +SKIP
    ```
    """

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        """Check the request's ``vllm_xargs`` and take vLLM's penalty and sampling cuts over.

        Runs on the request's own ``SamplingParams`` (built per request by the server) before the
        engine copies them; a second run leaves them as they are.
        """
        extra = dict(sampling_params.extra_args or {})
        ours = check_request_settings(extra)
        if TAKEN in extra:  # validated before: vLLM's own settings must be the neutral ones we left
            _check_taken(extra[TAKEN], sampling_params)
            return
        taken = {"repetition_penalty": ours.get("repetition_penalty", sampling_params.repetition_penalty)}
        sampling_params.repetition_penalty = 1.0
        if sampling_params.temperature >= _SAMPLING_EPS:
            taken.update(
                temperature=sampling_params.temperature,
                top_k=max(sampling_params.top_k, 0),
                top_p=sampling_params.top_p,
            )
            sampling_params.temperature, sampling_params.top_k, sampling_params.top_p = 1.0, 0, 1.0
        extra[TAKEN] = taken
        sampling_params.extra_args = extra

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool):
        model_config = vllm_config.model_config
        config = dict(model_config.try_get_generation_config())
        config.update(model_config.override_generation_config or {})
        eos = config.get("eos_token_id")
        if eos is None:
            eos = getattr(model_config.hf_config, "eos_token_id", None)
        self.eos_token_id = [] if eos is None else sorted({eos} if isinstance(eos, int) else set(eos))
        pad = config.get("pad_token_id")
        self.pad_token_id = pad if isinstance(pad, int) else None
        self.keep_eos = bool(config.get(KEEP_EOS_FIELD, False))
        prior = config.get(LENGTH_PRIOR_FIELD) or None
        self.prior = None if prior is None else tuple(_prior(LENGTH_PRIOR_FIELD, list(prior)))
        self.requests: dict[int, _Request] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # the penalty, the length prior and the EOS share all move the argmax

    def settings_for(self, params: SamplingParams) -> Settings | None:
        """A request's resolved settings; None when this processor leaves it to vLLM (no taken settings:
        the request did not pass :meth:`validate_params`)."""
        extra = params.extra_args or {}
        taken = extra.get(TAKEN)
        if taken is None:
            return None
        ours = check_request_settings(extra)
        prior = ours.get(LENGTH_PRIOR_FIELD, True)
        prior = self.prior if prior is True else (tuple(prior) or None if prior else None)
        settings = Settings(
            penalty=float(taken["repetition_penalty"]),
            sampling="temperature" in taken,
            temperature=float(taken.get("temperature", 1.0)),
            top_k=int(taken.get("top_k", 0)),
            top_p=float(taken.get("top_p", 1.0)),
            keep_eos=ours.get(KEEP_EOS_FIELD, self.keep_eos) and bool(self.eos_token_id),
            prior=prior if self.eos_token_id else None,
        )
        return None if settings.is_identity() else settings

    def _new_request(self, params: SamplingParams, prompt_ids: list[int] | None, output_ids: list[int]):
        settings = self.settings_for(params)
        if settings is None:
            return None
        return _Request(settings, list(prompt_ids or []), output_ids)

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.requests, batch_update, self._new_request)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        groups: dict[Settings, list[int]] = {}
        for index, request in self.requests.items():
            groups.setdefault(request.settings, []).append(index)
        for settings, indices in groups.items():
            rows = torch.tensor(indices, device=logits.device)
            histories = [self.requests[i].prompt_ids + self.requests[i].output_ids for i in indices]
            generated = [len(self.requests[i].output_ids) for i in indices]
            logits[rows] = decode_step(
                logits[rows], settings, histories, generated, self.eos_token_id, self.pad_token_id
            )
        return logits


def decode_step(
    scores: torch.Tensor,
    settings: Settings,
    histories: Sequence[Sequence[int]],
    generated: Sequence[int],
    eos_token_id: Sequence[int],
    pad_token_id: int | None,
) -> torch.Tensor:
    """One step of our decoding on rows that share ``settings``: the pure functions, in transformers' order.

    Args:
        scores: ``(rows, vocabulary)`` logits.
        histories: each row's prompt and generated token ids (what the penalty counts as seen).
        generated: each row's generated-token count (the length prior's step).

    Example:
        >>> s = Settings(penalty=float("inf"), sampling=True, top_p=0.5)
        >>> decode_step(torch.tensor([[3.0, 2.0, 1.0]]), s, [[0]], [1], [2], None)
        tensor([[-inf, 2., -inf]])
    """
    vocab = scores.shape[-1]
    if settings.penalty != 1.0:
        width = max(map(len, histories))
        # ids >= vocabulary are ignored by the penalty: rows of different lengths are padded with one
        seen = torch.tensor([list(h) + [vocab] * (width - len(h)) for h in histories], device=scores.device)
        scores = P.repetition_penalty(scores, seen, settings.penalty, pad_token_id)
    if not settings.sampling:
        return scores
    if settings.temperature != 1.0:
        scores = scores / settings.temperature  # transformers' TemperatureLogitsWarper
    if settings.prior:
        bias = torch.tensor([P.length_prior_bias(settings.prior, g) for g in generated])
        scores = P.add_eos_bias(scores, eos_token_id, bias.to(scores.device))

    def cut(x: torch.Tensor) -> torch.Tensor:
        if settings.top_k > 0:
            x = P.top_k_cut(x, settings.top_k)
        if settings.top_p < 1.0:
            x = P.nucleus_cut(x, settings.top_p)
        return x

    if settings.top_k > 0 or settings.top_p < 1.0:
        keep = settings.keep_eos and eos_token_id
        scores = P.keep_eos_probability(scores, eos_token_id, cut) if keep else cut(scores)
    return scores
