"""The finished model folder: everything written into it.

A finished folder is what ``from_pretrained`` loads and ``nsmc-gen push`` publishes. This module
is its one writer; the training recipe, the Hub push and ``nsmc-gen evaluate`` all go through it:

- weights (``model.safetensors``, or a LoRA adapter) and tokenizer: :func:`save_finished_model`
  (the Trainer's collective save, then everything below), :func:`merge_adapter` (one LoRA merge);
- ``generation_config.json``: the recommended decoding built with the run's prompt format, later
  the calibrated length prior (:func:`save_length_prior`) and plain clients' EOS bias
  (:func:`save_plain_eos_bias`);
- ``custom_generate/``: nsmc-gen's decoding for ``trust_remote_code`` users
  (:func:`install_custom_generate`);
- ``nsmc_gen_run.json``: the run's figures, one typed record (:class:`RunFacts`, the schema);
- ``README.md``: the model card, rendered by :mod:`nsmc_gen.card` from :func:`folder_facts`
  (:func:`save_model_card`; :func:`record_evaluation` adds a study's figures). The arrow points one
  way: this module imports the card's renderer, the card imports nothing from here.

Files are written atomically and readable by everyone the umask allows (safetensors 0.8 writes
weights with mode 0600, which would hide them from the other users of a shared folder).

Heavy imports (torch, transformers) happen inside the functions that need them: ``nsmc_gen.hub``
imports this module, and validating or pushing a folder should not wait for torch.

Example:
    >>> facts = RunFacts(base_model="embedded", train_rows=900, peft=LoraFacts(r=4, alpha=8))
    >>> RunFacts.from_dict(facts.to_dict()) == facts
    True
    >>> save_model_card("runs/embedded")  # doctest: +SKIP
    PosixPath('runs/embedded/README.md')
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsmc_gen.card import FolderFacts, render_card
from nsmc_gen.files import atomic_write, current_umask, write_text_atomic

if TYPE_CHECKING:
    import torch
    from huggingface_hub import ModelCard
    from transformers import GenerationConfig, Trainer

    from nsmc_gen.formatting import ReviewFormat

RUN_FACTS = "nsmc_gen_run.json"
CARD_FILE = "README.md"
MERGED_DIR = "merged"  # the merged full model beside its LoRA adapter (the recipe's --merge_lora)
GENERATION_CONFIG = "generation_config.json"
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
TOKENIZER_FILES = (
    "tokenizer_config.json",
    *TOKENIZER_VOCAB_FILES,
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


# --------------------------------------------------------------------------- the run facts


@dataclass(frozen=True)
class LoraFacts:
    """A LoRA adapter's settings, as the card and the run facts state them.

    Example:
        >>> LoraFacts.from_adapter_config({"r": 4, "lora_alpha": 8, "target_modules": {"c_fc", "c_attn"}})
        LoraFacts(r=4, alpha=8, dropout=None, target_modules=['c_attn', 'c_fc'])
    """

    r: int | None = None
    alpha: float | None = None
    dropout: float | None = None
    target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        targets = self.target_modules  # peft keeps a set, or one string such as "all-linear"
        targets = [targets] if isinstance(targets, str) else None if targets is None else sorted(targets)
        object.__setattr__(self, "target_modules", targets)

    @classmethod
    def from_adapter_config(cls, config: Mapping[str, Any]) -> LoraFacts:
        """From peft's names: ``adapter_config.json`` or ``LoraConfig.to_dict()``."""
        return cls(
            config.get("r"),
            config.get("lora_alpha"),
            config.get("lora_dropout"),
            config.get("target_modules"),
        )


