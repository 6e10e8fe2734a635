"""The GPU check: what nsmc-gen does on one accelerator, measured in one run, one table printed.

    python benchmarks/gpu_check.py                      # one GPU; sized for <= 8 minutes on an H200
    python benchmarks/gpu_check.py --device cpu --quick # a smoke run of the same code on a CPU

Nothing is downloaded. Rows:
1. full fine-tune of a KoGPT2-shaped GPT-2 (12 layers, 768 wide, vocabulary 51,200, random init)
   in bf16 autocast with fused AdamW, on batches of NSMC-length rows: tokens/s and model FLOPs
   utilisation (6 x parameters + attention, per token, against --peak-tflops);
2. the same with LoRA (peft, r 16 on c_attn/c_proj/c_fc, fan_in_fan_out for Conv1D);
3. our NucleusLogitsProcessor and StrictRepetitionPenaltyLogitsProcessor against transformers'
   TopPLogitsWarper and RepetitionPenaltyLogitsProcessor on the device at batch 1/8/64,
   vocabulary 51,200: exact agreement (same kept tokens, same values) and the speed ratio;
4. ``generate_reviews`` at batch 64 (the default decoding, sentiment guidance 2.0) with the
   KoGPT2-shaped model and a KoGPT2-structured tokenizer (BPE over Metaspace, 51,200 entries,
   trained here on the shipped NSMC sample): reviews/s and new tokens/s.
It never runs in the test suite.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from processors import nucleus_comparisons, penalty_comparisons  # noqa: E402  (benchmarks/processors.py)

from nsmc_gen.data import read_nsmc_file  # noqa: E402
from nsmc_gen.generation import generate_reviews  # noqa: E402
from nsmc_gen.modeling import NSMC_SAMPLE  # noqa: E402

KOGPT2_SHAPE = dict(vocab_size=51200, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
KOGPT2_SPECIALS = ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>", "<d>", "</d>"] + [
    f"<unused{i}>" for i in range(100)
]
QUICK_SHAPE = dict(vocab_size=51200, n_positions=256, n_embd=64, n_layer=2, n_head=2)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="a 2-layer model and a few steps: a smoke run")
    parser.add_argument("--train-steps", type=int, default=300, help="timed optimizer steps per row")
    parser.add_argument("--batch", type=int, default=128, help="rows per training batch")
    parser.add_argument("--seq", type=int, default=64, help="tokens per row (NSMC reviews: ~20-80)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H200: 989)")
    parser.add_argument("--rounds", type=int, default=30, help="timing rounds per processor row")
    args = parser.parse_args()
    if args.quick:
        args.train_steps, args.batch, args.seq, args.rounds = 3, 4, 32, 3
    return args


def kogpt2_like_tokenizer() -> PreTrainedTokenizerFast:
    """KoGPT2's tokenizer structure (BPE, Metaspace, its special tokens at ids 0..108, 51,200
    entries), trained on the shipped sample: real Korean tokens, so generated text decodes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=51200, special_tokens=KOGPT2_SPECIALS, show_progress=False)
    reviews = (row["document"] for row in read_nsmc_file(NSMC_SAMPLE / "ratings_train.txt.gz"))
    tokenizer.train_from_iterator(reviews, trainer=trainer)
    # The sample holds fewer than 51,200 merges: fill up with unused entries, as KoGPT2's size.
    missing = 51200 - tokenizer.get_vocab_size()
    tokenizer.add_tokens([f"<filler{i}>" for i in range(max(0, missing))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def kogpt2_shaped(args: argparse.Namespace) -> GPT2LMHeadModel:
    shape = QUICK_SHAPE if args.quick else KOGPT2_SHAPE
    torch.manual_seed(0)
    config = GPT2Config(**shape, bos_token_id=1, eos_token_id=1, pad_token_id=3)
    return GPT2LMHeadModel(config).to(args.device)


def flops_per_token(model: GPT2LMHeadModel, seq: int, trainable_fraction: float = 1.0) -> float:
    """Training FLOPs per token: 6 N for the weights (forward 2 N, backward 4 N; with LoRA the
    frozen weights skip their weight gradients: 4 N + 2 N_trainable), plus attention's 12 L d T."""
    config = model.config
    weights = sum(p.numel() for n, p in model.named_parameters() if "wpe" not in n)
    dense = (4 + 2 * trainable_fraction) * weights
    return dense + 12 * config.n_layer * config.n_embd * seq


def train_row(name: str, model: torch.nn.Module, args: argparse.Namespace, flops: float) -> dict:
    device = torch.device(args.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    batches = [
        torch.randint(109, vocab, (args.batch, args.seq), generator=generator).to(device) for _ in range(4)
    ]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)

    def step(ids: torch.Tensor) -> float:
        with autocast:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    model.train()
    for ids in batches[:2]:  # warm-up: kernels chosen, allocator settled
        step(ids)
    sync(device)
    start = time.perf_counter()
    for i in range(args.train_steps):
        loss = step(batches[i % len(batches)])
    final = loss.item()
    sync(device)
    seconds = time.perf_counter() - start
    tokens_per_s = args.train_steps * args.batch * args.seq / seconds
    mfu = tokens_per_s * flops / (args.peak_tflops * 1e12)
    return {
        "row": name,
        "tokens/s": f"{tokens_per_s:,.0f}",
        "MFU": f"{100 * mfu:.1f}%" if device.type == "cuda" else "-",
        "note": f"{args.train_steps} steps x {args.batch} x {args.seq}, loss {final:.2f}",
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def processor_rows(args: argparse.Namespace) -> list[dict]:
    """benchmarks/processors.py's comparisons with transformers, at the default top-p 0.8."""
    device = torch.device(args.device)
    nucleus = nucleus_comparisons(device, 51200, 0.8, args.rounds)
    penalty = penalty_comparisons(device, 51200, args.rounds, forms=["1.2"])
    return [
        _ratio_row(f"top-p 0.8, {kind}, batch {batch}", exact, ms) for kind, batch, _, exact, ms in nucleus
    ] + [_ratio_row(f"repetition penalty 1.2, batch {batch}", exact, ms) for _, batch, exact, ms in penalty]


def _ratio_row(name: str, exact: str, times: dict[str, float]) -> dict:
    return {
        "row": name,
        "tokens/s": "-",
        "MFU": "-",
        "note": f"{exact}; ours {times['ours']:.3f} ms, transformers {times['hf']:.3f} ms "
        f"-> {times['hf'] / times['ours']:.1f}x",
    }


def generation_rows(model: GPT2LMHeadModel, args: argparse.Namespace) -> list[dict]:
    tokenizer = kogpt2_like_tokenizer()
    model.eval()
    rows = []
    for guidance in (None, 1.0):
        label = "default decoding (guidance 2.0)" if guidance is None else "guidance 1 (off)"
        times, new_tokens = [], []
        for seed in range(3 if not args.quick else 1):
            sync(torch.device(args.device))
            start = time.perf_counter()
            reviews = generate_reviews(
                model, tokenizer, "positive", num_return_sequences=64, seed=seed, guidance_scale=guidance
            )
            sync(torch.device(args.device))
            times.append(time.perf_counter() - start)
            new_tokens.append(sum(len(tokenizer(r)["input_ids"]) for r in reviews))
        seconds = statistics.median(times)
        rows.append(
            {
                "row": f"generate_reviews batch 64, {label}",
                "tokens/s": f"{statistics.median(new_tokens) / seconds:,.0f}",
                "MFU": "-",
                "note": f"{64 / seconds:,.1f} reviews/s (median of {len(times)}; random weights, so "
                "lengths run to max_new_tokens)",
            }
        )
    return rows


def print_table(rows: list[dict], header: str) -> None:
    print(header)
    print("| row | tokens/s | MFU | note |\n|---|---:|---:|---|")
    for row in rows:
        print(f"| {row['row']} | {row['tokens/s']} | {row['MFU']} | {row['note']} |")


def main() -> None:
    args = parse()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device (use --device cpu --quick for a smoke run)")
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    started = time.perf_counter()
    rows = []

    model = kogpt2_shaped(args)
    rows.append(train_row("full fine-tune, bf16", model, args, flops_per_token(model, args.seq)))
    del model

    from peft import LoraConfig, get_peft_model

    base = kogpt2_shaped(args)
    lora = get_peft_model(
        base,
        LoraConfig(r=16, lora_alpha=32, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True),
    )
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    total = sum(p.numel() for p in base.parameters())
    rows.append(train_row("LoRA r16, bf16", lora, args, flops_per_token(base, args.seq, trainable / total)))
    del lora, base

    rows += processor_rows(args)
    rows += generation_rows(kogpt2_shaped(args), args)
    shape = QUICK_SHAPE if args.quick else KOGPT2_SHAPE
    print_table(
        rows,
        f"nsmc-gen GPU check on {name}: GPT-2 {shape['n_layer']} layers x {shape['n_embd']}, vocabulary "
        f"{shape['vocab_size']:,}; torch {torch.__version__}; {math.ceil(time.perf_counter() - started)} s",
    )


if __name__ == "__main__":
    main()
