import pytest
import torch
from conftest import build_tiny_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from nsmc_gen.formatting import (
    IGNORE_INDEX,
    PackedReviewCollator,
    ReviewCollator,
    ReviewFormat,
    normalize_sentiment,
    review_format_of,
    tokenize_reviews,
)

REVIEWS = ["재밌어요 최고", "시간 아까운 영화...", "배우들 연기가 좋았다", "별로", "굿"]


def _train(model, pre_tokenizer, decoder, special):
    tok = Tokenizer(model)
    tok.pre_tokenizer, tok.decoder = pre_tokenizer, decoder
    texts = [ReviewFormat().example(r, i % 2) for i, r in enumerate(REVIEWS)] * 20
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=list(special.values())))
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


def kogpt2_style():
    """KoGPT2's tokenizer shape: BPE over Metaspace words, `</s>` as EOS, no byte fallback."""
    special = {"unk_token": "<unk>", "eos_token": "</s>", "bos_token": "</s>", "pad_token": "<pad>"}
    return _train(models.BPE(unk_token="<unk>"), pre_tokenizers.Metaspace(), decoders.Metaspace(), special)


def gpt2_style():
    """GPT-2's shape: byte-level BPE, the space belongs to the following word."""
    special = {"eos_token": "<|endoftext|>"}
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return _train(models.BPE(), pre, decoders.ByteLevel(), special)


def llama3_style(template: str = "<|begin_of_text|> $A"):
    """Llama-3's shape: byte-level BPE whose post-processor puts ``<|begin_of_text|>`` before every
    text (``template``: what it adds), no pad token."""
    special = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
    tokenizer = _train(
        models.BPE(), pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), special
    )
    backend = tokenizer.backend_tokenizer
    ids = [(token, backend.token_to_id(token)) for token in special.values()]
    backend.post_processor = processors.TemplateProcessing(single=template, special_tokens=ids)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


def bos_and_eos_style():
    """A tokenizer whose post-processor adds BOS before and EOS after every text."""
    return llama3_style("<|begin_of_text|> $A <|end_of_text|>")


LAYOUTS = {
    "kogpt2-style": kogpt2_style,
    "gpt2-style": gpt2_style,
    "llama3-style": llama3_style,
    "bos-and-eos-style": bos_and_eos_style,
}


@pytest.fixture(params=["shipped", *LAYOUTS])
def any_tokenizer(request, tokenizer):
    return tokenizer if request.param == "shipped" else LAYOUTS[request.param]()


def test_example_layout_is_the_course_format_then_eos(tokenizer):
    fmt = ReviewFormat()
    assert fmt.example("재밌어요", 1) == "긍정 재밌어요"
    assert fmt.example("재밌어요", "negative") == "부정 재밌어요"
    ids = tokenize_reviews({"document": ["재밌어요"], "label": [1]}, tokenizer)["input_ids"][0]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == ["▁", "긍", "정", "▁재밌어요", "</s>"]
    assert ids[-1] == tokenizer.eos_token_id


@pytest.mark.parametrize("sentiment", ["positive", "negative"])
@pytest.mark.parametrize("prompt", ["", "이 영화", "배우들"])
def test_prompt_ids_are_a_prefix_of_the_training_ids(any_tokenizer, sentiment, prompt):
    fmt = ReviewFormat()
    review = f"{prompt} 연기가 좋았다".strip()
    train_ids = tokenize_reviews(
        {"document": [review], "label": [int(sentiment == "positive")]}, any_tokenizer
    )
    prompt_ids = fmt.prompt_ids(any_tokenizer, sentiment, prompt)
    assert train_ids["input_ids"][0][: len(prompt_ids)] == prompt_ids
    assert len(prompt_ids) < len(train_ids["input_ids"][0])


@pytest.mark.parametrize("prompt", ["긍정", "긍정 이 영화", "부정 배우들"])
@pytest.mark.parametrize("layout", ["shipped", "kogpt2-style", "gpt2-style", "llama3-style"])
def test_what_a_pipeline_sends_is_a_prefix_of_a_training_example(tokenizer, layout, prompt):
    """``pipeline("text-generation")`` tokenizes its prompt as ``tokenizer(prompt)``: special tokens
    included. (A tokenizer that appends EOS to every text ends such a prompt with EOS: no client can
    continue that; see the next test.)"""
    tokenizer = tokenizer if layout == "shipped" else LAYOUTS[layout]()
    word, _, start = prompt.partition(" ")
    label = int(word == "긍정")
    example = tokenize_reviews({"document": [f"{start} 연기가 좋았다".strip()], "label": [label]}, tokenizer)
    sent = tokenizer(prompt)["input_ids"]
    assert example["input_ids"][0][: len(sent)] == sent
    assert ReviewFormat().prompt_ids(tokenizer, label, start) == sent


@pytest.mark.parametrize("layout", [*LAYOUTS])
def test_one_bos_where_the_tokenizer_puts_one_and_one_eos(tokenizer, layout):
    tokenizer = LAYOUTS[layout]()
    (ids,) = tokenize_reviews({"document": ["연기가 좋았다"], "label": [1]}, tokenizer)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    adds_bos = layout in ("llama3-style", "bos-and-eos-style")
    assert ids.count(bos) == (1 if adds_bos else 0) + (ids.count(eos) if bos == eos else 0)
    assert (ids[0] == bos) == adds_bos
    assert ids.count(eos) == 1 and ids[-1] == eos
    prompt = ReviewFormat().prompt_ids(tokenizer, "positive")
    assert ids[: len(prompt)] == prompt and eos not in prompt
    assert prompt[0] == bos if adds_bos else bos not in prompt
    empty = ReviewFormat().prompt_ids(tokenizer, None, "")  # generation's start from nothing
    assert empty == ([bos] if adds_bos else [])


