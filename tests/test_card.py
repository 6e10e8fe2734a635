"""The model card: rendered from ``model_card.md`` with the folder's real figures; parses on the Hub side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from nsmc_gen.decoding import recommended_generation_config
from nsmc_gen.model_folder import RUN_FACTS, render_model_card, save_model_card
from nsmc_gen.modeling import KOGPT2

RUN = {  # nsmc_gen_run.json as nsmc_gen.training writes it (the keys the card reads)
    "base_model": "embedded",
    "dataset": "e9t/nsmc",
    "data_source": "https://raw.githubusercontent.com/e9t/nsmc/master/",
    "train_rows": 25_000,
    "validation_rows": 5_000,
    "epochs": 3.0,
    "global_step": 1_173,
    "train_tokens": 1_812_345,
    "learning_rate": 5e-4,
    "lr_scheduler": "cosine",
    "batch_size": 64,
    "max_length": 96,
    "packing": True,
    "precision": "float32",
    "seed": 7,
    "eval_loss": 4.0301,
    "eval_perplexity": 56.27,
    "test_perplexity": 57.9,
    "peft": None,
    "merged": False,
    "command": "accelerate launch recipes/finetune.py --hub_token hf_SECRETsecretSECRET123 --max_steps 9",
    "decoding_study": "| strategy | control |\n|---|---|\n| greedy | 0.91 |",
}


@pytest.fixture
def model_folder(tiny_model_dir, tokenizer):
    """The tiny model folder completed like the training recipe completes it."""
    recommended_generation_config(tokenizer, top_p=0.85, max_new_tokens=40).save_pretrained(tiny_model_dir)
    (tiny_model_dir / RUN_FACTS).write_text(json.dumps(RUN), encoding="utf-8")
    return tiny_model_dir


def test_card_metadata_parses_with_the_run_figures(model_folder, tiny_model):
    path = save_model_card(model_folder, repo_id="org/kogpt2-nsmc")
    card = ModelCard.load(path)  # what the Hub reads: the text, not our object
    data = card.data
    assert data.language == "ko"
    assert data.pipeline_tag == "text-generation"
    assert data.license == "apache-2.0"
    assert data.datasets == ["e9t/nsmc"]
    assert {"korean", "nsmc", "gpt2"} <= set(data.tags)
    assert data.base_model is None  # the embedded base has no Hub id to link
    perplexities = {
        r.dataset_split: r.metric_value for r in data.eval_results if r.metric_type == "perplexity"
    }
    assert perplexities == {"held-out-validation": RUN["eval_perplexity"], "test": RUN["test_perplexity"]}
    assert data.model_name == "kogpt2-nsmc"
    text = card.text
    assert 'pipeline("text-generation", model="org/kogpt2-nsmc")' in text
    assert "1,812,345" in text and "25,000 training reviews" in text and "cosine schedule" in text
    assert "| Training length | 3.00 epochs, 1,173 optimizer steps |" in text
    assert "| greedy | 0.91 |" in text
    assert f"{tiny_model.num_parameters() / 1e3:.1f} k" in text
    assert "slurs" in text and "poiler" in text


def test_decoding_defaults_come_from_the_folder(model_folder):
    text = render_model_card(model_folder).text
    assert "| `top_p` | 0.85 |" in text and "| `max_new_tokens` | 40 |" in text
    assert "| `top_k` | 0 |" in text and "| `temperature` | 1.0 |" in text
    assert "top_p=0.85" in text


def test_local_data_paths_stay_private(model_folder):
    assert f"Data source | {RUN['data_source']} |" in render_model_card(model_folder).text
    facts = {**RUN, "data_source": "/home/someone/nsmc"}
    (model_folder / RUN_FACTS).write_text(json.dumps(facts), encoding="utf-8")
    text = render_model_card(model_folder).text
    assert "/home/someone" not in text and "Data source | a local folder of NSMC-format files |" in text


def test_token_never_reaches_the_card(model_folder):
    text = str(render_model_card(model_folder))
    assert "hf_SECRET" not in text and "SECRETsecret" not in text
    assert "--max_steps 9" in text


def test_missing_run_facts_render_gracefully(model_folder):
    (model_folder / RUN_FACTS).unlink()
    card = render_model_card(model_folder)
    assert card.data.eval_results is None  # no invented figures in the metadata
    assert card.data.language == "ko" and card.data.pipeline_tag == "text-generation"
    assert "not recorded" in card.text
    assert "None" not in card.text
    assert "Reproduce the run" not in card.text


def test_kogpt2_base_links_and_inherits_its_licence(model_folder):
    (model_folder / RUN_FACTS).write_text(json.dumps({**RUN, "base_model": KOGPT2}), encoding="utf-8")
    data = render_model_card(model_folder).data
    assert data.base_model == KOGPT2
    assert data.license == "cc-by-nc-sa-4.0"
    assert data.to_dict()["base_model_relation"] == "finetune"


def test_lora_adapter_card(tmp_path, tiny_model, tokenizer):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=["c_attn"], fan_in_fan_out=True)
    peft_model = get_peft_model(tiny_model, config)
    peft_model.peft_config["default"].base_model_name_or_path = KOGPT2  # as from_pretrained(KOGPT2) sets it
    folder = tmp_path / "adapter"
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    recommended_generation_config(tokenizer).save_pretrained(folder)
    card = render_model_card(folder, repo_id="org/kogpt2-nsmc-lora")
    assert card.data.library_name == "peft"
    assert card.data.base_model == KOGPT2
    assert card.data.to_dict()["base_model_relation"] == "adapter"
    assert "lora" in card.data.tags
    assert "r=4, alpha=8, dropout=0.05, target modules: c_attn" in card.text
    assert "LoRA adapter" in card.text


def test_embedded_adapter_card_names_the_run_base_not_the_weights_path(tmp_path, tiny_model, tokenizer):
    """An embedded-base adapter points peft at the shipped weights folder (a site-packages path);
    the card names the base as the run did."""
    from peft import LoraConfig, get_peft_model

    from nsmc_gen.modeling import EMBEDDED, EMBEDDED_BASE

    peft_model = get_peft_model(tiny_model, LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True))
    peft_model.peft_config["default"].base_model_name_or_path = str(EMBEDDED_BASE)
    folder = tmp_path / "adapter"
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    recommended_generation_config(tokenizer).save_pretrained(folder)
    (folder / RUN_FACTS).write_text(json.dumps({"base_model": EMBEDDED}), encoding="utf-8")
    card = render_model_card(folder, repo_id="org/embedded-lora")
    assert str(EMBEDDED_BASE) not in card.text
    assert card.data.base_model is None  # not a Hub id: no base_model link


def test_custom_generate_changes_the_guidance_section(model_folder):
    assert "not shipped here" in render_model_card(model_folder).text
    (model_folder / "custom_generate").mkdir()
    (model_folder / "custom_generate" / "generate.py").write_text("def generate(model, **kw): ...\n")
    text = render_model_card(model_folder).text
    assert "ships `custom_generate/`" in text and "not shipped here" not in text
    assert "trust_remote_code=True" in text
    config = json.loads((model_folder / "generation_config.json").read_text())
    config["sentiment_guidance"] = {"scale": 2.5, "prompt_ids": {}}
    (model_folder / "generation_config.json").write_text(json.dumps(config))
    assert "(default scale 2.5)" in render_model_card(model_folder).text


def test_missing_generation_config_is_named(tiny_model_dir):
    (tiny_model_dir / "generation_config.json").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="generation_config.json"):
        render_model_card(tiny_model_dir)


def test_template_without_metadata_is_refused(model_folder, tmp_path):
    template = tmp_path / "bare.md"
    template.write_text("# {{ model_id }}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="without YAML metadata"):
        render_model_card(model_folder, template=template)


def test_save_is_atomic_and_replaces(model_folder):
    (model_folder / "README.md").write_text("old card", encoding="utf-8")
    save_model_card(model_folder)
    assert ModelCard.load(model_folder / "README.md").data.language == "ko"
    assert not [p for p in model_folder.iterdir() if p.name.endswith(".tmp")]


def test_merged_lora_copy_says_so(model_folder):
    lora = {
        "r": 8,
        "alpha": 16,
        "dropout": 0.05,
        "target_modules": ["c_proj", "c_attn"],
        "merged_copy": "merged",
    }
    (model_folder / RUN_FACTS).write_text(
        json.dumps({**RUN, "base_model": KOGPT2, "peft": lora, "merged": True}), encoding="utf-8"
    )
    card = render_model_card(model_folder)
    assert card.data.library_name == "transformers" and "lora" in card.data.tags
    assert "**merged** into the weights of `skt/kogpt2-base-v2`" in card.text
    assert "r=8, alpha=16, dropout=0.05, target modules: c_attn, c_proj" in card.text


def test_from_scratch_run_names_no_base(model_folder):
    (model_folder / RUN_FACTS).write_text(
        json.dumps({**RUN, "base_model": None, "from_scratch_config": "embedded"}), encoding="utf-8"
    )
    card = render_model_card(model_folder)
    assert card.data.base_model is None
    assert "none (trained from random initialisation)" in card.text


def test_unknown_base_licence_is_not_guessed(model_folder):
    (model_folder / RUN_FACTS).write_text(
        json.dumps({**RUN, "base_model": "someorg/other-gpt"}), encoding="utf-8"
    )
    card = render_model_card(model_folder)
    assert card.data.base_model == "someorg/other-gpt"
    assert card.data.license is None and "see the base model's card" in card.text


def test_the_wheel_carries_the_top_level_card_template():
    """assets/model_card.md (package data, so a wheel has it) is the top-level model_card.md itself."""
    from importlib import resources

    packaged = Path(str(resources.files("nsmc_gen") / "assets" / "model_card.md"))
    top_level = Path(__file__).resolve().parents[1] / "model_card.md"
    assert packaged.read_bytes() == top_level.read_bytes()
    assert packaged.resolve() == top_level.resolve()  # a link, not a copy that could drift


# ------------------------------------------------------------------- a card a visitor can trust

SAMPLE_RUN = {  # the no-argument run: the shipped sample, drawn from the NSMC rebuild
    **RUN,
    "dataset": "e9t/nsmc",
    "data_source": "nsmc-gen's shipped NSMC sample",
    "train_rows": 30_000,
    "validation_rows": 1_000,
    "test_perplexity": 147.66,
    "test_data": None,
    "sentiment_control": 0.97,
    "command": "/home/me/nsmc-gen/recipes/finetune.py --output_dir /home/me/runs/embedded "
    "--data_dir /home/me/nsmc-gen/src/nsmc_gen/assets/nsmc-sample --max_steps 9 --learning_rate 0.002",
}


def write_facts(folder: Path, **facts) -> None:
    (folder / RUN_FACTS).write_text(json.dumps({**SAMPLE_RUN, **facts}), encoding="utf-8")


def official_words(text: str) -> list[str]:
    """Phrases that read as NSMC's official splits."""
    return [w for w in ("NSMC test", "NSMC validation", "(NSMC test)", "e9t/nsmc:") if w in text]


