"""The model card: ``model_card.md`` (a Jinja template) filled with a finished run's real figures.

Everything the card states is read from the model folder, so card and folder cannot disagree:

- ``config.json``: architecture, context length, vocabulary (absent in a LoRA adapter folder);
- ``adapter_config.json``: a LoRA adapter's base model, rank, alpha, dropout, target modules;
- ``generation_config.json``: the decoding defaults that ``pipeline`` and ``generate`` apply
  (written from :data:`nsmc_gen.decoding.DECODING_DEFAULTS` by the training recipe);
- ``*.safetensors`` headers: the parameter count;
- ``custom_generate/``: whether the remote-code generation (sentiment guidance) ships with it;
- ``nsmc_gen_run.json`` (:data:`RUN_FACTS`): the run's figures, written by ``nsmc_gen.training``.

The run facts file is one flat JSON object; the card reads the keys below (the recipe may write
more). Every key is optional: a missing figure shows as "not recorded" (or its row is left out)
and stays out of the metadata, so the card never invents a figure.

=================== ============ ===============================================================
key                 type         meaning
=================== ============ ===============================================================
base_model          str | null   Hub id or folder fine-tuned from, ``"embedded"`` (the shipped
                                 base), null when trained from random initialisation
dataset             str          Hub id of the training data (default ``e9t/nsmc``)
data_source         str          where the NSMC files were read from (local paths not published)
train_rows          int          training reviews
validation_rows     int          validation reviews (carved from NSMC train)
epochs              float        epochs completed
global_step         int          optimizer steps completed
max_steps           int | null   the configured step limit, if any
train_tokens        int          tokens trained on (padding excluded)
learning_rate       float        peak learning rate
lr_scheduler        str          learning-rate schedule
batch_size          int          effective batch size (per device x accumulation x processes)
max_length          int          maximum tokens per training example
packing             bool         examples packed into full rows
precision           str          ``float32``, ``bf16``, ...
seed                int          training seed
eval_loss           float        validation loss, nats per token (padding excluded)
eval_perplexity     float        validation perplexity
test_perplexity     float        NSMC test perplexity, if measured
sentiment_control   float        share of generated reviews judged to have the asked sentiment
peft                object|null  ``{"r", "alpha", "dropout", "target_modules": [str]}`` (LoRA)
merged              bool         LoRA weights merged into the base model in this folder
license             str          the weights' licence (default: from the base model)
train_runtime_s     float        training wall time, seconds
hardware            str          e.g. ``"2 CPU cores"``
command             str          the command that reproduces the run (tokens are redacted)
decoding_study      str          Markdown table from ``nsmc-gen evaluate``, shown as is
=================== ============ ===============================================================

Example:
    >>> card = render_model_card("out/kogpt2-nsmc", repo_id="org/kogpt2-nsmc")  # doctest: +SKIP
    >>> card.data.pipeline_tag, card.data.language  # doctest: +SKIP
    ('text-generation', 'ko')
    >>> save_model_card("out/kogpt2-nsmc")  # writes out/kogpt2-nsmc/README.md  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from nsmc_gen.files import write_text_atomic

RUN_FACTS = "nsmc_gen_run.json"  # the training recipe writes it (schema in the docstring)
CARD_FILE = "README.md"
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


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, ``None`` if the file does not exist; errors name the file."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def count_parameters(model_dir: Path) -> int | None:
    """Parameters stored in the folder's safetensors files (read from their headers only)."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(file, framework="pt") as f:
            names = f.keys()  # a safe_open handle is not a mapping
            total += sum(math.prod(f.get_slice(name).get_shape()) for name in names)
    return total


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


