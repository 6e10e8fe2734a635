"""The model card: ``model_card.md`` (a Jinja template) filled with a finished folder's real figures.

Rendering only: :func:`nsmc_gen.model_folder.folder_facts` reads the folder (config, adapter,
decoding defaults, parameter count, ``custom_generate/``, the run facts whose schema is
:class:`nsmc_gen.model_folder.RunFacts`) and :func:`nsmc_gen.model_folder.save_model_card` writes
the card; here those facts become the card's metadata and text. A figure the folder does not
record shows as "not recorded" (or its row is left out) and stays out of the metadata, so the
card never invents one.

Example:
    >>> from nsmc_gen.model_folder import folder_facts
    >>> card = render_card(folder_facts("out/kogpt2-nsmc"), "org/kogpt2-nsmc")  # doctest: +SKIP
    >>> card.data.pipeline_tag, card.data.language  # doctest: +SKIP
    ('text-generation', 'ko')
"""

from __future__ import annotations

import re
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

if TYPE_CHECKING:
    from nsmc_gen.model_folder import FolderFacts

DEFAULT_DATASET = "e9t/nsmc"
# The template ships in the package once packaged; a source checkout keeps it at the top level.
_TEMPLATE_CANDIDATES = (
    Path(str(resources.files("nsmc_gen") / "assets" / "model_card.md")),
    Path(__file__).resolve().parents[2] / "model_card.md",
)
_TOKEN_PATTERNS = (
    re.compile(r"hf_[A-Za-z0-9]{8,}"),
    re.compile(r"(--(?:hub_)?token[= ])\S+"),
)


def default_template() -> Path:
    """The model card template: ``model_card.md``."""
    for candidate in _TEMPLATE_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"model card template not found; looked in {[str(c) for c in _TEMPLATE_CANDIDATES]}"
    )


def _model_names() -> tuple[str, str]:
    """``(EMBEDDED, KOGPT2)``, imported on use: ``nsmc_gen.modeling`` imports torch (seconds)."""
    from nsmc_gen.modeling import EMBEDDED, KOGPT2

    return EMBEDDED, KOGPT2


def base_license(base_model: str | None) -> str | None:
    """The licence fine-tuned weights inherit from their base (KoGPT2's is non-commercial).

    ``None`` for other bases: the card then points to the base model's licence rather than guess.
    """
    embedded, kogpt2 = _model_names()
    licenses = {kogpt2: "cc-by-nc-sa-4.0", embedded: "apache-2.0", None: "apache-2.0"}
    return licenses.get(base_model)


def redact_tokens(text: str) -> str:
    """Replace anything that looks like a Hub token (``hf_...``, ``--hub_token X``) with ``***``."""
    text = _TOKEN_PATTERNS[0].sub("***", text)
    return _TOKEN_PATTERNS[1].sub(r"\1***", text)


def _human_count(n: int | None) -> str | None:
    if n is None:
        return None
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f} {suffix}"
    return str(n)


def _fmt(value: Any, spec: str = "") -> str | None:
    """``value`` formatted for the card; ``None`` (the template says "not recorded") when unknown."""
    if value is None:
        return None
    return format(value, spec) if spec and isinstance(value, (int, float)) else str(value)


def hub_model_id(base_model: str | None) -> str | None:
    """``base_model`` if it names a Hub repository (``namespace/name``), else None: ``embedded`` and
    local folders are no id the Hub can link, nor one others can load.

    Example:
        >>> hub_model_id("skt/kogpt2-base-v2"), hub_model_id("embedded"), hub_model_id("/tmp")
        ('skt/kogpt2-base-v2', None, None)
    """
    is_hub_id = bool(base_model) and base_model.count("/") == 1 and not Path(base_model).exists()
    return base_model if is_hub_id else None


def card_data(facts: FolderFacts, model_name: str) -> ModelCardData:
    """The card's YAML metadata: what the Hub reads (language, license, base model, results, ...)."""
    run, base = facts.run, facts.base_model
    dataset = run.dataset or DEFAULT_DATASET
    license_ = run.license or base_license(base)
    hub_base = hub_model_id(base)
    tags = ["korean", "nsmc", "movie-reviews", "sentiment", "nsmc-gen"]
    if facts.config.get("model_type"):
        tags.append(facts.config["model_type"])
    if facts.peft:
        tags.append("lora")
    results = [
        EvalResult(
            task_type="text-generation",
            task_name="Sentiment-conditioned review generation",
            dataset_type=dataset,
            dataset_name="NSMC (Naver Sentiment Movie Corpus)",
            dataset_split=split,
            metric_type="perplexity",
            metric_name=f"Perplexity (NSMC {split})",
            metric_value=round(float(value), 3),
        )
        for split, value in (("validation", run.eval_perplexity), ("test", run.test_perplexity))
        if value is not None
    ]
    if run.sentiment_control is not None:
        results.append(
            EvalResult(
                task_type="text-generation",
                dataset_type=dataset,
                dataset_name="NSMC (Naver Sentiment Movie Corpus)",
                metric_type="accuracy",
                metric_name="Sentiment control (generated reviews judged on the asked side)",
                metric_value=round(float(run.sentiment_control), 4),
            )
        )
    return ModelCardData(
        language="ko",
        license=license_,
        library_name="peft" if facts.is_adapter else "transformers",
        pipeline_tag="text-generation",
        tags=tags,
        datasets=[dataset],
        base_model=hub_base,
        base_model_relation=("adapter" if facts.is_adapter else "finetune") if hub_base else None,
        model_name=model_name,
        eval_results=results or None,
    )


