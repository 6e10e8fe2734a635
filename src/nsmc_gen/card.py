"""The model card: ``model_card.md`` (a Jinja template) filled with a finished folder's real figures.

Rendering only, and it imports nothing back: :func:`nsmc_gen.model_folder.folder_facts` reads the
folder (config, adapter, decoding defaults, parameter count, ``custom_generate/``, the run facts
whose schema is :class:`nsmc_gen.model_folder.RunFacts`) into a :class:`FolderFacts`, defined here
as what the card takes, and :func:`nsmc_gen.model_folder.save_model_card` writes the card. A figure
the folder does not record shows as "not recorded" (or its row is left out) and stays out of the
metadata, so the card never invents one. Every figure names the data it was measured on in words
that cannot be read as NSMC's official split (the shipped sample and the NSMC rebuild are not NSMC).

Example:
    >>> from nsmc_gen.model_folder import folder_facts
    >>> card = render_card(folder_facts("out/kogpt2-nsmc"), "org/kogpt2-nsmc")  # doctest: +SKIP
    >>> card.data.pipeline_tag, card.data.language  # doctest: +SKIP
    ('text-generation', 'ko')
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

DEFAULT_DATASET = "e9t/nsmc"
OFFICIAL_SOURCE = "https://raw.githubusercontent.com/e9t/nsmc/"  # the official files (nsmc_gen.data.NSMC_URL)
SHIPPED_SAMPLE = "nsmc-gen's shipped NSMC sample"  # nsmc_gen.training's words for its default data
# The usage code's repository id when the card is rendered without one (a local folder): its name is
# no Hub id (and "embedded" is the keyword for the shipped base). `nsmc-gen push` renders the real id.
PLACEHOLDER_ID = "your-name/your-model"
# Recipe options a reproduction leaves out: where this run wrote, and how it published.
_PRIVATE_OPTIONS = {"output_dir", "push_to_hub", "hub_model_id", "hub_token", "hub_private_repo", "token"}


@dataclass(frozen=True)
class FolderFacts:
    """Everything the card states, read from one folder, so that card and folder cannot disagree.

    Attributes:
        run: ``nsmc_gen_run.json`` as written (the keys of :class:`nsmc_gen.model_folder.RunFacts`).
        config: ``config.json`` (architecture, context, vocabulary; empty for an adapter).
        generation: ``generation_config.json`` (the decoding ``pipeline`` and ``generate`` apply).
        is_adapter: the folder holds a LoRA adapter (``adapter_config.json``).
        merged: LoRA weights merged into full weights.
        base_model: the run's name for the base ("embedded", a Hub id), else the adapter's.
        peft: the adapter's settings (``r``, ``alpha``, ``dropout``, ``target_modules``), if any.
        parameters: parameters in the safetensors files (their headers).
        has_custom_generate: ``custom_generate/generate.py`` ships with the model.
    """

    run: Mapping[str, Any]
    config: Mapping[str, Any]
    generation: Mapping[str, Any]
    is_adapter: bool
    merged: bool
    base_model: str | None
    peft: Mapping[str, Any] | None
    parameters: int | None
    has_custom_generate: bool


@dataclass(frozen=True)
class DataWords:
    """How the card names the data a figure was measured on (:func:`data_words`)."""

    training: str  #: the training data, as a table cell
    validation: str  #: the validation reviews
    test: str  #: the test reviews of ``test_perplexity``
    slug: str  #: model-index ``dataset_type``: a Hub id only for the official files
    official: bool  #: the training data is NSMC's official files


def data_words(run: Mapping[str, Any]) -> DataWords:
    """Names for the run's data that cannot be mistaken for NSMC's official split.

    Example:
        >>> words = data_words({"data_source": SHIPPED_SAMPLE})
        >>> words.official, "NSMC rebuild" in words.training, "not an official" in words.validation
        (False, True, True)
    """
    source = run.get("data_source") or ""
    test = run.get("test_data") or "the test reviews given to `nsmc-gen evaluate` (which ones: not recorded)"
    if source == SHIPPED_SAMPLE:
        return DataWords(
            training="nsmc-gen's shipped sample, drawn from an NSMC rebuild (not the official NSMC files)",
            validation="the shipped sample's validation reviews, held out from training "
            "(not an official NSMC split)",
            test=test,
            slug="nsmc-gen-sample-of-nsmc-rebuild",
            official=False,
        )
    if source.startswith(OFFICIAL_SOURCE):
        return DataWords(
            training="NSMC (the official e9t/nsmc files)",
            validation="reviews carved from NSMC train, held out from training "
            "(NSMC has no validation split)",
            test=test,
            slug=run.get("dataset") or DEFAULT_DATASET,
            official=True,
        )
    return DataWords(
        training="NSMC-format files from a local folder (not known to be the official NSMC files)",
        validation="reviews held out from that training data (not an official NSMC split)",
        test=test,
        slug="local-nsmc-format-files",
        official=False,
    )


def reproduce_command(command: str, processes: int | None = None) -> str:
    """The recorded command as one that runs from a clone of nsmc-gen: ``accelerate launch
    recipes/finetune.py`` with the run's options, without where it wrote or published, with paths
    inside the project made relative, the default data left to its default, and tokens redacted.

    Example:
        >>> reproduce_command("/home/me/nsmc-gen/recipes/finetune.py --output_dir /tmp/x --max_steps 9")
        'accelerate launch recipes/finetune.py --max_steps 9'
        >>> reproduce_command("recipes/finetune.py --config /srv/nsmc-gen/recipes/kogpt2/lora.yaml", 4)
        'accelerate launch --num_processes 4 recipes/finetune.py --config recipes/kogpt2/lora.yaml'
    """
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if words[:2] == ["accelerate", "launch"]:
        words = words[2:]
        while words and words[0].startswith("--") and not words[0].endswith(".py"):
            words = words[1:] if "=" in words[0] else words[2:]  # launcher options: stated below
    script = words[0] if words else "recipes/finetune.py"
    script = _project_path(script) or f"recipes/{Path(script).name}"
    options, rest = [], words[1:]
    while rest:
        word, rest = rest[0], rest[1:]
        key, value = word, None
        if word.startswith("--") and "=" in word:
            key, value = word.split("=", 1)
        elif word.startswith("--") and rest and not rest[0].startswith("--"):
            value, rest = rest[0], rest[1:]
        name = key[2:] if key.startswith("--") else None
        if name in _PRIVATE_OPTIONS:
            continue
        if name == "data_dir" and value and value.rstrip("/").endswith("assets/nsmc-sample"):
            continue  # the shipped sample: the default
        if value is not None and (Path(value).is_absolute() or value.startswith("~")):
            value = _project_path(value) or f"path/to/{Path(value).name}"
        options += [key] if value is None else [key, value]
    launch = ["accelerate", "launch", *(["--num_processes", str(processes)] if (processes or 1) > 1 else [])]
    return redact_tokens(shlex.join([*launch, script, *options]))


def _project_path(path: str) -> str | None:
    """``recipes/...`` of a path inside a clone of the project, else None."""
    parts = Path(path).parts
    return "/".join(parts[parts.index("recipes") :]) if "recipes" in parts else None


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
    """The card's YAML metadata: what the Hub reads (language, license, base model, results, ...).

    Every model-index entry names its data as :func:`data_words` does; ``datasets`` links
    ``e9t/nsmc`` only when the run trained on the official files.
    """
    run, base = facts.run, facts.base_model
    words = data_words(run)
    license_ = run.get("license") or base_license(base)
    hub_base = hub_model_id(base)
    tags = ["korean", "nsmc", "movie-reviews", "sentiment", "nsmc-gen"]
    if facts.config.get("model_type"):
        tags.append(facts.config["model_type"])
    if facts.peft:
        tags.append("lora")
    task = {"task_type": "text-generation", "task_name": "Sentiment-conditioned review generation"}
    results = []
    if run.get("eval_perplexity") is not None:
        results.append(
            EvalResult(
                **task,
                dataset_type=words.slug,
                dataset_name=f"validation: {words.validation}; training data: {words.training}",
                dataset_split="held-out-validation",
                metric_type="perplexity",
                metric_name=f"Perplexity on {words.validation}",
                metric_value=round(float(run["eval_perplexity"]), 3),
            )
        )
    if run.get("test_perplexity") is not None:
        results.append(
            EvalResult(
                **task,
                dataset_type="recorded-test-data" if run.get("test_data") else "unrecorded-test-data",
                dataset_name=words.test,
                dataset_split="test",
                metric_type="perplexity",
                metric_name=f"Perplexity on {words.test}",
                metric_value=round(float(run["test_perplexity"]), 3),
            )
        )
    if run.get("sentiment_control") is not None:
        results.append(
            EvalResult(
                **task,
                dataset_type="generated-reviews",
                dataset_name="reviews this model generated (nsmc-gen evaluate, default decoding)",
                metric_type="accuracy",
                metric_name="Sentiment control (generated reviews judged on the asked side by an "
                "independent TF-IDF judge)",
                metric_value=round(float(run["sentiment_control"]), 4),
            )
        )
    return ModelCardData(
        language="ko",
        license=license_,
        library_name="peft" if facts.is_adapter else "transformers",
        pipeline_tag="text-generation",
        tags=tags,
        datasets=[words.slug] if words.official else None,
        base_model=hub_base,
        base_model_relation=("adapter" if facts.is_adapter else "finetune") if hub_base else None,
        model_name=model_name,
        eval_results=results or None,
    )


def _public_source(source: str | None) -> str | None:
    """Where the data came from, without publishing a path on the user's disk."""
    if source and (Path(source).is_absolute() or source.startswith((".", "~"))):
        return "a local folder of NSMC-format files"
    return source


