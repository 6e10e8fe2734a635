"""THE prompt format: what a training example looks like and how a generation prompt is built.

Training text is the course's: the sentiment word, a space, the review, then EOS
(``"긍정 재밌어요</s>"``). Generation prompts come from the same :class:`ReviewFormat`, so
training and inference cannot drift apart.

The token boundary matters: with a Metaspace (SentencePiece-style) tokenizer, ``"긍정 "`` alone
encodes as ``▁긍정`` + a lone ``▁`` that no training example contains after the prefix; with a
byte-level BPE the space belongs to the next word. Prompts are therefore right-stripped, and
:meth:`ReviewFormat.prompt_ids` is tested to be an exact prefix of a training example's ids.

Examples and prompts are tokenized the way the base's tokenizer tokenizes any text, its special
tokens included (:func:`encode`): a Llama-3 tokenizer's post-processor puts ``<|begin_of_text|>``
before every text, and every client (``pipeline``, ``tokenizer(text)``, vLLM) sends it, so the model
is fine-tuned with it too. The ids ``pipeline`` sends for ``"긍정"`` are then an exact prefix of a
training example on every layout; EOS ends each example exactly once.

Example:
    >>> fmt = ReviewFormat()
    >>> fmt.example("재밌어요", label=1)
    '긍정 재밌어요'
    >>> fmt.prompt("positive")
    '긍정'
    >>> fmt.prompt("negative", "이 영화")
    '부정 이 영화'
    >>> fmt.strip_prefix("부정 이 영화 별로", "negative")
    '이 영화 별로'

The format travels with the model: the ``sentiment_guidance`` field of its
``generation_config.json`` records the words (:func:`nsmc_gen.decoding.sentiment_guidance` writes
it), and :func:`review_format_of` reads them back for every consumer (generation, the CLI, the
demo, the study and its judges), so no ``review_format=`` argument has to travel with the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch

from nsmc_gen.custom_generate.generate import GUIDANCE_FIELD

Sentiment = Literal["positive", "negative"]
SENTIMENTS: tuple[Sentiment, Sentiment] = ("negative", "positive")  # index == NSMC label
IGNORE_INDEX = -100  # labels that never count in the loss (padding, packing boundaries)


@dataclass(frozen=True)
class ReviewFormat:
    """The sentiment-prefixed review format (``"긍정 <review>"`` / ``"부정 <review>"``).

    Args:
        positive_word: word that steers towards a positive review (label 1).
        negative_word: word that steers towards a negative review (label 0).
        separator: text between the sentiment word and the review.
    """

    positive_word: str = "긍정"
    negative_word: str = "부정"
    separator: str = " "

    def __post_init__(self) -> None:
        for name in ("positive_word", "negative_word"):
            word = getattr(self, name)
            if not word or word != word.strip():
                raise ValueError(f"{name} must be a non-empty word without surrounding spaces, got {word!r}")
        if self.positive_word == self.negative_word:
            raise ValueError("positive_word and negative_word must differ")

    @classmethod
    def from_generation_config(cls, config: Any) -> ReviewFormat:
        """The format a model was trained on, as its generation config records it.

        Args:
            config: a ``GenerationConfig``, or ``generation_config.json`` read as a dict, or None.

        Returns:
            The words of the config's ``sentiment_guidance`` field; the default format where the
            field (or its words) is missing: a base model, or a folder written before the words were.

        Example:
            >>> from transformers import GenerationConfig
            >>> ReviewFormat.from_generation_config(GenerationConfig())
            ReviewFormat(positive_word='긍정', negative_word='부정', separator=' ')
            >>> words = {"positive_word": "좋아", "negative_word": "싫어", "separator": " "}
            >>> ReviewFormat.from_generation_config({"sentiment_guidance": words}).prompt("negative")
            '싫어'
        """
        field = (
            config.get(GUIDANCE_FIELD)
            if isinstance(config, Mapping)
            else getattr(config, GUIDANCE_FIELD, None)
        )
        if field is not None and not isinstance(field, Mapping):
            raise ValueError(
                f"the generation config's {GUIDANCE_FIELD!r} field must be a mapping, got {field!r}"
            )
        words = {f.name: field[f.name] for f in fields(cls) if field and f.name in field}
        try:
            return cls(**words)
        except ValueError as error:
            raise ValueError(f"the generation config's {GUIDANCE_FIELD!r} field: {error}") from error

    def to_dict(self) -> dict[str, str]:
        """The words, as the ``sentiment_guidance`` field stores them.

        Example:
            >>> ReviewFormat().to_dict()
            {'positive_word': '긍정', 'negative_word': '부정', 'separator': ' '}
        """
        return asdict(self)

    def word(self, sentiment: Sentiment | int) -> str:
        """The sentiment word for ``"positive"``/``"negative"`` or an NSMC label (1/0)."""
        return self.positive_word if normalize_sentiment(sentiment) == "positive" else self.negative_word

    def example(self, document: str, label: int | Sentiment) -> str:
        """The training text for one review (EOS is added at tokenization)."""
        return f"{self.word(label)}{self.separator}{document}"

    def prompt(self, sentiment: Sentiment | int | None = None, prompt: str = "") -> str:
        """The generation prompt: the start of a training example, right-stripped."""
        text = prompt if sentiment is None else self.example(prompt, sentiment)
        return text.rstrip()

    def strip_prefix(self, text: str, sentiment: Sentiment | int | None) -> str:
        """Remove the sentiment word (and separator) from a generated text."""
        if sentiment is not None:
            word = self.word(sentiment)
            if text.startswith(word):
                text = text[len(word) :]
        return text.strip()

    def prompt_ids(
        self, tokenizer: Any, sentiment: Sentiment | int | None = None, prompt: str = ""
    ) -> list[int]:
        """Token ids of :meth:`prompt`: an exact prefix of the matching training example's ids, and
        what ``tokenizer(prompt)`` (a ``pipeline``) gives, BOS included, less any token the
        tokenizer appends to every text (a prompt is continued, not ended)."""
        return encode(tokenizer, [self.prompt(sentiment, prompt)], ending=False)[0]


def review_format_of(model: Any) -> ReviewFormat:
    """The format ``model`` was trained on: :meth:`ReviewFormat.from_generation_config` of its
    ``generation_config`` (the default format for a model without the field, e.g. a base model).

    To prompt a model with the words it was trained on when its folder does not record them, give
    it the field once: ``model.generation_config.sentiment_guidance = sentiment_guidance(tokenizer,
    ReviewFormat(...))`` (:func:`nsmc_gen.decoding.sentiment_guidance`).

    Example:
        >>> from nsmc_gen.modeling import load_embedded_default
        >>> model, tokenizer = load_embedded_default()
        >>> review_format_of(model).prompt("positive")
        '긍정'
    """
    return ReviewFormat.from_generation_config(getattr(model, "generation_config", None))


def normalize_sentiment(sentiment: Sentiment | int | str) -> Sentiment:
    """Map ``"positive"``/``"negative"`` (any case) or an NSMC label 1/0 to the canonical name."""
    if isinstance(sentiment, bool) or not isinstance(sentiment, (int, str)):
        raise ValueError(f"sentiment must be 'positive', 'negative', 1 or 0, got {sentiment!r}")
    if isinstance(sentiment, int):
        if sentiment not in (0, 1):
            raise ValueError(f"sentiment label must be 0 (negative) or 1 (positive), got {sentiment}")
        return SENTIMENTS[sentiment]
    name = sentiment.strip().lower()
    if name not in SENTIMENTS:
        raise ValueError(f"sentiment must be 'positive' or 'negative', got {sentiment!r}")
    return name  # type: ignore[return-value]


def tokenize_reviews(
    batch: dict[str, list],
    tokenizer: Any,
    review_format: ReviewFormat | None = ReviewFormat(),
    max_length: int = 128,
) -> dict[str, list[list[int]]]:
    """Tokenize a batch of NSMC rows into training examples, for ``Dataset.map(batched=True)``.

    Each example is the formatted text followed by EOS. With ``review_format=None`` the bare
    review is used (plain language modelling, as for pretraining the embedded base). Examples
    longer than ``max_length`` are truncated and then carry no EOS: the model must not learn
    to stop where a review was cut.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_tokenizer
        >>> tok = load_embedded_tokenizer()
        >>> rows = tokenize_reviews({"document": ["최고"], "label": [1]}, tok)
        >>> tok.decode(rows["input_ids"][0])
        '긍정 최고</s>'
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token: set one so the model learns where a review ends")
    if review_format is None:
        texts = list(batch["document"])
    else:
        texts = [review_format.example(d, y) for d, y in zip(batch["document"], batch["label"], strict=True)]
    return {"input_ids": [ids[:max_length] for ids in encode(tokenizer, texts, ending=True)]}