def _public_source(source: str | None) -> str | None:
    """Where the data came from, without publishing a path on the user's disk."""
    if source and (Path(source).is_absolute() or source.startswith((".", "~"))):
        return "a local copy of the NSMC files"
    return source


def template_values(facts: FolderFacts, model_id: str) -> dict[str, Any]:
    """The Jinja variables of ``model_card.md``: preformatted strings, ``None`` when unknown."""
    from nsmc_gen.decoding import DECODING_DEFAULTS  # the keys to show, in their order

    run, config, generation = facts.run, facts.config, facts.generation
    decoding = {key: generation.get(key) for key in DECODING_DEFAULTS}
    peft = asdict(facts.peft) if facts.peft else None
    if peft and peft["target_modules"] is not None:
        peft["target_modules"] = ", ".join(peft["target_modules"])
    return {
        "model_id": model_id,
        "model_name": model_id.split("/")[-1],
        "base_model": facts.base_model or "none (trained from random initialisation)",
        "base_is_embedded": facts.base_model == _model_names()[0],
        "is_adapter": facts.is_adapter,
        "merged": facts.merged,
        "architecture": config.get("model_type"),
        "n_layer": _fmt(config.get("n_layer", config.get("num_hidden_layers"))),
        "n_embd": _fmt(config.get("n_embd", config.get("hidden_size"))),
        "n_positions": _fmt(config.get("n_positions", config.get("max_position_embeddings"))),
        "vocab_size": _fmt(config.get("vocab_size")),
        "parameters": _human_count(facts.parameters),
        "decoding": {key: _fmt(value) for key, value in decoding.items() if value is not None},
        "decoding_kwargs": ", ".join(f"{k}={v!r}" for k, v in decoding.items() if v is not None),
        "has_custom_generate": facts.has_custom_generate,
        "guidance_scale": (generation.get("sentiment_guidance") or {}).get("scale"),
        "dataset": run.dataset or DEFAULT_DATASET,
        "data_source": _public_source(run.data_source),
        "train_rows": _fmt(run.train_rows, ","),
        "validation_rows": _fmt(run.validation_rows, ","),
        "epochs": _fmt(run.epochs, ".2f"),
        "global_step": _fmt(run.global_step, ","),
        "train_tokens": _fmt(run.train_tokens, ","),
        "learning_rate": _fmt(run.learning_rate, ".2e"),
        "max_steps": _fmt(run.max_steps, ","),
        "lr_scheduler": _fmt(run.lr_scheduler),
        "precision": _fmt(run.precision),
        "packing": run.packing,
        "batch_size": _fmt(run.batch_size),
        "max_length": _fmt(run.max_length),
        "seed": _fmt(run.seed),
        "train_runtime": _fmt(None if run.train_runtime_s is None else run.train_runtime_s / 60, ".1f"),
        "hardware": _fmt(run.hardware),
        "eval_loss": _fmt(run.eval_loss, ".4f"),
        "eval_perplexity": _fmt(run.eval_perplexity, ".2f"),
        "test_perplexity": _fmt(run.test_perplexity, ".2f"),
        "sentiment_control": _fmt(run.sentiment_control, ".1%"),
        "peft": {k: _fmt(v) for k, v in peft.items()} if peft else None,
        "command": redact_tokens(run.command) if run.command else None,
        "decoding_study": run.decoding_study,
    }


def render_card(facts: FolderFacts, model_id: str, template: str | Path | None = None) -> ModelCard:
    """The model card of a folder's facts, checked the way the Hub reads it.

    Args:
        facts: :func:`nsmc_gen.model_folder.folder_facts` of the folder.
        model_id: the Hub id the card's usage examples name.
        template: a Jinja template with a ``{{ card_data }}`` YAML header; default ``model_card.md``.

    Raises:
        FileNotFoundError: no template.
        ValueError: a template whose output has no metadata.
    """
    template = Path(template) if template is not None else default_template()
    card = ModelCard.from_template(
        card_data(facts, model_name=model_id.split("/")[-1]),
        template_path=str(template),
        **template_values(facts, model_id),
    )
    # Re-parse the text: the Hub reads the text, so check what it will read, not the object.
    parsed = ModelCard(str(card), ignore_metadata_errors=False)
    if not parsed.data.to_dict():
        raise ValueError(
            f"template {template} produced a card without YAML metadata "
            "(it needs a '---' header holding '{{ card_data }}')"
        )
    return parsed