def _lengths(run: Mapping[str, Any]) -> dict[str, dict[str, str]] | None:
    """``review_lengths`` formatted for the card's table, or None when not recorded."""
    lengths = run.get("review_lengths")
    if not isinstance(lengths, Mapping) or not all(k in lengths for k in ("reference", "plain", "nsmc_gen")):
        return None
    return {
        path: {
            "mean": _fmt(figures.get("mean_characters"), ".1f") or "not recorded",
            "short": _fmt(figures.get("share_under_5"), ".1%") or "not recorded",
            "reviews": _fmt(figures.get("reviews"), ",") or "not recorded",
        }
        for path, figures in lengths.items()
        if isinstance(figures, Mapping)
    }


def _plain_eos_bias(generation: Mapping[str, Any]) -> str | None:
    """The constant EOS bias ``sequence_bias`` gives plain clients (list form), formatted."""
    eos = generation.get("eos_token_id")
    eos = {eos} if isinstance(eos, int) else set(eos or [])
    biases = {
        entry[1]
        for entry in generation.get("sequence_bias") or []
        if isinstance(entry, (list, tuple))
        and len(entry) == 2
        and list(entry[0])[-1:]
        and entry[0][-1] in eos
    }
    return f"{biases.pop():+.2f}" if len(biases) == 1 else None