@dataclass(frozen=True)
class RunFacts:
    """A finished run's figures: ``nsmc_gen_run.json``, one flat JSON object (the schema is here).

    Every field is optional: ``None`` means not recorded, and the card then says "not recorded"
    (or leaves the row out) and keeps the figure out of its metadata: the card never invents one.
    Keys a file holds that this version does not know are kept in ``extra`` and written back.
    """

    #: Hub id or folder fine-tuned from, ``"embedded"`` (the shipped base); None from random initialisation
    base_model: str | None = None
    #: with random initialisation: the model whose config was used
    from_scratch_config: str | None = None
    #: Hub id of the training data (the card's default: ``e9t/nsmc``)
    dataset: str | None = None
    #: where the NSMC files were read from (the card does not publish local paths)
    data_source: str | None = None
    train_rows: int | None = None  #: training reviews
    validation_rows: int | None = None  #: validation reviews (NSMC train reviews held out from training)
    epochs: float | None = None  #: epochs completed
    global_step: int | None = None  #: optimizer steps completed
    max_steps: int | None = None  #: the configured step limit, if any
    train_tokens: int | None = None  #: tokens trained on (padding excluded)
    learning_rate: float | None = None  #: peak learning rate
    #: effective batch size (per device x accumulation x processes)
    batch_size: int | None = None
    max_length: int | None = None  #: maximum tokens per training example
    seed: int | None = None  #: training seed
    eval_loss: float | None = None  #: validation loss, nats per token (padding excluded)
    eval_perplexity: float | None = None  #: validation perplexity
    peft: LoraFacts | None = None  #: the LoRA adapter's settings; None for full fine-tuning
    merged: bool | None = None  #: LoRA weights merged into the base model in this folder
    train_runtime_s: float | None = None  #: training wall time, seconds
    hardware: str | None = None  #: e.g. ``"2 CPU cores"``
    command: str | None = None  #: the command that reproduces the run (the card redacts tokens)
    train_loss: float | None = None  #: mean training loss
    eval_tokens: int | None = None  #: validation tokens scored
    #: the prompt format: ``{"positive": word, "negative": word}``
    review_format: dict[str, str] | None = None
    packing: bool | None = None  #: examples packed into full rows
    processes: int | None = None  #: training processes
    per_device_batch_size: int | None = None  #: examples per device and step
    gradient_accumulation_steps: int | None = None  #: steps accumulated per optimizer step
    lr_scheduler: str | None = None  #: learning-rate schedule
    warmup_steps: float | None = None  #: warm-up steps (< 1: a share of the total)
    optimizer: str | None = None  #: the Trainer's optim
    precision: str | None = None  #: ``float32``, ``bf16``, ...
    versions: dict[str, str] | None = None  #: nsmc_gen, transformers, torch, peft
    # Added later, by nsmc-gen evaluate (record_evaluation) or by hand:
    test_perplexity: float | None = None  #: perplexity on the test reviews of ``test_data``
    #: the data ``test_perplexity`` was measured on, in words (e.g. "NSMC-rebuild test, 50,000 reviews")
    test_data: str | None = None
    #: review lengths the recipe measured after calibration: ``{"reference" | "plain" | "nsmc_gen":
    #: {"reviews": n, "mean_characters": x, "share_under_5": s}}`` (the training reviews; plain
    #: sampling with the folder's generation_config; nsmc-gen's default decoding), see
    #: :func:`nsmc_gen.calibration.decoding_path_lengths`
    review_lengths: dict[str, dict[str, float]] | None = None
    #: share of generated reviews judged to have the asked sentiment (default decoding)
    sentiment_control: float | None = None
    decoding_study: str | None = None  #: Markdown table from ``nsmc-gen evaluate``, shown as is
    license: str | None = None  #: the weights' licence (default: the base model's)
    extra: dict[str, Any] = field(default_factory=dict)  #: keys this version does not know

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunFacts:
        """The facts of a JSON object; unknown keys go to ``extra``."""
        known = {f.name for f in fields(cls)} - {"extra"}
        given = {k: v for k, v in values.items() if k in known}
        if isinstance(given.get("peft"), Mapping):
            lora = {f.name for f in fields(LoraFacts)}
            given["peft"] = LoraFacts(**{k: v for k, v in given["peft"].items() if k in lora})
        return cls(**given, extra={k: v for k, v in values.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: every field (None as null), then the unknown keys as they came."""
        values = asdict(self)
        return {**{k: v for k, v in values.items() if k != "extra"}, **self.extra}

    def updated(self, **values: Any) -> RunFacts:
        """A copy with ``values`` set; keys that are not fields go to ``extra``."""
        return RunFacts.from_dict({**self.to_dict(), **values})


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


def read_run_facts(model_dir: str | Path) -> RunFacts:
    """The folder's :class:`RunFacts` (empty when it has no ``nsmc_gen_run.json``)."""
    return RunFacts.from_dict(read_json(Path(model_dir) / RUN_FACTS) or {})


def write_run_facts(model_dir: str | Path, facts: RunFacts) -> Path:
    """Write ``facts`` as the folder's ``nsmc_gen_run.json`` (JSON, atomically)."""
    text = json.dumps(facts.to_dict(), ensure_ascii=False, indent=2) + "\n"
    return write_text_atomic(Path(model_dir) / RUN_FACTS, text)


# --------------------------------------------------------------------------- the card


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


def folder_facts(model_dir: str | Path) -> FolderFacts:
    """Read what the card needs from a model folder (:class:`nsmc_gen.card.FolderFacts`)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model_dir {model_dir} is not a folder")
    generation = read_json(model_dir / GENERATION_CONFIG)
    if generation is None:
        raise FileNotFoundError(
            f"{model_dir / GENERATION_CONFIG} is missing: the card states the decoding defaults "
            "the model ships with (write it with nsmc_gen.decoding.recommended_generation_config)"
        )
    run = read_run_facts(model_dir)
    adapter = read_json(model_dir / "adapter_config.json")
    peft = run.peft if adapter is None else LoraFacts.from_adapter_config(adapter)
    return FolderFacts(
        run=run.to_dict(),
        config=read_json(model_dir / "config.json") or {},
        generation=generation,
        is_adapter=adapter is not None,
        merged=bool(run.merged) or (adapter is None and bool(peft)),  # a LoRA run, full weights
        # The run's name for the base ("embedded", a Hub id) over the adapter's loadable path to it.
        base_model=run.base_model or (adapter or {}).get("base_model_name_or_path"),
        peft=asdict(peft) if peft else None,
        parameters=count_parameters(model_dir),
        has_custom_generate=(model_dir / "custom_generate" / "generate.py").is_file(),
    )


def render_model_card(
    model_dir: str | Path, repo_id: str | None = None, template: str | Path | None = None
) -> ModelCard:
    """The model card of a finished folder (see :func:`nsmc_gen.card.render_card`).

    Args:
        model_dir: the folder (weights or adapter, tokenizer, ``generation_config.json``,
            optionally ``nsmc_gen_run.json``).
        repo_id: the Hub id the card's usage code names (``nsmc-gen push`` passes the id it pushes
            to); default: a placeholder the card says to replace (a local folder's name is no Hub
            id, and ``embedded`` is the shipped base's keyword).
        template: a Jinja template with a ``{{ card_data }}`` YAML header; default ``model_card.md``.

    Raises:
        FileNotFoundError: no folder, no ``generation_config.json``, no template.
        ValueError: a JSON file that does not parse, or a template whose output has no metadata.

    Example:
        >>> card = render_model_card("out/kogpt2-nsmc", repo_id="org/kogpt2-nsmc")  # doctest: +SKIP
        >>> card.data.pipeline_tag, card.data.language  # doctest: +SKIP
        ('text-generation', 'ko')
    """
    model_dir = Path(model_dir)
    facts = folder_facts(model_dir)
    return render_card(
        facts, repo_id, template, model_name=(repo_id or model_dir.resolve().name).split("/")[-1]
    )


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
    run facts and re-render its card, both atomically.

    Example:
        >>> record_evaluation("out/kogpt2-nsmc", test_perplexity=212.6)  # doctest: +SKIP
        PosixPath('out/kogpt2-nsmc/README.md')
    """
    write_run_facts(model_dir, read_run_facts(model_dir).updated(**facts))
    return save_model_card(model_dir)


# --------------------------------------------------------------------------- generation_config.json


def save_length_prior(model_dir: str | os.PathLike, prior: Sequence[float]) -> Path:
    """Write ``prior`` into the folder's ``generation_config.json`` (its ``length_prior`` field), atomically.

    Example:
        >>> prior = calibrate_length_prior(model, tokenizer, texts)  # doctest: +SKIP
        >>> save_length_prior("outputs/model", prior)  # doctest: +SKIP
        PosixPath('outputs/model/generation_config.json')
    """
    from transformers import GenerationConfig

    from nsmc_gen.custom_generate.generate import LENGTH_PRIOR_FIELD

    path = Path(model_dir) / GENERATION_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"model_dir must hold a generation_config.json: {path}")
    if isinstance(prior, (str, bytes)) or not all(_finite(b) for b in prior):
        raise ValueError(f"prior must be a list of finite numbers, got {prior!r}")
    config = GenerationConfig.from_pretrained(model_dir)
    setattr(config, LENGTH_PRIOR_FIELD, [float(b) for b in prior])
    _write_generation_config(model_dir, config)
    return path


def save_plain_eos_bias(model_dir: str | os.PathLike, bias: float) -> Path:
    """Write a constant EOS bias for plain clients into the folder's ``generation_config.json``
    (``sequence_bias``, list form, one entry per EOS id: see :func:`nsmc_gen.decoding.eos_sequence_bias`),
    atomically. nsmc-gen and ``custom_generate/`` zero it and apply their own EOS handling.

    Example:
        >>> bias = calibrate_plain_eos_bias(model, tokenizer, texts)  # doctest: +SKIP
        >>> save_plain_eos_bias("outputs/model", bias)  # doctest: +SKIP
        PosixPath('outputs/model/generation_config.json')
    """
    from transformers import GenerationConfig

    from nsmc_gen.decoding import PLAIN_EOS_BIAS_FIELD, eos_sequence_bias

    path = Path(model_dir) / GENERATION_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"model_dir must hold a generation_config.json: {path}")
    if not _finite(bias):
        raise ValueError(f"bias must be a finite number, got {bias!r}")
    config = GenerationConfig.from_pretrained(model_dir)
    if config.eos_token_id is None:
        raise ValueError(f"{path} has no eos_token_id: there is no EOS to bias")
    setattr(config, PLAIN_EOS_BIAS_FIELD, eos_sequence_bias(config.eos_token_id, bias))
    _write_generation_config(model_dir, config)
    return path


