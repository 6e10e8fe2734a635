"""Whole-generation time of ``generate_reviews`` with our nucleus filter, transformers', and none.

    python benchmarks/nucleus_generation.py [--threads 1] [--rounds 3] [--batches 1 64]

The nucleus filter is one step of many in a generation (the model's forward, guidance's second
forward, the repetition penalty, the EOS wrapper, sampling), so what counts is the whole:
``generate_reviews`` with the default decoding (top-p 0.8 with EOS keeping its probability,
repetition penalty 1.2, sentiment guidance 2.0, up to ``--max-new-tokens``), timed with
- ``ours``: NucleusLogitsProcessor (a histogram cut, plain torch);
- ``transformers``: the filter replaced by transformers' TopPLogitsWarper (a full sort);
- ``no filter``: the filter replaced by nothing (the scores as they are): the floor, i.e. how much
  any further speed-up of the filter could still gain.
Ratios are against ``ours``.

The model: a 4-layer, 256-wide GPT-2 with KoGPT2's vocabulary of 51,200 (random weights, scaled by
``--init`` so that the 0.8 nucleus holds hundreds of tokens, as a real model's does at flat steps)
and a KoGPT2-structured tokenizer (benchmarks/gpu_check.py). Variants are timed in interleaved
rounds (a busy machine slows all alike); the clock is this process's CPU time by default, which
other processes on the same cores inflate far less than the wall clock.

The CPU tuning the filter once had (scratch buffers kept between calls per thread, per-row int32
histograms, a word-wise search of the cut bin, a per-row ``torch.threshold`` in pieces around OpenMP
hand-offs) was measured with this script's version at commit 6245e7d, each trick undone in turn, and
removed: at 1 thread none moved a whole generation beyond the noise (batch 1 and 64, 32 new tokens:
each trick undone 0.96-1.06x, all undone 0.98-0.99x); at 2 threads a shared 2-core machine spread
variants doing the same work over 0.5-1.1x, hiding any effect the threading trick might have.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import torch
from transformers import GPT2Config, GPT2LMHeadModel, TopPLogitsWarper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import kogpt2_like_tokenizer  # noqa: E402  (benchmarks/gpu_check.py)

from nsmc_gen.generation import generate_reviews  # noqa: E402
from nsmc_gen.processors import NucleusLogitsProcessor  # noqa: E402


def _transformers_top_p(self, input_ids, scores):
    warper = TopPLogitsWarper(
        self.top_p, filter_value=self.filter_value, min_tokens_to_keep=self.min_tokens_to_keep
    )
    return warper(input_ids, scores)


def _no_filter(self, input_ids, scores):
    return scores


# Each variant: what replaces NucleusLogitsProcessor.__call__ (None: nothing).
VARIANTS = {"ours": None, "transformers": _transformers_top_p, "no filter": _no_filter}


def run(call, model, tokenizer, batch: int, seed: int, max_new_tokens: int) -> list[str]:
    with mock.patch.object(NucleusLogitsProcessor, "__call__", call) if call else nullcontext():
        return generate_reviews(
            model, tokenizer, "positive", num_return_sequences=batch, seed=seed, max_new_tokens=max_new_tokens
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--init", type=float, default=0.2, help="GPT-2 initializer_range (default 0.2)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    tokenizer = kogpt2_like_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=51200,
        n_positions=128,
        n_embd=256,
        n_layer=4,
        n_head=4,
        initializer_range=args.init,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=3,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        logits = model(torch.randint(109, 51200, (8, 16))).logits[:, -1]
    nucleus = (NucleusLogitsProcessor(0.8)(None, logits) > -torch.inf).sum(-1).float().median().item()
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.clock} clock, {args.rounds} rounds; "
        f"GPT-2 4 x 256, vocabulary 51,200, init {args.init}: median 0.8-nucleus {nucleus:.0f} tokens"
    )
    print(f"{'batch':>5} {'nucleus':>14} {'s/generation':>13} {'vs ours':>9}")
    for batch in args.batches:
        for variant in VARIANTS.values():  # warm-up
            run(variant, model, tokenizer, batch, 0, args.max_new_tokens)
        samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for seed in range(1, args.rounds + 1):
            for name, variant in VARIANTS.items():
                start = clock()
                run(variant, model, tokenizer, batch, seed, args.max_new_tokens)
                samples[name].append(clock() - start)
        ours = statistics.median(samples["ours"])
        for name, times in samples.items():
            seconds = statistics.median(times)
            print(f"{batch:>5} {name:>14} {seconds:>13.3f} {seconds / ours:>8.2f}x")


if __name__ == "__main__":
    main()
