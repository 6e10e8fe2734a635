"""What a user of another transformers does with a folder nsmc-gen wrote: load it, tokenize, generate.

Runs under any transformers (4.57 in its own venv, 5.x here) and never imports nsmc_gen: only
transformers, peft and torch, as a Hub user has them. ``python transformers_client.py SPEC OUT``
reads SPEC (JSON: folders by kind, Hub ids, texts, a prompt; folders to call a plain pipeline on
with a batch of prompts) and writes ``OUT/results.json`` plus one ``OUT/<name>-logits.pt`` per
folder. ``tests/test_transformers4.py`` and ``tests/test_plain_clients.py`` compare such runs.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

GREEDY = {"do_sample": False, "max_new_tokens": 8}


def generate_module(model: Any) -> str:
    """Where ``model.generate`` comes from: transformers, or a folder's custom_generate/."""
    generate = model.generate
    return (generate.func if isinstance(generate, functools.partial) else generate).__module__


def greedy(pipe: Any, prompt: str) -> dict[str, Any]:
    """The pipeline's text and token ids for a greedy continuation of ``prompt`` (seeded alike, in
    case a version samples after all)."""
    torch.manual_seed(0)
    text = pipe(prompt, **GREEDY)[0]["generated_text"]
    torch.manual_seed(0)
    ids = pipe(prompt, **GREEDY, return_tensors=True)[0]["generated_token_ids"]
    return {"text": text, "ids": [int(i) for i in ids], "generate": generate_module(pipe.model)}


def inspect_folder(name: str, folder: str, kind: str, spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """Tokenizer, logits and greedy generations of one folder; kind: full, merged or adapter."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(spec["texts"], add_special_tokens=False)["input_ids"]
    special = {n: getattr(tokenizer, f"{n}_id") for n in ("bos_token", "eos_token", "pad_token", "unk_token")}
    result: dict[str, Any] = {
        "tokenizer_class": type(tokenizer).__name__,
        "ids": ids,
        "decoded": [tokenizer.decode(x) for x in ids],
        "special_ids": special,
        "vocabulary": len(tokenizer),
    }
    if kind == "adapter":
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(folder)
        result["peft_model_class"] = type(model).__name__
    else:
        model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        logits = model.eval()(torch.tensor([tokenizer(spec["prompt"])["input_ids"]])).logits
    torch.save(logits, out / f"{name}-logits.pt")
    if kind == "adapter":
        # pipeline(model=adapter_folder) takes the tokenizer from the BASE (4.57 and 5.23 alike),
        # i.e. KoGPT2's bare layout, which transformers 5 misreads: pass the adapter's own.
        result["plain"] = greedy(
            pipeline("text-generation", model=model, tokenizer=tokenizer), spec["prompt"]
        )
    else:
        result["plain"] = greedy(pipeline("text-generation", model=folder), spec["prompt"])
        remote = pipeline("text-generation", model=folder, trust_remote_code=True)
        result["remote"] = greedy(remote, spec["prompt"])
    return result


def inspect_repo(repo_id: str, prompt: str) -> dict[str, Any]:
    """A published folder by Hub id: pipeline plain, and with remote code."""
    result: dict[str, Any] = {}
    for way, kwargs in (("plain", {}), ("remote", {"trust_remote_code": True})):
        try:
            result[way] = greedy(pipeline("text-generation", model=repo_id, **kwargs), prompt)
        except Exception as error:  # recorded: the test states what each version does
            result[way] = {"error": f"{type(error).__name__}: {error}"}
    return result


def plain_batches(folder: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A plain pipeline (no remote code) over a batch of prompts, as a script calls it: the texts,
    the continuations' characters, the decoding fields as this version reads them, and which
    generate ran. An error (4.57 indexing past the last position, say) is recorded, not raised."""
    batch = spec["batch"]
    prompts = [prompt for prompt in batch["prompts"] for _ in range(batch["repeat"])]
    pipe = pipeline("text-generation", model=folder)
    config = pipe.model.generation_config
    result: dict[str, Any] = {
        "generate": generate_module(pipe.model),
        "sequence_bias": config.sequence_bias,
        "max_new_tokens": config.max_new_tokens,
        "positions": pipe.model.config.max_position_embeddings,
    }
    torch.manual_seed(0)
    try:
        out = pipe(prompts, batch_size=batch["batch_size"])
    except Exception as error:
        return {**result, "error": f"{type(error).__name__}: {error}"}
    texts = [rows[0]["generated_text"] for rows in out]
    return {
        **result,
        "texts": texts,
        "characters": [len(text[len(prompt) :].strip()) for text, prompt in zip(texts, prompts, strict=True)],
    }


def main(spec_path: str, out_dir: str) -> None:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    results: dict[str, Any] = {"transformers": transformers.__version__, "folders": {}, "repos": {}}
    for name, (kind, folder) in spec.get("folders", {}).items():
        results["folders"][name] = inspect_folder(name, folder, kind, spec, out)
    results["batches"] = {
        name: plain_batches(folder, spec) for name, folder in spec.get("batches", {}).items()
    }
    for repo_id in spec.get("repos", []):
        results["repos"][repo_id] = inspect_repo(repo_id, spec["prompt"])
    results["nsmc_gen_imported"] = "nsmc_gen" in sys.modules
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:])
