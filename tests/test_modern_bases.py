"""Modern Korean bases as users bring them, end to end: Qwen2.5, Llama-3.2 (kanana's layout),
polyglot-ko (GPT-NeoX) and EXAONE-4.0, each a faithful tiny replica loaded by its real id from a
Hub cache (``tests/replicas.py``).

On each: the recipes (full, and LoRA + merge) by id; the training examples against what a
``pipeline`` user sends (the prompt an exact token prefix, one BOS where the tokenizer adds one,
one EOS at the end); the saved tokenizer's metadata; the folders' dtype; adapter against merged;
``nsmc-gen generate``; the demo page; a push to the loopback Hub server; and the published folders
read back by transformers 5.x and 4.57 in fresh processes (``tests/transformers_client.py``), plain
and with remote code. ``docs/bring-your-own-base.md`` states the matrix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_transformers4
import torch
import transformers_client
from conftest import REPO, load_finetune_recipe
from hub_server import HubServer
from huggingface_hub import constants
from replicas import (
    EXAONE,
    LLAMA,
    MODERN_BASES,
    MODERN_DTYPES,
    POLYGLOT,
    QWEN,
    byte_level_bpe,
    nsmc_sample_reviews,
    put_in_hub_cache,
    write_modern_repo,
)
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, pipeline

from nsmc_gen import cli
from nsmc_gen.arguments import parse_args
from nsmc_gen.formatting import ReviewFormat
from nsmc_gen.hub import validate_model_folder
from nsmc_gen.modeling import load_model_and_tokenizer
from nsmc_gen.tokenization import load_tokenizer
from nsmc_gen.training import load_model, prepare_datasets

RECIPES = REPO / "recipes"
# The recipe each layout runs: Qwen's own; Llama-3.2's layout is kanana's (its LoRA recipe); EXAONE
# shares Qwen's module names; GPT-NeoX names its linear layers otherwise.
FULL = {base: RECIPES / "qwen2.5-0.5b" / "full.yaml" for base in MODERN_BASES}
LORA = {base: RECIPES / "qwen2.5-0.5b" / "lora.yaml" for base in MODERN_BASES}
LORA[LLAMA] = RECIPES / "kanana-1.5-2.1b" / "lora.yaml"
LORA_EXTRA = {
    POLYGLOT: ("--lora_target_modules", "query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")
}
SHORT = {QWEN: "qwen", LLAMA: "llama", POLYGLOT: "polyglot", EXAONE: "exaone"}
TOKEN = "hf_TestTokenNeverPrinted0123456789"
TEXTS = nsmc_sample_reviews("test")[:40]
# Long enough for positions to matter: a RoPE read otherwise than it was trained moves the logits.
PROMPT = (
    "긍정 이 영화 정말 재밌어요 배우들 연기도 좋고 스토리도 탄탄해서 시간 가는 줄 몰랐네요 강력 추천합니다"
)
# bf16 / fp16 weights against float32: a few 2**-8 relative steps on logits of order 1.
HALF_TOLERANCE = {"atol": 5e-2, "rtol": 2e-2}
# The same model in one half dtype: the merged weights' rounding (measured 5e-3 in bf16, 7e-4 in fp16).
MERGE_TOLERANCE = {"atol": 2e-2, "rtol": 2e-2}
MACHINE_KEYS = ("is_local", "local_files_only")
tf4_python = test_transformers4.tf4_python  # the 4.57 venv's interpreter (a fixture)


def tiny_args(recipe: Path, base: str, data_dir: Path, out: Path, *extra: str) -> list[str]:
    """A recipe on a replica with small overrides only: the base, data, size, output."""
    return [
        *("--config", str(recipe), "--model_name_or_path", base, "--data_dir", str(data_dir)),
        *("--validation_size", "8", "--max_length", "32", "--output_dir", str(out)),
        *("--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4"),
        *("--gradient_accumulation_steps", "1", "--max_steps", "2", "--warmup_steps", "0"),
        *("--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false"),
        *("--logging_steps", "1", "--sample_reviews", "0", "--dataloader_num_workers", "0"),
        *("--cpu_threads", "1", "--calibrate_length_prior", "false", "--activation_checkpointing", "false"),
        *extra,
    ]


@pytest.fixture(scope="session")
def modern_repos(tmp_path_factory) -> dict[str, Path]:
    """The four replicas in this session's Hub cache (~5 s: one byte-level BPE, four repos)."""
    bpe = byte_level_bpe(nsmc_sample_reviews())
    root = tmp_path_factory.mktemp("modern-repos")
    snapshots = {}
    for base in MODERN_BASES:
        folder = write_modern_repo(base, root / SHORT[base], bpe)
        snapshots[base] = put_in_hub_cache(Path(constants.HF_HUB_CACHE), base, folder)
    return snapshots