def install_custom_generate(model_dir: str | os.PathLike, review_format: ReviewFormat | None = None) -> Path:
    """Make a saved model folder decode like nsmc-gen under ``trust_remote_code=True``, without nsmc-gen.

    Copies :mod:`nsmc_gen.custom_generate.generate` and :mod:`nsmc_gen.processors` into
    ``model_dir/custom_generate/`` (transformers loads the second through the first's relative
    import), and makes sure ``generation_config.json`` has the ``sentiment_guidance`` field
    (adding it from the folder's tokenizer, or writing the recommended config if there is none) and
    the ``keep_eos_probability`` field (the default, for a folder written before it existed), so
    that remote code decodes as nsmc-gen does. Files are replaced atomically.

    Returns:
        The ``custom_generate`` folder.

    Example:
        >>> install_custom_generate("outputs/model")  # doctest: +SKIP
        PosixPath('outputs/model/custom_generate')
        >>> from transformers import pipeline
        >>> pipe = pipeline("text-generation", "outputs/model", trust_remote_code=True)  # doctest: +SKIP
        >>> pipe("긍정", num_return_sequences=3)  # our processors, sentiment guidance  # doctest: +SKIP
    """
    from transformers import AutoTokenizer, GenerationConfig

    from nsmc_gen import processors
    from nsmc_gen.custom_generate import generate as custom_generate
    from nsmc_gen.custom_generate.generate import GUIDANCE_FIELD, KEEP_EOS_FIELD
    from nsmc_gen.decoding import (
        DEFAULT_KEEP_EOS_PROBABILITY,
        recommended_generation_config,
        sentiment_guidance,
    )
    from nsmc_gen.serving import VLLM_ADAPTER

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"model_dir must be a saved model folder (with config.json): {model_dir}")
    target = model_dir / "custom_generate"
    target.mkdir(exist_ok=True)
    # The vLLM adapter travels by path (importing it would import vllm): a folder alone can be served.
    for source in (Path(custom_generate.__file__), Path(processors.__file__), VLLM_ADAPTER):
        atomic_write(target / source.name, partial(shutil.copyfile, source))
    if (model_dir / GENERATION_CONFIG).is_file():
        config = GenerationConfig.from_pretrained(model_dir)
        has_guidance = bool(getattr(config, GUIDANCE_FIELD, None))
        if has_guidance and getattr(config, KEEP_EOS_FIELD, None) is not None:
            return target
        if not has_guidance:
            guidance = sentiment_guidance(AutoTokenizer.from_pretrained(model_dir), review_format)
            setattr(config, GUIDANCE_FIELD, guidance)
        if getattr(config, KEEP_EOS_FIELD, None) is None:
            setattr(config, KEEP_EOS_FIELD, DEFAULT_KEEP_EOS_PROBABILITY)
    else:
        config = recommended_generation_config(AutoTokenizer.from_pretrained(model_dir), review_format)
    _write_generation_config(model_dir, config)
    return target