def encode(tokenizer: Any, texts: Sequence[str], ending: bool) -> list[list[int]]:
    """``texts`` as ``tokenizer(text)`` tokenizes any text: the special tokens its post-processor
    adds included (Llama-3's ``<|begin_of_text|>``).

    Args:
        ending: each text is a whole example, ending with EOS exactly once (appended unless the
            post-processor already ends every text with it); else a prompt, without the tokens
            the post-processor appends to every text.

    Example:
        >>> from nsmc_gen.modeling import load_embedded_tokenizer
        >>> tok = load_embedded_tokenizer()  # no post-processor tokens: KoGPT2's layout too
        >>> encode(tok, ["긍정"], ending=True)[0] == tok("긍정")["input_ids"] + [tok.eos_token_id]
        True
    """
    encoded = tokenizer(list(texts), return_special_tokens_mask=True)
    rows = []
    for ids, special in zip(encoded["input_ids"], encoded["special_tokens_mask"], strict=True):
        appended = _appended_count(special, tokenizer)
        if ending:
            ends_with_eos = appended and ids[-1] == tokenizer.eos_token_id
            rows.append(list(ids) if ends_with_eos else [*ids, tokenizer.eos_token_id])
        else:
            rows.append(list(ids[: len(ids) - appended]))
    return rows