class Runs:
    """Each base's recipe runs, trained on first use (in-process, 2 steps each): ``runs[base]`` is
    ``{"full": folder, "adapter": folder, "merged": folder}``."""

    def __init__(self, data_dir: Path, root: Path) -> None:
        self.data_dir, self.root, self.done = data_dir, root, {}

    def __getitem__(self, base: str) -> dict[str, Path]:
        if base not in self.done:
            recipe = load_finetune_recipe()
            out = self.root / SHORT[base]
            full = recipe.main(tiny_args(FULL[base], base, self.data_dir, out / "full"))
            # A large step, so that the adapter moves the logits (merging must carry that).
            lora = (*LORA_EXTRA.get(base, ()), "--learning_rate", "1e-2")
            merged = recipe.main(tiny_args(LORA[base], base, self.data_dir, out / "lora", *lora))
            self.done[base] = {"full": full, "adapter": out / "lora", "merged": merged}
        return self.done[base]


@pytest.fixture(scope="session")
def runs(modern_repos, small_nsmc, tmp_path_factory) -> Runs:
    return Runs(small_nsmc, tmp_path_factory.mktemp("modern-runs"))


def base_file(modern_repos, base: str, name: str) -> dict:
    path = modern_repos[base] / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


# ---------------------------------------------------------------- the replicas themselves