def _write_generation_config(model_dir: str | os.PathLike, config: GenerationConfig) -> Path:
    config._from_model_config = False  # else transformers drops every extra field on loading
    return write_text_atomic(Path(model_dir) / GENERATION_CONFIG, config.to_json_string(use_diff=True))


# --------------------------------------------------------------------------- writing the folder


def save_finished_model(
    trainer: Trainer, facts: RunFacts, review_format: ReviewFormat, dtype: torch.dtype | None = None
) -> Path:
    """Write the trainer's model as a finished, Hub-ready folder in ``output_dir`` and return it.

    Weights (safetensors; the adapter with LoRA) and tokenizer, ``generation_config.json`` with
    the recommended decoding and ``review_format``'s prompts, ``custom_generate/`` (full models),
    the run facts and the card. Every process must call it (the weights' save is collective
    under FSDP/DeepSpeed); only the main process writes the rest.

    Example:
        >>> folder = save_finished_model(trainer, training_facts(...), ReviewFormat())  # doctest: +SKIP
    """
    from nsmc_gen.custom_generate.generate import position_limit
    from nsmc_gen.decoding import recommended_generation_config
    from nsmc_gen.modeling import EMBEDDED, publish_dtype, store_weights_as
    from nsmc_gen.tokenization import save_tokenizer

    output_dir = Path(trainer.args.output_dir)
    tokenizer = trainer.processing_class
    unwrapped = trainer.model.get_base_model() if facts.peft else trainer.model
    # max_new_tokens within the model's positions: plain clients take it as it is
    config = recommended_generation_config(tokenizer, review_format, position_limit(unwrapped.config))
    unwrapped.generation_config = config
    unwrapped.config.use_cache = True  # for generation (training or the base may have switched it off)
    trainer.save_model(str(output_dir))  # weights + tokenizer; collective under FSDP/DeepSpeed
    if trainer.is_world_process_zero():
        # again: loadable by transformers 4.x, and continuations keep their leading space
        save_tokenizer(tokenizer, output_dir, review_format)
        if not facts.peft:  # full weights in the dtype the base is published in (adapters: as peft saves)
            base = facts.base_model or facts.from_scratch_config or EMBEDDED
            store_weights_as(output_dir, dtype or publish_dtype(base))
        # Written for adapters too (save_pretrained of a PeftModel leaves it out), and explicitly:
        # pipeline()/generate() defaults differ from ours (FIELD-NOTES).
        _write_generation_config(output_dir, config)
        _complete(output_dir, facts, review_format)
    return output_dir