def template_values(facts: FolderFacts, model_id: str | None, model_name: str) -> dict[str, Any]:
    """The Jinja variables of ``model_card.md``: preformatted strings, ``None`` when unknown.

    ``model_id`` is the Hub id the usage code names; None renders :data:`PLACEHOLDER_ID`, which
    the card says to replace.
    """
    from nsmc_gen.decoding import DECODING_DEFAULTS  # the keys to show, in their order

    run, config, generation = facts.run, facts.config, facts.generation
    words = data_words(run)
    decoding = {key: generation.get(key) for key in DECODING_DEFAULTS}
    peft = dict(facts.peft) if facts.peft else None
    if peft and peft.get("target_modules") is not None:
        peft["target_modules"] = ", ".join(peft["target_modules"])
    runtime = run.get("train_runtime_s")
    command = run.get("command")
    return {
        "model_id": model_id or PLACEHOLDER_ID,
        "id_is_placeholder": model_id is None,
        "model_name": model_name,
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
        "min_new_tokens": decoding.get("min_new_tokens") or 0,
        "plain_eos_bias": _plain_eos_bias(generation),
        "has_length_prior": bool(generation.get("length_prior")),
        "review_lengths": _lengths(run),
        "has_custom_generate": facts.has_custom_generate,
        "guidance_scale": (generation.get("sentiment_guidance") or {}).get("scale"),
        "data": words.training,
        "data_is_official": words.official,
        "validation_data": words.validation,
        "test_data": words.test,
        # the shipped sample is named in the data row already, and "NSMC sample" alone would mislead
        "data_source": None
        if run.get("data_source") == SHIPPED_SAMPLE
        else _public_source(run.get("data_source")),
        "train_rows": _fmt(run.get("train_rows"), ","),
        "validation_rows": _fmt(run.get("validation_rows"), ","),
        "epochs": _fmt(run.get("epochs"), ".2f"),
        "global_step": _fmt(run.get("global_step"), ","),
        "train_tokens": _fmt(run.get("train_tokens"), ","),
        "learning_rate": _fmt(run.get("learning_rate"), ".2e"),
        "max_steps": _fmt(run.get("max_steps"), ","),
        "lr_scheduler": _fmt(run.get("lr_scheduler")),
        "precision": _fmt(run.get("precision")),
        "packing": run.get("packing"),
        "batch_size": _fmt(run.get("batch_size")),
        "max_length": _fmt(run.get("max_length")),
        "seed": _fmt(run.get("seed")),
        "train_runtime": _fmt(None if runtime is None else runtime / 60, ".1f"),
        "hardware": _fmt(run.get("hardware")),
        "eval_loss": _fmt(run.get("eval_loss"), ".4f"),
        "eval_perplexity": _fmt(run.get("eval_perplexity"), ".2f"),
        "test_perplexity": _fmt(run.get("test_perplexity"), ".2f"),
        "sentiment_control": _fmt(run.get("sentiment_control"), ".1%"),
        "peft": {k: _fmt(v) for k, v in peft.items()} if peft else None,
        "command": reproduce_command(command, run.get("processes")) if command else None,
        "decoding_study": run.get("decoding_study"),
        "license": run.get("license") or base_license(facts.base_model),
    }