def _appended_count(special_tokens_mask: Sequence[int], tokenizer: Any) -> int:
    """Tokens the post-processor put after the text: the special ones after its last text token.

    ``special_tokens_mask`` marks only what the post-processor added (a special token written in
    the text itself counts as text). A text of no tokens (an empty prompt) says nothing of where
    they went: a short text the tokenizer knows does.
    """
    text = [i for i, added in enumerate(special_tokens_mask) if not added]
    if text:
        return len(special_tokens_mask) - 1 - text[-1]
    if not special_tokens_mask:
        return 0
    for probe in _PROBES:
        mask = tokenizer(probe, return_special_tokens_mask=True)["special_tokens_mask"]
        if not all(mask):
            return _appended_count(mask, tokenizer)
    return 0


_PROBES = ("a", "1", ".", "이", "가")  # texts of one token or two in any Korean or byte-level vocabulary


class ReviewCollator:
    """Dynamic padding for causal LM training: pad to the longest example in the batch.

    Labels copy the input ids with padding set to -100, decided by position (not by token id),
    so a model whose pad token equals its EOS token still learns to emit EOS.

    Example:
        >>> collate = ReviewCollator(pad_token_id=0)
        >>> batch = collate([{"input_ids": [5, 6, 2]}, {"input_ids": [7, 2]}])
        >>> batch["labels"].tolist()
        [[5, 6, 2], [7, 2, -100]]
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, (feature, length) in enumerate(zip(features, lengths, strict=True)):
            input_ids[row, :length] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            attention_mask[row, :length] = 1
        labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class PackedReviewCollator:
    """Packing: several reviews per row of ``max_length`` tokens, none attending to another.

    Reviews are placed first-fit into rows; each row gets restarting ``position_ids`` and a
    block-diagonal causal 4-D boolean ``attention_mask`` (honoured by the ``sdpa`` attention
    implementation, transformers' default). Each review's first label and all padding are -100,
    so the loss equals the unpacked one while almost no compute goes to padding.

    Written by hand, not transformers' ``DataCollatorWithFlattening``: that one gives the same
    loss but flattens the whole batch into ONE row, so sdpa's block-causal mask spans the batch
    and attention grows with the square of its total length; rows of ``max_length`` keep it
    small (1.56x the review tokens per CPU-second on the embedded model, batch 32:
    ``python benchmarks/train_throughput.py``).

    Example:
        >>> collate = PackedReviewCollator(pad_token_id=0, max_length=6)
        >>> batch = collate([{"input_ids": [5, 6, 2]}, {"input_ids": [7, 2]}])
        >>> batch["input_ids"].tolist(), batch["labels"].tolist()
        ([[5, 6, 2, 7, 2]], [[-100, 6, 2, -100, 2]])
    """

    def __init__(self, pad_token_id: int, max_length: int = 128) -> None:
        self.pad_token_id = pad_token_id
        self.max_length = max_length

    def _rows(self, features: Sequence[dict[str, Any]]) -> list[list[list[int]]]:
        rows: list[list[list[int]]] = []
        free: list[int] = []
        for feature in sorted(features, key=lambda f: -len(f["input_ids"])):
            ids = list(feature["input_ids"])[: self.max_length]
            slot = next((r for r, room in enumerate(free) if room >= len(ids)), None)
            if slot is None:
                rows.append([])
                free.append(self.max_length)
                slot = len(rows) - 1
            rows[slot].append(ids)
            free[slot] -= len(ids)
        return rows

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = self._rows(features)
        width = max(sum(map(len, row)) for row in rows)
        shape = (len(rows), width)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        segment = -torch.arange(1, width + 1).repeat(len(rows), 1)  # padding: a segment of its own
        for r, row in enumerate(rows):
            start = 0
            for s, ids in enumerate(row):
                end = start + len(ids)
                input_ids[r, start:end] = torch.as_tensor(ids)
                labels[r, start + 1 : end] = torch.as_tensor(ids[1:], dtype=torch.long)
                position_ids[r, start:end] = torch.arange(len(ids))
                segment[r, start:end] = s
                start = end
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        attention_mask = (segment[:, :, None] == segment[:, None, :]) & causal
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": position_ids,
            "attention_mask": attention_mask[:, None],
        }