@pytest.mark.parametrize("base", MODERN_BASES)
def test_each_replica_loads_by_id_with_its_real_special_ids(modern_repos, base):
    """What the replicas stand for (FIELD-NOTES, "Modern Korean bases"), read back by transformers."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = AutoConfig.from_pretrained(base)
    expected = {  # base: (bos added, eos id, pad id, tokenizer size, embedding rows, tied)
        QWEN: (None, 151643, 151643, 151_665, 151_936, True),
        LLAMA: (128000, 128001, None, 128_256, 128_256, True),
        POLYGLOT: (None, 2, 2, 30_003, 30_080, False),
        EXAONE: (None, 361, 0, 102_400, 102_400, True),
    }[base]
    first = tokenizer("이 영화")["input_ids"][0]
    added_bos = first if first in tokenizer.all_special_ids else None
    tied = config.get_text_config().tie_word_embeddings
    got = (added_bos, tokenizer.eos_token_id, tokenizer.pad_token_id, len(tokenizer), config.vocab_size, tied)
    assert got == expected
    assert tokenizer.decode(tokenizer(TEXTS, add_special_tokens=False)["input_ids"][3]) == TEXTS[3]
    sampling = {  # published generation defaults; polyglot-ko's 2022 repo has no generation_config.json
        QWEN: (False, None, None, 151643),
        LLAMA: (True, 0.6, 0.9, 128001),
        POLYGLOT: (None, None, None, None),
        EXAONE: (None, None, None, 361),
    }[base]
    published = base_file(modern_repos, base, "generation_config.json")
    assert tuple(published.get(k) for k in ("do_sample", "temperature", "top_p", "eos_token_id")) == sampling
    assert stored_dtypes(modern_repos[base]) == {MODERN_DTYPES[base]}


def stored_dtypes(folder: Path) -> set[torch.dtype]:
    """The dtypes of a folder's weights: model.safetensors, or pytorch_model.bin (polyglot-ko's, 2022)."""
    if not (folder / "model.safetensors").is_file():
        return {t.dtype for t in torch.load(folder / "pytorch_model.bin", weights_only=True).values()}
    with safe_open(folder / "model.safetensors", "pt") as weights:
        return {weights.get_tensor(k).dtype for k in weights.keys()}  # noqa: SIM118 (safe_open is not iterable)


# ---------------------------------------------------------------- training examples vs. what clients send


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_the_pipeline_prompt_is_a_prefix_of_a_training_example_with_one_bos_and_one_eos(
    runs, small_nsmc, base
):
    folder = runs[base]["full"]
    _, model_args, data_args, training_args = parse_args(
        tiny_args(FULL[base], base, small_nsmc, Path("unused"))
    )
    _, tokenizer = load_model(model_args, data_args)
    examples = prepare_datasets(data_args, tokenizer, training_args)["train"]["input_ids"]
    base_tokenizer = AutoTokenizer.from_pretrained(base)
    first = base_tokenizer("이 영화")["input_ids"][0]
    bos = first if first in base_tokenizer.all_special_ids else None
    eos = base_tokenizer.eos_token_id
    for ids in examples:
        assert (ids[0] == bos) == (bos is not None) and ids.count(bos) == (bos is not None), ids[:4]
        if len(ids) < data_args.max_length:
            assert ids[-1] == eos and ids.count(eos) == 1, ids[-4:]
    # What a pipeline user sends for a positive review, from the finished folder, by the pipeline itself.
    pipe = pipeline("text-generation", model=str(folder))
    sent = pipe.preprocess(ReviewFormat().prompt("positive"))["input_ids"][0].tolist()
    ours = ReviewFormat().prompt_ids(tokenizer, "positive")
    for prompt in (sent, ours):
        assert any(ids[: len(prompt)] == prompt for ids in examples), (prompt, examples[0][:8])
    print(f"\n{base}: first example {examples[0][:8]}..., pipeline prompt {sent}")


# ---------------------------------------------------------------- the finished folders


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_saved_tokenizers_keep_the_bases_metadata_and_no_machine_keys(runs, modern_repos, base):
    original = base_file(modern_repos, base, "tokenizer_config.json")
    kept = ("model_max_length", "eos_token", "pad_token", "bos_token")
    for kind, folder in runs[base].items():
        saved = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        assert saved["tokenizer_class"] == "PreTrainedTokenizerFast", kind
        assert not [k for k in MACHINE_KEYS if k in saved], (kind, saved)
        # transformers 5 writes a chat template into chat_template.jinja (4.57 reads it there too)
        template = AutoTokenizer.from_pretrained(folder).chat_template
        assert template == original.get("chat_template"), (kind, template)
        for key in (k for k in kept if original.get(k) is not None):
            assert saved.get(key) == original[key], (kind, key, saved.get(key))


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_finished_folders_are_saved_in_the_bases_dtype(runs, base):
    sizes = {}
    for kind in ("full", "merged"):
        folder = runs[base][kind]
        sizes[kind] = (folder / "model.safetensors").stat().st_size
        assert stored_dtypes(folder) == {MODERN_DTYPES[base]}, kind
    print(f"\n{base}: model.safetensors bytes {sizes}")


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_the_adapter_and_its_merged_model_agree_in_the_same_dtype(runs, base):
    from peft import AutoPeftModelForCausalLM

    folders = runs[base]
    ids = AutoTokenizer.from_pretrained(folders["merged"])(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        adapter = AutoPeftModelForCausalLM.from_pretrained(folders["adapter"]).eval()
        merged = AutoModelForCausalLM.from_pretrained(folders["merged"]).eval()
        assert adapter.dtype == merged.dtype == MODERN_DTYPES[base]  # each as its config says
        with adapter.disable_adapter():
            untouched = adapter(ids).logits
        adapted, merged_logits = adapter(ids).logits, merged(ids).logits
    moved = (adapted.float() - untouched.float()).abs().max().item()
    assert moved > 10 * MERGE_TOLERANCE["atol"], (
        "the adapter must move the logits for this test to mean anything"
    )
    torch.testing.assert_close(merged_logits.float(), adapted.float(), **MERGE_TOLERANCE)
    gap = (merged_logits.float() - adapted.float()).abs().max().item()
    print(f"\n{base}: adapter moved logits by {moved:.3f}; |merged - adapter| = {gap:.1e} ({merged.dtype})")


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_generate_prints_reviews_from_each_finished_folder(runs, capsys, base):
    folders = runs[base]  # trained first: its output is not the command's
    for kind in ("full", "merged", "adapter"):
        capsys.readouterr()
        argv = ["generate", str(folders[kind]), "--sentiment", "positive", "--max-new-tokens", "6"]
        code = cli.main([*argv, "--num-return-sequences", "2", "--seed", "0", "--json"])
        out = capsys.readouterr().out.splitlines()
        assert code == 0 and len(out) == 2, (kind, out)
        assert all(json.loads(line)["sentiment"] == "positive" for line in out)


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_the_demo_page_serves_the_fine_tuned_models_review(runs, base):
    from gradio_client import Client
    from test_demo import serve

    from nsmc_gen.demo import build_demo
    from nsmc_gen.generation import generate_reviews

    model, tokenizer = load_model_and_tokenizer(str(runs[base]["full"]))
    demo = build_demo(model, tokenizer)
    url = serve(demo)
    try:
        review = Client(url, verbose=False).predict(prompt="이 영화", max_new_tokens=8, api_name="/generate")
    finally:
        demo.close()
    assert [review] == generate_reviews(model, tokenizer, "positive", "이 영화", seed=0, max_new_tokens=8)


# ---------------------------------------------------------------- published: the Hub, then other clients

PUSH = """
import json, sys
from nsmc_gen.hub import push_model
for folder, repo_id in json.loads(sys.argv[1]):
    print(json.dumps({"repo": repo_id, "oid": push_model(folder, repo_id).oid}))