def test_a_leading_bos_is_never_a_loss_target():
    """The model's shifted loss never predicts position 0; packing masks every review's first label."""
    bos, eos = 9, 2
    features = [{"input_ids": [bos, 5, 6, eos]}, {"input_ids": [bos, 7, eos]}]
    padded = ReviewCollator(pad_token_id=eos)(features)
    assert (padded["labels"][:, 1:] == bos).sum() == 0
    packed = PackedReviewCollator(pad_token_id=eos, max_length=8)(features)
    assert (packed["labels"] == bos).sum() == 0


def test_the_naive_prompt_with_a_trailing_space_is_an_unseen_state(tokenizer):
    """Why prompts are right-stripped: "긍정 " ends in a lone ▁ that no training example has."""
    naive = tokenizer("긍정 ", add_special_tokens=False)["input_ids"]
    train = tokenizer(ReviewFormat().example("재밌어요", 1), add_special_tokens=False)["input_ids"]
    assert train[: len(naive)] != naive


def test_custom_sentiment_words_flow_into_examples_and_prompts(tokenizer):
    fmt = ReviewFormat(positive_word="좋음", negative_word="나쁨")
    assert fmt.prompt("positive", "이 영화 ") == "좋음 이 영화"
    rows = tokenize_reviews({"document": ["최고"], "label": [0]}, tokenizer, review_format=fmt)
    assert tokenizer.decode(rows["input_ids"][0]) == "나쁨 최고</s>"
    assert fmt.strip_prefix("나쁨 최고", "negative") == "최고"


def test_bare_reviews_for_language_modelling(tokenizer):
    rows = tokenize_reviews({"document": ["최고"], "label": [1]}, tokenizer, review_format=None)
    assert tokenizer.decode(rows["input_ids"][0]) == "최고</s>"


def test_truncated_examples_carry_no_eos(tokenizer):
    rows = tokenize_reviews({"document": ["아주 " * 50], "label": [1]}, tokenizer, max_length=8)
    assert len(rows["input_ids"][0]) == 8
    assert tokenizer.eos_token_id not in rows["input_ids"][0]


@pytest.mark.parametrize(
    ("bad", "message"),
    [("neutral", "'positive' or 'negative'"), (2, r"0 \(negative\) or 1 \(positive\)"), (None, "sentiment")],
)
def test_bad_sentiments_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        normalize_sentiment(bad)


def test_bad_sentiment_words_are_rejected():
    with pytest.raises(ValueError, match="positive_word"):
        ReviewFormat(positive_word="긍정 ")
    with pytest.raises(ValueError, match="must differ"):
        ReviewFormat(positive_word="a", negative_word="a")


def test_the_format_is_read_back_from_what_the_generation_config_stores(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    from nsmc_gen.decoding import recommended_generation_config

    fmt = ReviewFormat(positive_word="좋아", negative_word="싫어", separator=": ")
    config = recommended_generation_config(tokenizer, fmt)
    assert ReviewFormat.from_generation_config(config) == fmt
    assert ReviewFormat.from_generation_config(config.to_dict()) == fmt  # the JSON file, as read
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=10))
    assert review_format_of(model) == ReviewFormat()  # no field: a base model, the default format
    model.generation_config = config
    assert review_format_of(model) == fmt
    assert config.sentiment_guidance["prompt_ids"]["positive"] == fmt.prompt_ids(tokenizer, "positive")
    with pytest.raises(ValueError, match="'sentiment_guidance' field must be a mapping"):
        ReviewFormat.from_generation_config({"sentiment_guidance": ["좋아"]})


def test_dynamic_padding_masks_padding_by_position_not_by_id():
    pad_is_eos = 2  # like GPT-2 with pad = eos: EOS must still be learned
    batch = ReviewCollator(pad_token_id=pad_is_eos)([{"input_ids": [5, 6, 2]}, {"input_ids": [7, 2]}])
    assert batch["input_ids"].tolist() == [[5, 6, 2], [7, 2, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[5, 6, 2], [7, 2, IGNORE_INDEX]]


def test_pad_to_multiple_of():
    batch = ReviewCollator(pad_token_id=0, pad_to_multiple_of=8)([{"input_ids": [5, 6, 2]}])
    assert batch["input_ids"].shape == (1, 8)
    assert (batch["labels"][0, 3:] == IGNORE_INDEX).all()


def test_packing_fills_rows_and_matches_the_unpacked_loss(tokenizer):
    model = build_tiny_model(tokenizer)
    torch.manual_seed(0)
    features = [{"input_ids": torch.randint(3, len(tokenizer), (n,)).tolist()} for n in (5, 9, 3, 7, 2)]
    packed = PackedReviewCollator(pad_token_id=tokenizer.pad_token_id, max_length=12)(features)
    assert packed["input_ids"].shape[1] <= 12
    assert packed["input_ids"].shape[0] < len(features)  # reviews share rows
    padded = ReviewCollator(pad_token_id=tokenizer.pad_token_id)(features)
    with torch.no_grad():
        packed_loss = model(**packed).loss
        padded_loss = model(**padded).loss
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-5, atol=1e-5)


def test_packing_never_labels_across_reviews():
    batch = PackedReviewCollator(pad_token_id=0, max_length=6)(
        [{"input_ids": [5, 6, 2]}, {"input_ids": [7, 2]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 2, 7, 2]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 2, IGNORE_INDEX, 2]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    mask = batch["attention_mask"][0, 0]
    assert not mask[3, :3].any()  # the second review sees nothing of the first
    assert mask[4, 3:5].all()