def test_every_figure_names_data_that_cannot_pass_for_the_official_split(model_folder):
    write_facts(model_folder)
    card = render_model_card(model_folder, repo_id="org/embedded-nsmc")
    text = card.text
    assert not official_words(str(card)), official_words(str(card))
    assert "drawn from an NSMC rebuild (not the official NSMC files)" in text
    assert "30,000 training reviews" in text and "1,000 validation reviews" in text
    validation = (
        "the shipped sample's validation reviews, held out from training (not an official NSMC split)"
    )
    assert text.count(validation) == 3, text  # the summary, and the loss and perplexity rows
    assert "the test reviews given to `nsmc-gen evaluate` (which ones: not recorded)" in text
    data = card.data
    assert data.datasets is None  # no link that says "trained on e9t/nsmc"
    for result in data.eval_results:  # the model-index carries the same words
        entry = f"{result.dataset_type} {result.dataset_name} {result.dataset_split} {result.metric_name}"
        assert not official_words(entry) and result.dataset_type != "e9t/nsmc", entry
    entry = next(r for r in data.eval_results if r.dataset_split == "held-out-validation")
    assert validation in entry.dataset_name and validation in entry.metric_name
    assert "NSMC rebuild" in entry.dataset_name
    write_facts(model_folder, test_data="NSMC-rebuild test (50,000 reviews; not the official NSMC test)")
    card = render_model_card(model_folder, repo_id="org/embedded-nsmc")
    test = next(r for r in card.data.eval_results if r.dataset_split == "test")
    assert test.dataset_name.startswith("NSMC-rebuild test") and "NSMC-rebuild test (50,000" in card.text