def folder_facts(model_dir: str | Path) -> dict[str, Any]:
    """Everything the card needs, read from the folder (see the module docstring)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model_dir {model_dir} is not a folder")
    generation = read_json(model_dir / "generation_config.json")
    if generation is None:
        raise FileNotFoundError(
            f"{model_dir / 'generation_config.json'} is missing: the card states the decoding defaults "
            "the model ships with (write it with nsmc_gen.decoding.recommended_generation_config)"
        )
    run = read_json(model_dir / RUN_FACTS) or {}
    config = read_json(model_dir / "config.json") or {}
    adapter = read_json(model_dir / "adapter_config.json")
    # The run's name for the base ("embedded", a Hub id) over the adapter's loadable path to it.
    base_model = run.get("base_model") or (adapter or {}).get("base_model_name_or_path")
    peft = run.get("peft")
    if adapter is not None:
        peft = {
            "r": adapter.get("r"),
            "alpha": adapter.get("lora_alpha"),
            "dropout": adapter.get("lora_dropout"),
            "target_modules": adapter.get("target_modules"),
        }
    if peft and isinstance(peft.get("target_modules"), (list, tuple, set)):
        peft = {**peft, "target_modules": ", ".join(sorted(peft["target_modules"]))}
    return {
        "run": run,
        "config": config,
        "generation": generation,
        "is_adapter": adapter is not None,
        "merged": bool(run.get("merged")) or (adapter is None and bool(peft)),  # LoRA run, full weights
        "base_model": base_model,
        "peft": peft,
        "parameters": count_parameters(model_dir),
        "has_custom_generate": (model_dir / "custom_generate" / "generate.py").is_file(),
    }


def _hub_base_model(base_model: str | None) -> str | None:
    """A base model id the Hub can link: a Hub id, not ``embedded`` nor a local folder."""
    is_hub_id = bool(base_model) and base_model.count("/") == 1 and not Path(base_model).exists()
    return base_model if is_hub_id else None


def card_data(facts: dict[str, Any], model_name: str) -> ModelCardData:
    """The card's YAML metadata: what the Hub reads (language, license, base model, results, ...)."""
    run, base = facts["run"], facts["base_model"]
    dataset = run.get("dataset") or DEFAULT_DATASET
    license_ = run.get("license") or base_license(base)
    hub_base = _hub_base_model(base)
    tags = ["korean", "nsmc", "movie-reviews", "sentiment", "nsmc-gen"]
    if facts["config"].get("model_type"):
        tags.append(facts["config"]["model_type"])
    if facts["peft"]:
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
        for split, value in (("validation", run.get("eval_perplexity")), ("test", run.get("test_perplexity")))
        if value is not None
    ]
    if run.get("sentiment_control") is not None:
        results.append(
            EvalResult(
                task_type="text-generation",
                dataset_type=dataset,
                dataset_name="NSMC (Naver Sentiment Movie Corpus)",
                metric_type="accuracy",
                metric_name="Sentiment control (generated reviews judged on the asked side)",
                metric_value=round(float(run["sentiment_control"]), 4),
            )
        )
    return ModelCardData(
        language="ko",
        license=license_,
        library_name="peft" if facts["is_adapter"] else "transformers",
        pipeline_tag="text-generation",
        tags=tags,
        datasets=[dataset],
        base_model=hub_base,
        base_model_relation=("adapter" if facts["is_adapter"] else "finetune") if hub_base else None,
        model_name=model_name,
        eval_results=results or None,
    )


def _public_source(source: str | None) -> str | None:
    """Where the data came from, without publishing a path on the user's disk."""
    if source and (Path(source).is_absolute() or source.startswith((".", "~"))):
        return "a local copy of the NSMC files"
    return source