"""


@pytest.fixture(scope="module")
def pushed(runs) -> dict[str, dict[str, bytes]]:
    """Every base's full folder and LoRA adapter pushed to the loopback Hub server, one fresh process."""
    from test_hub import hub_env

    server = HubServer({TOKEN: {"org"}}).start()
    try:
        jobs = [
            (str(runs[base][kind]), f"org/{SHORT[base]}-nsmc-{kind}")
            for base in MODERN_BASES
            for kind in ("full", "adapter")
        ]
        command = [sys.executable, "-c", PUSH, json.dumps(jobs)]
        proc = subprocess.run(
            command, env=hub_env(server.url, TOKEN), capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return {repo: server.commits("model", repo)[-1].files for _, repo in jobs}
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_a_push_to_the_loopback_hub_is_the_folder_exactly(runs, pushed, base):
    for kind in ("full", "adapter"):
        folder = runs[base][kind]
        files = pushed[f"org/{SHORT[base]}-nsmc-{kind}"]
        expected = {name: (folder / name).read_bytes() for name in validate_model_folder(folder).files}
        assert {k: v for k, v in files.items() if k != ".gitattributes"} == expected, kind
        if kind == "adapter":
            adapter = json.loads(files["adapter_config.json"])
            assert adapter["base_model_name_or_path"] == base  # others load the adapter over the base by id


def run_client(python: str | Path, spec: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(transformers_client.__file__).parent)}  # not src/
    command = [str(python), transformers_client.__file__, str(spec), str(out)]
    proc = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=out.parent,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def clients(runs, pushed, tf4_python, tmp_path_factory):
    """``tests/transformers_client.py`` in fresh processes under transformers 5.x and 4.57 (no
    nsmc_gen imported), over every base's full, merged and adapter folders and the full folders
    published by id (what the loopback Hub received, in the Hub cache)."""
    out = tmp_path_factory.mktemp("modern-clients")
    folders, repos = {}, []
    for base in MODERN_BASES:
        for kind in ("full", "merged", "adapter"):
            folders[f"{SHORT[base]}-{kind}"] = (kind, str(runs[base][kind]))
        repo = f"org/{SHORT[base]}-nsmc-full"
        files = sorted(name for name in pushed[repo] if name != ".gitattributes")
        put_in_hub_cache(Path(constants.HF_HUB_CACHE), repo, runs[base]["full"], files)
        repos.append(repo)
    spec = out / "spec.json"
    spec.write_text(json.dumps({"folders": folders, "repos": repos, "texts": TEXTS, "prompt": PROMPT}))
    results = {
        "tf5": run_client(sys.executable, spec, out / "tf5"),
        "tf4": run_client(tf4_python, spec, out / "tf4"),
    }
    assert results["tf5"]["transformers"].startswith("5.") and results["tf4"]["transformers"].startswith("4.")
    assert not results["tf5"]["nsmc_gen_imported"] and not results["tf4"]["nsmc_gen_imported"]
    return {**results, "folders": folders, "out": out}


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
@pytest.mark.parametrize("kind", ["full", "merged", "adapter"])
def test_transformers_5_and_4_read_the_folder_as_it_was_trained(clients, base, kind):
    name = f"{SHORT[base]}-{kind}"
    new, old = clients["tf5"]["folders"][name], clients["tf4"]["folders"][name]
    trained_with = load_tokenizer(base, AutoConfig.from_pretrained(base))
    assert old["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert old["ids"] == new["ids"] == trained_with(TEXTS, add_special_tokens=False)["input_ids"]
    assert old["decoded"] == new["decoded"] == TEXTS
    # unk aside: 5.x builds Qwen2Tokenizer for a qwen2 folder whatever tokenizer_class says, and its
    # unk defaults to <|endoftext|>; a byte-level BPE never emits unk.
    roles = ("bos_token", "eos_token", "pad_token")
    assert [old["special_ids"][r] for r in roles] == [new["special_ids"][r] for r in roles]
    assert old["vocabulary"] == new["vocabulary"] == len(trained_with)
    for way in ("plain", "remote") if kind != "adapter" else ("plain",):
        assert old[way]["text"].startswith(PROMPT) and new[way]["text"].startswith(PROMPT), way
    if kind != "adapter":
        assert old["remote"]["generate"].endswith("custom_generate.generate")
        assert new["remote"]["generate"].endswith("custom_generate.generate")
        # Greedy ids are not compared across versions: 4.57 loads float32, 5.x the folder's bf16/fp16,
        # and a random tiny model has near ties.


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_transformers_5_and_4_compute_the_same_logits_with_an_adapter(clients, base):
    """Over a 30-token prompt, 4.57 in float32 and 5.x in the base's dtype. An adapter loads its
    base by id, whose config.json is the published one (4.x keys) that both versions read alike.
    Full and merged folders carry the config 5.x writes: see the two tests below, which catch
    what logits of a random tiny model (near-uniform attention, RoPE hardly matters) would not."""
    name = f"{SHORT[base]}-adapter"
    old, new = (torch.load(clients["out"] / v / f"{name}-logits.pt").float() for v in ("tf4", "tf5"))
    torch.testing.assert_close(old, new, **HALF_TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_a_published_folder_by_id_runs_in_a_fresh_process_plain_and_with_remote_code(clients, base):
    repo = f"org/{SHORT[base]}-nsmc-full"
    new, old = clients["tf5"]["repos"][repo], clients["tf4"]["repos"][repo]
    folder = clients["tf5"]["folders"][f"{SHORT[base]}-full"]
    assert new["plain"]["ids"] == folder["plain"]["ids"] and new["remote"]["ids"] == folder["remote"]["ids"]
    assert new["remote"]["generate"].endswith("custom_generate.generate")
    assert old["remote"]["ids"] == clients["tf4"]["folders"][f"{SHORT[base]}-full"]["remote"]["ids"]
    assert "trust_remote_code=True" in old["plain"]["error"]  # 4.57 asks before running a repo's code


WHAT_4_READS = """
import json, sys
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
names = ("rope_theta", "rope_scaling", "rotary_pct", "rotary_emb_base", "partial_rotary_factor")
for name in json.loads(sys.argv[1]):
    config = AutoConfig.from_pretrained(name)
    tokenizer = AutoTokenizer.from_pretrained(name)
    read = {n: getattr(config, n, None) for n in names}
    info = AutoModelForCausalLM.from_pretrained(name, output_loading_info=True)[1]
    read["missing_weights"] = sorted(info["missing_keys"])
    read["tokenizer"] = {"chat_template": tokenizer.chat_template, "max_length": tokenizer.model_max_length}
    print(json.dumps({"name": name, **read}))
"""


@pytest.fixture(scope="module")
def tf4_reads(runs, tf4_python) -> dict[str, dict]:
    """What transformers 4.57 (a fresh process) reads from each base by id and each finished folder:
    RoPE settings, chat template, model_max_length."""
    names = [
        name for base in MODERN_BASES for name in (base, str(runs[base]["full"]), str(runs[base]["merged"]))
    ]
    command = [str(tf4_python), "-c", WHAT_4_READS, json.dumps(names)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r.pop("name"): r for r in map(json.loads, proc.stdout.splitlines())}


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_transformers_4_reads_the_bases_chat_template_and_length_from_the_folder(runs, tf4_reads, base):
    for kind in ("full", "merged"):
        assert tf4_reads[str(runs[base][kind])]["tokenizer"] == tf4_reads[base]["tokenizer"], kind


@pytest.mark.slow
@pytest.mark.slow
def test_transformers_4_reads_the_finished_folders_rope_as_the_bases(runs, tf4_reads):
    """transformers 5 saves RoPE settings as rope_parameters only, which 4.57 does not read
    (model_folder.write_legacy_rope_keys writes them under 4.x's names too)."""
    rope = {name: {k: v for k, v in read.items() if k.startswith("ro")} for name, read in tf4_reads.items()}
    wrong = {
        name: (rope[name], rope[base])
        for base in MODERN_BASES
        for name in (str(runs[base]["full"]), str(runs[base]["merged"]))
        if rope[name] != rope[base]
    }
    assert not wrong, wrong


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_transformers_4_finds_every_weight_of_the_finished_folders(runs, tf4_reads, base):
    """5.x renames on load (GPT-NeoX's embed_out is its lm_head) and back on save: 4.57 finds all."""
    assert tf4_reads[base]["missing_weights"] == []  # the published base, as a reference
    for kind in ("full", "merged"):
        assert tf4_reads[str(runs[base][kind])]["missing_weights"] == [], kind


@pytest.mark.slow
@pytest.mark.parametrize("base", MODERN_BASES)
def test_a_finished_folder_decodes_as_nsmc_gen_recommends_and_stops_at_the_bases_eos(
    runs, modern_repos, base
):
    """Llama-3.2's own sampling defaults (temperature 0.6, top_p 0.9) are the base's, not the review
    model's: a finished folder carries nsmc-gen's decoding, with the base's EOS and pad."""
    from nsmc_gen.decoding import recommended_generation_config

    published = base_file(modern_repos, base, "generation_config.json")
    tokenizer = AutoTokenizer.from_pretrained(runs[base]["full"])
    recommended = recommended_generation_config(tokenizer).to_dict()
    for kind in ("full", "merged", "adapter"):
        saved = json.loads((runs[base][kind] / "generation_config.json").read_text(encoding="utf-8"))
        for key in ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens"):
            assert saved[key] == recommended[key], (kind, key)
        assert saved["eos_token_id"] == published.get("eos_token_id", tokenizer.eos_token_id), kind
        assert saved["pad_token_id"] == tokenizer.pad_token_id, kind


def test_lora_on_exaone4_without_targets_names_them_before_training(modern_repos, small_nsmc):
    """peft has no default LoRA targets for exaone4: the recipes name them; without, a clear stop."""
    argv = ["--model_name_or_path", EXAONE, "--use_peft", "--data_dir", str(small_nsmc), "--max_length", "32"]
    _, model_args, data_args, _ = parse_args(argv)
    with pytest.raises(
        ValueError, match=r"peft has no default for 'exaone4'; choose among \[.*'q_proj'.*all-linear"
    ):
        load_model(model_args, data_args)
