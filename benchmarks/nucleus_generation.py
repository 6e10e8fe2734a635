"""Whole-generation time of ``generate_reviews`` with each CPU trick of NucleusLogitsProcessor undone.

    python benchmarks/nucleus_generation.py [--threads 1] [--rounds 5] [--batches 1 64]

The nucleus filter is one step of many in a generation (the model's forward, guidance's second
forward, the repetition penalty, the EOS wrapper, sampling), so a trick that makes the filter
faster alone counts only if it shows in the whole. Each variant below replaces ONE of the
processor's tuned methods with the plain torch expression of the same thing (the result is the
same, checked: every variant must write the same reviews for the same seed), and the time of
``generate_reviews`` (the default decoding: top-p 0.8 with EOS keeping its probability,
repetition penalty 1.2, sentiment guidance 2.0, 8 to 64 new tokens) is compared with the tuned
processor's, as a ratio. ``transformers`` replaces the whole filter by transformers'
TopPLogitsWarper (a full sort), for scale.

The model: a 4-layer, 256-wide GPT-2 with KoGPT2's vocabulary of 51,200 (random weights, scaled
by ``--init`` so that the 0.8 nucleus holds hundreds to thousands of tokens, as a real model's
does at flat steps) and a KoGPT2-structured tokenizer (benchmarks/gpu_check.py). Variants are timed
in interleaved rounds (a busy machine slows all alike); the clock is this process's CPU time by
default, which other processes on the same cores inflate far less than the wall clock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import torch
from transformers import GPT2Config, GPT2LMHeadModel, TopPLogitsWarper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import kogpt2_like_tokenizer  # noqa: E402  (benchmarks/gpu_check.py)

from nsmc_gen.generation import generate_reviews  # noqa: E402
from nsmc_gen.processors import NucleusLogitsProcessor  # noqa: E402


def _fresh_buffer(self, name, shape, dtype, like):
    return torch.empty(shape, dtype=dtype, device=like.device)


def _scatter_bin_mass(self, bins, probs, nbins):
    mass = torch.zeros(bins.shape[0], nbins, dtype=probs.dtype, device=probs.device)
    return mass.scatter_add_(1, bins.long(), probs)


def _nonzero_members(self, bins, chosen):
    return (bins == chosen.unsqueeze(1).to(bins.dtype)).nonzero(as_tuple=True)


def _where_threshold(self, logits, threshold):
    return torch.where(logits >= threshold.unsqueeze(1), logits, self.filter_value)


def _transformers_top_p(self, input_ids, scores):
    return TopPLogitsWarper(
        self.top_p, filter_value=self.filter_value, min_tokens_to_keep=self.min_tokens_to_keep
    )(input_ids, scores)


# Each trick: the processor's method that holds it, and its plain replacement.
PLAIN = {
    "_workspace": _fresh_buffer,  # scratch buffers kept between calls, per thread
    "_bin_mass": _scatter_bin_mass,  # per-row index_add_ with int32 bins
    "_members": _nonzero_members,  # the cut bin's members found 8 bytes at a time
    "_apply_threshold": _where_threshold,  # per-row torch.threshold, in pieces when threaded
}
VARIANTS: dict[str, dict] = {
    "tuned": {},
    **{
        f"plain {name.strip('_')}": {name: fn}
        for name, fn in PLAIN.items()
        if hasattr(NucleusLogitsProcessor, name)
    },
    "all plain": {name: fn for name, fn in PLAIN.items() if hasattr(NucleusLogitsProcessor, name)},
    "transformers": {"__call__": _transformers_top_p},
}


def run(variant: dict, model, tokenizer, batch: int, seed: int, max_new_tokens: int) -> list[str]:
    with ExitStack() as stack:
        for name, fn in variant.items():
            stack.enter_context(mock.patch.object(NucleusLogitsProcessor, name, fn))
        return generate_reviews(
            model, tokenizer, "positive", num_return_sequences=batch, seed=seed, max_new_tokens=max_new_tokens
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
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
    print(f"{'batch':>5} {'variant':>22} {'s/generation':>13} {'vs tuned':>9}")
    for batch in args.batches:
        expected = run({}, model, tokenizer, batch, 0, args.max_new_tokens)
        for name, variant in VARIANTS.items():  # warm-up, and the same reviews from every exact variant
            texts = run(variant, model, tokenizer, batch, 0, args.max_new_tokens)
            if name != "transformers" and texts != expected:
                sys.exit(f"variant {name!r} wrote other reviews than the tuned processor at batch {batch}")
        samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for seed in range(1, args.rounds + 1):
            for name, variant in VARIANTS.items():
                start = clock()
                run(variant, model, tokenizer, batch, seed, args.max_new_tokens)
                samples[name].append(clock() - start)
        tuned = statistics.median(samples["tuned"])
        for name, times in samples.items():
            seconds = statistics.median(times)
            print(f"{batch:>5} {name:>22} {seconds:>13.3f} {seconds / tuned:>8.2f}x")


if __name__ == "__main__":
    main()