def template_values(facts: dict[str, Any], model_id: str) -> dict[str, Any]:
    """The Jinja variables of ``model_card.md``: preformatted strings, ``None`` when unknown."""
    from nsmc_gen.decoding import DECODING_DEFAULTS  # the keys to show, in their order

    run, config, generation = facts["run"], facts["config"], facts["generation"]
    decoding = {key: generation.get(key) for key in DECODING_DEFAULTS}
    peft = facts["peft"]
    return {
        "model_id": model_id,
        "model_name": model_id.split("/")[-1],
        "base_model": facts["base_model"] or "none (trained from random initialisation)",
        "base_is_embedded": facts["base_model"] == _model_names()[0],
        "is_adapter": facts["is_adapter"],
        "merged": facts["merged"],
        "architecture": config.get("model_type"),
        "n_layer": _fmt(config.get("n_layer", config.get("num_hidden_layers"))),
        "n_embd": _fmt(config.get("n_embd", config.get("hidden_size"))),
        "n_positions": _fmt(config.get("n_positions", config.get("max_position_embeddings"))),
        "vocab_size": _fmt(config.get("vocab_size")),
        "parameters": _human_count(facts["parameters"]),
        "decoding": {key: _fmt(value) for key, value in decoding.items() if value is not None},
        "decoding_kwargs": ", ".join(f"{k}={v!r}" for k, v in decoding.items() if v is not None),
        "has_custom_generate": facts["has_custom_generate"],
        "guidance_scale": (generation.get("sentiment_guidance") or {}).get("scale"),
        "dataset": run.get("dataset") or DEFAULT_DATASET,
        "data_source": _public_source(run.get("data_source")),
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
        "train_runtime": _fmt(
            None if run.get("train_runtime_s") is None else run["train_runtime_s"] / 60, ".1f"
        ),
        "hardware": _fmt(run.get("hardware")),
        "eval_loss": _fmt(run.get("eval_loss"), ".4f"),
        "eval_perplexity": _fmt(run.get("eval_perplexity"), ".2f"),
        "test_perplexity": _fmt(run.get("test_perplexity"), ".2f"),
        "sentiment_control": _fmt(run.get("sentiment_control"), ".1%"),
        "peft": {k: _fmt(v) for k, v in peft.items()} if peft else None,
        "command": redact_tokens(run["command"]) if run.get("command") else None,
        "decoding_study": run.get("decoding_study"),
    }


def render_model_card(
    model_dir: str | Path,
    repo_id: str | None = None,
    template: str | Path | None = None,
) -> ModelCard:
    """Render the model card of a finished model folder.

    Args:
        model_dir: the folder (weights or adapter, tokenizer, ``generation_config.json``,
            optionally ``nsmc_gen_run.json``).
        repo_id: the Hub id the card's usage examples name; default: the folder's name.
        template: a Jinja template with a ``{{ card_data }}`` YAML header; default ``model_card.md``.

    Raises:
        FileNotFoundError: no folder, no ``generation_config.json``, no template.
        ValueError: a JSON file that does not parse, or a template whose output has no metadata.

    Example:
        >>> card = render_model_card("out/kogpt2-nsmc", repo_id="org/kogpt2-nsmc")  # doctest: +SKIP
        >>> card.data.base_model  # doctest: +SKIP
        'skt/kogpt2-base-v2'
    """
    model_dir = Path(model_dir)
    facts = folder_facts(model_dir)
    model_id = repo_id or model_dir.resolve().name
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


def write_run_facts(model_dir: str | Path, facts: dict[str, Any]) -> Path:
    """Write ``facts`` as the folder's :data:`RUN_FACTS` file (JSON, atomically)."""
    text = json.dumps(facts, ensure_ascii=False, indent=2) + "\n"
    return write_text_atomic(Path(model_dir) / RUN_FACTS, text)


def save_model_card(
    model_dir: str | Path, repo_id: str | None = None, template: str | Path | None = None
) -> Path:
    """Render the card (see :func:`render_model_card`) and write it atomically to ``model_dir/README.md``.

    Example:
        >>> save_model_card("out/kogpt2-nsmc")  # doctest: +SKIP
        PosixPath('out/kogpt2-nsmc/README.md')
    """
    card = render_model_card(model_dir, repo_id=repo_id, template=template)
    return write_text_atomic(Path(model_dir) / CARD_FILE, str(card))


def record_evaluation(model_dir: str | Path, **facts: Any) -> Path:
    """Merge evaluation figures (e.g. ``test_perplexity``, ``decoding_study``) into the folder's
    ``nsmc_gen_run.json`` and re-render its card, both atomically.

    Example:
        >>> record_evaluation("out/kogpt2-nsmc", test_perplexity=212.6)  # doctest: +SKIP
        PosixPath('out/kogpt2-nsmc/README.md')
    """
    model_dir = Path(model_dir)
    run = read_json(model_dir / RUN_FACTS) or {}
    write_run_facts(model_dir, {**run, **facts})
    return save_model_card(model_dir)