def merge_adapter(adapter_dir: str | Path, output_dir: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Merge a LoRA adapter folder into its base model and save a complete model folder.

    The base model is loaded from the adapter's ``base_model_name_or_path`` (a Hub id, a folder
    or ``"embedded"``) the way nsmc-gen loads bases, and the adapter from the folder's saved
    weights: so a run sharded with DeepSpeed ZeRO-3, whose in-memory weights are partitioned,
    merges exactly what it saved. Tokenizer files, ``generation_config.json`` (with its length
    prior) and the run facts (with ``merged: true``) are carried over; the merged folder, a full
    model, gets ``custom_generate/``; the card is rendered anew.

    Example:
        >>> merge_adapter("out/kogpt2-nsmc-lora", "out/kogpt2-nsmc-merged")  # doctest: +SKIP
    """
    from nsmc_gen.modeling import load_finished_model, publish_dtype, store_weights_as

    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    adapter = read_json(adapter_dir / "adapter_config.json")
    if adapter is None or not (adapter_dir / "adapter_model.safetensors").is_file():
        raise ValueError(
            f"merge_adapter needs a LoRA adapter folder; {adapter_dir} lacks "
            f"{' or '.join(n for n in ADAPTER_FILES if not (adapter_dir / n).is_file())}"
        )
    model = load_finished_model(adapter_dir).merge_and_unload()
    model.save_pretrained(output_dir)  # merged in float32, then stored in the base's published dtype
    store_weights_as(output_dir, dtype or publish_dtype(adapter["base_model_name_or_path"]))
    for name in (*TOKENIZER_FILES, GENERATION_CONFIG):
        if (adapter_dir / name).is_file():
            shutil.copy2(adapter_dir / name, output_dir / name)
    run = read_run_facts(adapter_dir)
    facts = replace(
        run,
        base_model=run.base_model or adapter.get("base_model_name_or_path"),
        peft=run.peft or LoraFacts.from_adapter_config(adapter),
        merged=True,
    )
    _complete(output_dir, facts, review_format=None)
    return output_dir


def make_readable(folder: str | Path) -> None:
    """Give the folder's files (and ``custom_generate/``'s) the read bits the umask allows.

    safetensors 0.8 writes weights with mode 0600 (``save_file``, hence every ``save_pretrained``),
    which would hide them from the other users of a shared folder or a web server.
    """
    folder = Path(folder)
    readable = 0o444 & ~current_umask()
    for path in (*folder.iterdir(), *(folder / "custom_generate").glob("*")):
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode & 0o7777 | readable)


def _complete(folder: Path, facts: RunFacts, review_format: ReviewFormat | None) -> None:
    """What every finished folder gets once its weights, tokenizer and generation config are in."""
    if (folder / "config.json").is_file():  # a full model (an adapter cannot carry remote code alone)
        write_legacy_rope_keys(folder)
        install_custom_generate(folder, review_format)  # our decoding under trust_remote_code
    write_run_facts(folder, facts)
    save_model_card(folder)  # README.md (replaces the generic one peft writes beside an adapter)
    make_readable(folder)


def write_legacy_rope_keys(folder: str | Path) -> None:
    """Give ``config.json`` its RoPE settings under transformers 4.x's names too.

    transformers 5 saves them only as ``rope_parameters``, a key 4.57 does not read: it falls back to
    its defaults (rope_theta 10,000 for Qwen's 1,000,000 and Llama's 500,000, no llama3 scaling,
    rotary_pct 0.25 for polyglot-ko's 0.5), so a finished folder of a modern base would compute other
    logits in 4.x. 5.x reads ``rope_parameters`` first; keys already in the config win. A config
    without ``rope_parameters`` (GPT-2: KoGPT2, the embedded default) is left as it is.

    Example:
        >>> import json, tempfile; folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "config.json").write_text(json.dumps({"model_type": "llama", "rope_parameters":
        ...     {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0}}))
        >>> write_legacy_rope_keys(folder)
        >>> config = json.loads((folder / "config.json").read_text())
        >>> config["rope_theta"], config["rope_scaling"]
        (500000.0, {'factor': 32.0, 'rope_type': 'llama3'})
    """
    path = Path(folder) / "config.json"
    config = read_json(path) or {}
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict) or "rope_theta" not in rope:
        return
    kind = rope.get("rope_type", "default")
    legacy: dict[str, Any] = {
        "rope_theta": rope["rope_theta"],
        "rope_scaling": None
        if kind == "default"
        else {k: v for k, v in rope.items() if k not in ("rope_theta", "partial_rotary_factor")},
    }
    if "partial_rotary_factor" in rope:
        legacy["partial_rotary_factor"] = rope["partial_rotary_factor"]
    if config.get("model_type") == "gpt_neox":  # 4.x's GPT-NeoX names
        legacy["rotary_emb_base"] = rope["rope_theta"]
        legacy["rotary_pct"] = rope.get("partial_rotary_factor", 1.0)
    write_text_atomic(path, json.dumps({**legacy, **config}, indent=2, sort_keys=True) + "\n")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
