"""The tokenizer a model was trained with: loaded faithfully from any repo layout, saved once.

A repo's ``tokenizer.json`` is the authority where ``AutoTokenizer`` would rebuild another pipeline
(:func:`load_tokenizer`); every special token is checked against the model's embedding and nothing
is ever added (:func:`check_special_tokens`); :func:`save_tokenizer` writes a tokenizer that
transformers 4.x and 5.x both load, with the base's metadata and, in a finished folder, a decoder
under which a continuation keeps its leading space (:func:`continuation_decoder`).

Example:
    >>> from nsmc_gen.modeling import load_embedded_tokenizer
    >>> save_tokenizer(load_embedded_tokenizer(), "/tmp/nsmc-gen-tokenizer")
    >>> import json; json.load(open("/tmp/nsmc-gen-tokenizer/tokenizer_config.json"))["tokenizer_class"]
    'PreTrainedTokenizerFast'
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from tokenizers import Tokenizer
from transformers import (
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from nsmc_gen.files import write_text_atomic

if TYPE_CHECKING:
    from nsmc_gen.formatting import ReviewFormat

logger = logging.getLogger(__name__)

SPECIAL_TOKENS_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")
# Names special tokens conventionally go by: used only for a role that neither the model config's
# ids nor tokenizer.json assign (KoGPT2's <mask>; <unk>, <pad> in repos whose config lacks them).
CONVENTIONAL_NAMES = {
    "unk_token": ("<unk>", "[UNK]"),
    "pad_token": ("<pad>", "[PAD]"),
    "mask_token": ("<mask>", "[MASK]"),
}
# transformers 5's generic fast tokenizer, under the name transformers 4.x knows too.
PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def load_tokenizer(
    model_name_or_path: str, config: PretrainedConfig, revision: str | None = None
) -> PreTrainedTokenizerBase:
    """The tokenizer ``model_name_or_path``'s model was trained with (a Hub id or a folder).

    The rule: the repo's ``tokenizer.json`` is the authority, loaded as ``PreTrainedTokenizerFast``
    exactly as written, when

    - the repo has no ``tokenizer_config.json``: ``AutoTokenizer`` would pick a class from the
      model type alone, which says nothing of the tokenizer (KoGPT2: gpt2 -> ``GPT2Tokenizer``,
      byte-level: Korean tokenizes to nothing and ``<|endoftext|>`` is added at id 51,200), or
    - its ``tokenizer_class`` rebuilds another pipeline (normalizer, pre-tokenizer, decoder or
      model) than tokenizer.json's: transformers 5 builds model-specific classes from code.

    Otherwise ``AutoTokenizer`` loads it as its authors saved it.

    A tokenizer.json loaded that way keeps the rest of tokenizer_config.json (``chat_template``,
    ``model_max_length``, ...; :data:`NOT_CARRIED` lists what it leaves out) and the repo's
    ``chat_template.jinja``, so that the saved tokenizer (:func:`save_tokenizer`) carries them on.

    Special tokens of a tokenizer.json loaded that way: those tokenizer_config.json names, else
    EOS and pad from the model config's ids; unk from tokenizer.json's model; BOS is the token
    the tokenizer puts before every text, and with none, EOS: the model then saw each text start
    right after the previous one's EOS (GPT-2's convention, and KoGPT2's documented
    ``bos_token="</s>"`` although its config says ``bos_token_id`` 0); a role still open (mask,
    pad, unk) takes a special token of a conventional name (:data:`CONVENTIONAL_NAMES`). A token
    missing from the vocabulary raises: nothing is ever added.

    Example:
        >>> from transformers import AutoConfig
        >>> name = "skt/kogpt2-base-v2"
        >>> tok = load_tokenizer(name, AutoConfig.from_pretrained(name))  # doctest: +SKIP
        >>> tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.mask_token  # doctest: +SKIP
        (1, 1, 3, '<mask>')
    """
    tokenizer_json = repo_file(model_name_or_path, "tokenizer.json", revision)
    tokenizer_config = repo_file(model_name_or_path, "tokenizer_config.json", revision)
    named: dict[str, str] = {}
    if tokenizer_config is not None or tokenizer_json is None:
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, revision=revision)
        _check_has_vocabulary(tokenizer, model_name_or_path)
        if tokenizer_json is None or _same_pipeline(tokenizer, tokenizer_json):
            return tokenizer
        logger.warning(
            "%s: %s rebuilds another pipeline than its tokenizer.json; loading tokenizer.json as written",
            model_name_or_path,
            type(tokenizer).__name__,
        )
    saved = json.loads(tokenizer_config.read_text(encoding="utf-8")) if tokenizer_config else {}
    named = _named_special_tokens(saved)
    backend = Tokenizer.from_file(str(tokenizer_json))
    tokens = {**_special_tokens_of(backend, config), **named}
    for name, token in tokens.items():
        if backend.token_to_id(token) is None:
            source = "tokenizer_config.json" if name in named else "tokenizer.json's own model"
            raise ValueError(
                f"{model_name_or_path}: {name} {token!r} (from {source}) is not in tokenizer.json's "
                f"vocabulary of {backend.get_vocab_size()}; nsmc-gen never adds a token to a base model"
            )
    metadata = _carried_metadata(saved, repo_file(model_name_or_path, "chat_template.jinja", revision))
    size = backend.get_vocab_size(with_added_tokens=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, name_or_path=model_name_or_path, **metadata, **tokens
    )
    if len(tokenizer) != size:  # e.g. an additional special token tokenizer.json lacks
        added = [t for t, i in tokenizer.get_vocab().items() if i >= size]
        raise ValueError(
            f"{model_name_or_path}: tokenizer_config.json names token(s) {added} that tokenizer.json's "
            f"vocabulary of {size} lacks; nsmc-gen never adds a token to a base model"
        )
    return tokenizer


# tokenizer_config.json keys that a tokenizer.json loaded as written does not take over: the class
# and its remote code (the file is loaded as PreTrainedTokenizerFast), tokens (special ones by the
# rule above; added ones are in tokenizer.json), flags that would rebuild tokenizer.json's
# post-processor (transformers 5 rewrites it from add_bos_token/add_eos_token), and files and
# machines (where the files were read from).
NOT_CARRIED = frozenset(
    {"tokenizer_class", "auto_map", "added_tokens_decoder", "add_bos_token", "add_eos_token", "init_inputs"}
    | {"name_or_path", "tokenizer_file", "vocab_file", "merges_file", "special_tokens_map_file"}
    | set(SPECIAL_TOKENS_ATTRIBUTES)
)
# Keys transformers writes into a saved tokenizer_config.json that describe the machine that saved
# it, not the tokenizer (transformers 5.23: is_local, local_files_only).
MACHINE_KEYS = frozenset(
    {"is_local", "local_files_only", "name_or_path", "cache_dir", "_commit_hash", "revision", "token"}
    | {"trust_remote_code", "force_download", "proxies", "subfolder", "device_map"}
)


def _carried_metadata(tokenizer_config: dict[str, Any], chat_template_jinja: Path | None) -> dict[str, Any]:
    """What a tokenizer.json loaded as written keeps of tokenizer_config.json (and chat_template.jinja,
    which transformers prefers to the config's own template)."""
    kept = {k: v for k, v in tokenizer_config.items() if k not in NOT_CARRIED | MACHINE_KEYS}
    if chat_template_jinja is not None:
        kept["chat_template"] = chat_template_jinja.read_text(encoding="utf-8")
    return kept


def repo_file(model_name_or_path: str, filename: str, revision: str | None = None) -> Path | None:
    """``filename`` of a model folder or Hub repo (downloaded, or from the Hub cache offline), None if absent.

    Offline, a file the cached snapshot lacks counts as absent, as transformers counts it.
    """
    folder = Path(model_name_or_path).expanduser()
    if folder.is_dir():
        return folder / filename if (folder / filename).is_file() else None
    try:
        return Path(hf_hub_download(model_name_or_path, filename, revision=revision))
    except EntryNotFoundError:  # the Hub's 404, or a file the offline cache lacks
        return None


def _check_has_vocabulary(tokenizer: PreTrainedTokenizerBase, model_name_or_path: str) -> None:
    """Raise if ``tokenizer`` holds special tokens only.

    transformers 5 builds a tokenizer for a folder without tokenizer files from the model type
    alone (gpt2: a ``GPT2Tokenizer`` of one token, ``<|endoftext|>``) that turns every text into
    nothing; training on it would run to the end on empty rows.
    """
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        raise ValueError(
            f"{model_name_or_path}: no tokenizer files (tokenizer.json, or tokenizer_config.json with "
            f"its vocabulary files): the {type(tokenizer).__name__} built without them has "
            f"{len(tokenizer)} token(s), all special. Save the tokenizer the model was trained with "
            "beside it (nsmc_gen.tokenization.save_tokenizer(tokenizer, folder))"
        )


def _same_pipeline(tokenizer: PreTrainedTokenizerBase, tokenizer_json: Path) -> bool:
    """Whether ``tokenizer`` runs tokenizer.json's pipeline (the post-processor aside: transformers
    rewrites it from add_bos_token/add_eos_token, which it then saves), compared as
    :func:`_normalised` pipelines: a spelling that changes no token id is the same pipeline."""
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        return False
    ours = json.loads(tokenizer.backend_tokenizer.to_str())
    theirs = json.loads(Tokenizer.from_file(str(tokenizer_json)).to_str())
    for pipeline in (ours, theirs):
        pipeline["model"] = {k: v for k, v in pipeline["model"].items() if k not in ("vocab", "merges")}
    parts = ("normalizer", "pre_tokenizer", "decoder", "model")
    return all(_normalised(ours[part]) == _normalised(theirs[part]) for part in parts)


def _normalised(part: Any) -> Any:
    """A pipeline part (tokenizers' JSON) with unset options dropped: tokenizers writes an unset string
    option as null, transformers' converters as "" (a BPE's ``continuing_subword_prefix`` and
    ``end_of_word_suffix``, seen on Qwen2.5), and both tokenize alike."""
    if isinstance(part, dict):
        return {k: _normalised(v) for k, v in part.items() if v is not None and v != ""}
    if isinstance(part, list):
        return [_normalised(v) for v in part]
    return part


def _named_special_tokens(tokenizer_config: dict[str, Any]) -> dict[str, str]:
    """The special tokens a tokenizer_config.json names (a string, or an AddedToken's "content")."""
    named = {}
    for name in SPECIAL_TOKENS_ATTRIBUTES:
        token = tokenizer_config.get(name)
        token = token.get("content") if isinstance(token, dict) else token
        if isinstance(token, str):
            named[name] = token
    return named


def _special_tokens_of(backend: Tokenizer, config: PretrainedConfig) -> dict[str, str]:
    """The special tokens of a bare tokenizer.json, by the rule in :func:`load_tokenizer`."""

    def token_of(token_id: int | list[int] | None) -> str | None:
        token_id = token_id[0] if isinstance(token_id, list) and token_id else token_id
        if isinstance(token_id, int) and backend.id_to_token(token_id) is None:
            raise ValueError(
                f"the model config's special token id {token_id} is not in tokenizer.json's "
                f"vocabulary of {backend.get_vocab_size()}"
            )
        return None if not isinstance(token_id, int) else backend.id_to_token(token_id)

    model = json.loads(backend.to_str())["model"]
    tokens = {
        "eos_token": token_of(getattr(config, "eos_token_id", None)),
        "pad_token": token_of(getattr(config, "pad_token_id", None)),
        "unk_token": model.get("unk_token")
        or (model["vocab"][model["unk_id"]][0] if model.get("unk_id") is not None else None),
    }
    start = backend.encode("a", add_special_tokens=True)
    starts_with_special = bool(start.tokens) and start.special_tokens_mask[0] == 1
    tokens["bos_token"] = start.tokens[0] if starts_with_special else tokens["eos_token"]
    specials = {added.content for added in backend.get_added_tokens_decoder().values() if added.special}
    for name, candidates in CONVENTIONAL_NAMES.items():
        tokens[name] = tokens.get(name) or next((c for c in candidates if c in specials), None)
    return {name: token for name, token in tokens.items() if token is not None}


def check_special_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Raise unless every special token of ``tokenizer`` has an id inside ``model``'s input embedding.

    Run before any training (and on every load): a token a tokenizer added past the model's
    vocabulary (transformers' ``GPT2Tokenizer`` adds ``<|endoftext|>`` at id 51,200 to KoGPT2)
    would otherwise fail deep inside the first step with ``IndexError: index out of range in
    self`` (on a GPU, a device-side assert). The embedding is never resized to make room.

    Example:
        >>> model, tokenizer = load_embedded_default(from_scratch=True)
        >>> check_special_tokens(model, tokenizer)  # passes silently
    """
    rows = model.get_input_embeddings().num_embeddings
    for name in SPECIAL_TOKENS_ATTRIBUTES:
        token, token_id = getattr(tokenizer, name), getattr(tokenizer, f"{name}_id")
        if token is not None and (token_id is None or not 0 <= token_id < rows):
            raise ValueError(
                f"{name} {token!r} has id {token_id}, outside the model's embedding (ids 0..{rows - 1}): "
                "the tokenizer does not belong to this model, or added the token; load the tokenizer "
                "the model was trained with (nsmc-gen never resizes a base model's embedding)"
            )


def save_tokenizer(
    tokenizer: PreTrainedTokenizerBase, folder: str | Path, review_format: ReviewFormat | None = None
) -> None:
    """Save ``tokenizer`` in ``folder`` so that transformers 4.x and 5.x both load it faithfully.

    The one place nsmc-gen writes a tokenizer. transformers 5 names its fast tokenizers' class
    ``TokenizersBackend`` in tokenizer_config.json, a class 4.x does not have ("Tokenizer class
    TokenizersBackend does not exist"); ``PreTrainedTokenizerFast`` (5.x's alias of it) loads the
    saved tokenizer.json exactly as written in both. Everything else the tokenizer carries from its
    base's tokenizer_config.json is kept (``model_max_length``; ``chat_template``, in
    chat_template.jinja), except keys that describe the machine (:data:`MACHINE_KEYS`).

    With ``review_format`` (a fine-tuned model's folder, which clients generate from), the saved
    tokenizer.json's decoder keeps a continuation's leading space (:func:`continuation_decoder`;
    token ids do not change), and the tokenizer pads on the left: transformers 4.57's
    text-generation pipeline pads a batch on the side the tokenizer names, and right padding puts
    the pads between a short prompt and its continuation (the model then continues after them).
    Training never reads this setting: nsmc-gen's collators pad by themselves.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_tokenizer
        >>> save_tokenizer(load_embedded_tokenizer(), "/tmp/nsmc-gen-tokenizer")
        >>> import json; json.load(open("/tmp/nsmc-gen-tokenizer/tokenizer_config.json"))["tokenizer_class"]
        'PreTrainedTokenizerFast'
    """
    tokenizer.save_pretrained(folder)
    path = Path(folder) / "tokenizer_config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(tokenizer, PreTrainedTokenizerFast):
        saved["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    saved = {k: v for k, v in saved.items() if k not in MACHINE_KEYS}
    if review_format is not None:
        saved["padding_side"] = "left"
    if isinstance(saved.get("extra_special_tokens"), list):
        # transformers 5 writes a list under this name; 4.x reads a dict there (named tokens) and fails
        # ("'list' object has no attribute 'keys'"). Both read the list as additional_special_tokens.
        saved["additional_special_tokens"] = saved.pop("extra_special_tokens")
    write_text_atomic(path, json.dumps(saved, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    tokenizer_json = Path(folder) / "tokenizer.json"
    if review_format is not None and tokenizer_json.is_file():
        pipeline = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        decoder = continuation_decoder(pipeline.get("decoder"), review_format)
        if decoder is not None:
            pipeline["decoder"] = decoder
            write_text_atomic(tokenizer_json, json.dumps(pipeline, indent=2, ensure_ascii=False) + "\n")


# The decoder step that keeps a leading space except before the sentiment word: see continuation_decoder.
_KEEP_SPACE_PREFIX = r"\A (?="


def continuation_decoder(
    decoder: dict[str, Any] | None, review_format: ReviewFormat
) -> dict[str, Any] | None:
    r"""A tokenizer.json decoder (its JSON) that keeps a continuation's leading space; None: keep ``decoder``.

    A Metaspace tokenizer (KoGPT2, the embedded one) marks each word's space on the word's first
    token (``▁재밌는``), and its decoder drops the space that text's first token brings (the
    Metaspace decoder with a prefix scheme, or Llama's ``Strip``), since encoding added it. But
    transformers 5.x's ``pipeline`` decodes only the new tokens and appends them to the prompt
    (``return_full_text=False`` and ``TextStreamer(skip_prompt=True)`` show the new tokens alone,
    in 4.57 too), so ``pipeline("긍정")`` gives "긍정재밌는 영화": a missing space changes Korean
    words. A decoder cannot tell a continuation from a whole text by its tokens; but every whole
    text of a fine-tuned model starts with one of its sentiment words (the prompt format), so the
    decoder keeps a leading space except before a sentiment word: ``Replace`` with a regex after
    ``Fuse`` (tokenizers' Oniguruma supports ``\A`` and lookahead, in 0.22 as in 0.23). Whole
    texts ("긍정 재밌는 영화", and "긍정보기 ..." where a model glued its first token to the word)
    decode as before, and token ids do not change. What it costs: a text that starts with neither
    word (a bare review encoded and decoded alone) decodes with a leading space, and a continuation
    whose first word starts with a sentiment word (" 부정적인 ...") still loses it (the word alone
    cannot be told from a whole text's start). Candidates rejected: a decoder without the strip
    (every whole text would start with a space); a change to the pre-tokenizer (token ids would
    change). Byte-level tokenizers (Qwen, Llama-3) carry the space on the next token and strip
    nothing: their decoder is kept (None).

    Example:
        >>> from nsmc_gen.formatting import ReviewFormat
        >>> kogpt2 = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        >>> steps = continuation_decoder(kogpt2, ReviewFormat())["decoders"]
        >>> steps[0]["prepend_scheme"], steps[-1]["pattern"]["Regex"]
        ('never', '\\A (?=긍정|부정)')
    """
    words = "|".join(_onig_escape(w) for w in (review_format.positive_word, review_format.negative_word))
    keep = {"type": "Replace", "pattern": {"Regex": f"{_KEEP_SPACE_PREFIX}{words})"}, "content": ""}
    if not isinstance(decoder, dict):
        return None
    if decoder.get("type") == "Metaspace" and decoder.get("prepend_scheme", "always") != "never":
        return {
            "type": "Sequence",
            "decoders": [{**decoder, "prepend_scheme": "never"}, {"type": "Fuse"}, keep],
        }
    steps = decoder.get("decoders") if decoder.get("type") == "Sequence" else None
    if not steps or not any(step.get("type") == "Fuse" for step in steps):
        return None
    last = steps[-1]
    strips_one_space = last.get("type") == "Strip" and (
        last.get("content"),
        last.get("start"),
        last.get("stop"),
    ) == (" ", 1, 0)
    ours = last.get("type") == "Replace" and str(last.get("pattern", {}).get("Regex", "")).startswith(
        _KEEP_SPACE_PREFIX
    )
    return {**decoder, "decoders": [*steps[:-1], keep]} if strips_one_space or ours else None


def _onig_escape(text: str) -> str:
    """``text`` as a literal in an Oniguruma regex (Python's re.escape escapes more than it knows)."""
    return "".join(f"\\{c}" if c in r".^$*+?()[]{}|\/" else c for c in text)