def render_card(
    facts: FolderFacts,
    model_id: str | None,
    template: str | Path | None = None,
    model_name: str | None = None,
) -> ModelCard:
    """The model card of a folder's facts, checked the way the Hub reads it.

    Args:
        facts: :func:`nsmc_gen.model_folder.folder_facts` of the folder.
        model_id: the Hub id the card's usage code names (``nsmc-gen push`` passes the id it pushes
            to); None: :data:`PLACEHOLDER_ID`, which the card says to replace.
        template: a Jinja template with a ``{{ card_data }}`` YAML header; default ``model_card.md``.
        model_name: the card's title and model-index name (default: the id's name part).

    Raises:
        FileNotFoundError: no template.
        ValueError: a template whose output has no metadata.
    """
    template = Path(template) if template is not None else default_template()
    name = model_name or (model_id or PLACEHOLDER_ID).split("/")[-1]
    card = ModelCard.from_template(
        card_data(facts, model_name=name),
        template_path=str(template),
        **template_values(facts, model_id, name),
    )
    # Re-parse the text: the Hub reads the text, so check what it will read, not the object.
    parsed = ModelCard(str(card), ignore_metadata_errors=False)
    if not parsed.data.to_dict():
        raise ValueError(
            f"template {template} produced a card without YAML metadata "
            "(it needs a '---' header holding '{{ card_data }}')"
        )
    return parsed