def test_official_data_is_named_and_linked_as_such(model_folder):
    card = render_model_card(model_folder, repo_id="org/kogpt2-nsmc")
    assert card.data.datasets == ["e9t/nsmc"]
    assert "NSMC (the official e9t/nsmc files)" in card.text
    assert "NSMC has no validation split" in card.text


def test_usage_code_names_the_pushed_id_or_a_placeholder_never_the_folder(model_folder):
    write_facts(model_folder)
    assert model_folder.name == "tiny-model"
    local = render_model_card(model_folder).text
    assert 'model="your-name/your-model"' in local and "nsmc-gen generate your-name/your-model" in local
    assert "stands for the Hub id this model is published under" in local
    assert 'model="tiny-model"' not in local and "generate tiny-model" not in local
    pushed = render_model_card(model_folder, repo_id="org/embedded-nsmc").text
    assert 'model="org/embedded-nsmc"' in pushed and "nsmc-gen generate org/embedded-nsmc" in pushed
    assert "your-name/your-model" not in pushed and "stands for the Hub id" not in pushed


def test_reproduce_the_run_is_a_command_that_runs_from_a_clone(model_folder):
    from nsmc_gen.arguments import parse_args

    write_facts(model_folder)
    text = render_model_card(model_folder).text
    block = text.split("Reproduce the run", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert block == "accelerate launch recipes/finetune.py --max_steps 9 --learning_rate 0.002"
    assert "/home/me" not in text
    words = block.split()
    assert (Path(__file__).resolve().parents[1] / words[2]).is_file()  # the script, in a clone
    _, _, _, args = parse_args(words[3:])  # the recipe takes every option
    assert (args.max_steps, args.learning_rate) == (9, 0.002)


def test_the_text_never_contradicts_its_decoding_table(model_folder, tokenizer):
    assert "| `min_new_tokens` | 0 |" in render_model_card(model_folder).text
    text = render_model_card(model_folder).text
    assert "pass `min_new_tokens=0`" not in text and "No length floor (`min_new_tokens` 0)" in text
    recommended_generation_config(tokenizer, min_new_tokens=8).save_pretrained(model_folder)
    text = render_model_card(model_folder).text
    assert "| `min_new_tokens` | 8 |" in text and "pass `min_new_tokens=0`" in text


def test_review_lengths_of_both_paths_and_the_plain_eos_bias(model_folder, tokenizer):
    from nsmc_gen.model_folder import save_plain_eos_bias

    lengths = {
        "reference": {"reviews": 30000, "mean_characters": 35.8, "share_under_5": 0.035},
        "plain": {"reviews": 400, "mean_characters": 34.7, "share_under_5": 0.04},
        "nsmc_gen": {"reviews": 400, "mean_characters": 32.6, "share_under_5": 0.03},
    }
    write_facts(model_folder)
    text = render_model_card(model_folder).text
    assert "### Review lengths" in text and "Not recorded" in text and "sequence_bias" not in text
    write_facts(model_folder, review_lengths=lengths)
    save_plain_eos_bias(model_folder, -1.5)
    text = render_model_card(model_folder).text
    assert "| training reviews (30,000) | 35.8 | 3.5% |" in text
    assert "| plain `pipeline` / `generate` (these defaults, EOS bias -1.50) | 34.7 | 4.0% |" in text
    assert "| 32.6 | 3.0% |" in text and "never both" in text
    assert "adds a constant -1.50 to the end-of-sequence logit" in text
