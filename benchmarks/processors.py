"""Speed of our logits processors against transformers' and against one softmax, side by side.

    python benchmarks/processors.py [--threads 2] [--clock wall|cpu] [--rounds 15] [--top-p 0.92]

For batch 1, 8 and 64 and two kinds of float32 logits at vocabulary 51,200:
- flat: ``randn * 3`` (the 0.92 nucleus holds ~3,000 tokens);
- peaked: Zipf-like, as a trained LM gives (log of ``rank ** -s`` over a random permutation of the
  vocabulary, s in [1.4, 1.6] per row, plus small noise: a nucleus of tens to hundreds).
It prints the median milliseconds per call of NucleusLogitsProcessor, transformers' TopPLogitsWarper
and one ``softmax`` over the same logits, then our repetition penalty against transformers' (on a
64-token history), each with whether our scores equal transformers' ("exact"), then what keeping
EOS's untruncated probability costs (our nucleus wrapped in KeepEOSProbabilityLogitsProcessor against
it alone) and the length prior's cost against one softmax, with the ratios. benchmarks/gpu_check.py
reuses the comparisons (:func:`nucleus_comparisons`, :func:`penalty_comparisons`). The candidates
are timed in interleaved rounds so that a busy machine slows all of them alike. CUDA rows are added
when a GPU is present.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from transformers import RepetitionPenaltyLogitsProcessor, TopPLogitsWarper

from nsmc_gen.processors import (
    KeepEOSProbabilityLogitsProcessor,
    LengthPriorLogitsProcessor,
    NucleusLogitsProcessor,
    StrictRepetitionPenaltyLogitsProcessor,
)

# Wall clock by default; --clock cpu counts this process's CPU seconds instead, which a crowded machine
# (other processes taking turns on the cores) inflates far less. Meaningful with --threads 1 on CPU.
CLOCK = time.perf_counter


def flat_logits(batch: int, vocab: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(batch, vocab, generator=generator) * 3


def peaked_logits(batch: int, vocab: int, generator: torch.Generator) -> torch.Tensor:
    exponent = 1.4 + 0.2 * torch.rand(batch, 1, generator=generator)
    ranks = torch.argsort(torch.rand(batch, vocab, generator=generator), dim=-1) + 1
    noise = 0.1 * torch.randn(batch, vocab, generator=generator)
    return -exponent * ranks.double().log().float() + noise


def nucleus_size(logits: torch.Tensor, top_p: float) -> float:
    kept = NucleusLogitsProcessor(top_p)(None, logits) > float("-inf")
    return kept.sum(dim=-1).float().mean().item()


def time_interleaved(candidates: dict, rounds: int, device: torch.device) -> dict[str, float]:
    """Median ms per call of each candidate; each round calls each one a few times, in turn."""
    clock = CLOCK
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for fn in candidates.values():  # warm-up
        fn()
        fn()
    samples = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            sync()
            start = clock()
            for _ in range(3):
                fn()
            sync()
            samples[name].append((clock() - start) / 3 * 1e3)
    return {name: statistics.median(times) for name, times in samples.items()}


BATCHES = (1, 8, 64)


def agreement(ours: torch.Tensor, theirs: torch.Tensor) -> str:
    """ "exact" when the scores are identical, else how many tokens' scores differ."""
    differ = int((ours != theirs).sum())  # -inf == -inf; kept tokens keep their scores
    return "exact" if differ == 0 else f"{differ} of {ours.numel():,} scores differ"


def side_by_side(ours, theirs, input_ids, logits, rounds: int, device, **others) -> tuple[str, dict]:
    """Whether our processor's scores equal transformers' (:func:`agreement`), and the median ms per
    call of ``ours``, ``hf`` (theirs) and of ``others`` (plain callables), timed together."""
    exact = agreement(ours(input_ids, logits.clone()), theirs(input_ids, logits.clone()))
    calls = {"ours": partial(ours, input_ids, logits), "hf": partial(theirs, input_ids, logits), **others}
    return exact, time_interleaved(calls, rounds, device)


def nucleus_comparisons(device: torch.device, vocab: int, top_p: float, rounds: int):
    """Per kind of logits and batch: (kind, batch, nucleus size, agreement, ms of ours/hf/softmax)."""
    for kind, make in (("flat", flat_logits), ("peaked", peaked_logits)):
        for batch in BATCHES:
            logits = make(batch, vocab, torch.Generator().manual_seed(batch)).to(device)
            ours, theirs = NucleusLogitsProcessor(top_p), TopPLogitsWarper(top_p)
            softmax = partial(torch.softmax, logits, dim=-1)
            exact, ms = side_by_side(ours, theirs, None, logits, rounds, device, softmax=softmax)
            yield kind, batch, nucleus_size(logits, top_p), exact, ms


# Our penalty's forms, each against transformers' at 1.2 (only "1.2" is meant to be exact).
PENALTIES = {
    "1.2": dict(penalty=1.2),
    "inf": dict(penalty=float("inf")),
    "1.2 prompt+pad": dict(penalty=1.2, prompt_length=8, pad_token_id=3),
}


def penalty_comparisons(device: torch.device, vocab: int, rounds: int, forms=tuple(PENALTIES), history=64):
    """Per batch and form of :data:`PENALTIES` (on a ``history``-token input): (form, batch,
    agreement, ms of ours/hf)."""
    for batch in BATCHES:
        generator = torch.Generator().manual_seed(batch)
        logits = flat_logits(batch, vocab, generator).to(device)
        input_ids = torch.randint(vocab, (batch, history), generator=generator).to(device)
        for form in forms:
            ours = StrictRepetitionPenaltyLogitsProcessor(**PENALTIES[form])
            exact, ms = side_by_side(
                ours, RepetitionPenaltyLogitsProcessor(1.2), input_ids, logits, rounds, device
            )
            yield form, batch, exact, ms


def nucleus_rows(device: torch.device, vocab: int, top_p: float, rounds: int) -> list[str]:
    return [
        f"{device.type:>6} {kind:>7} {batch:>5} {size:>8.0f} {ms['ours']:>9.3f} {ms['hf']:>9.3f} "
        f"{ms['softmax']:>9.3f} {ms['hf'] / ms['ours']:>9.1f}x {ms['ours'] / ms['softmax']:>9.1f}x  {exact}"
        for kind, batch, size, exact, ms in nucleus_comparisons(device, vocab, top_p, rounds)
    ]


def penalty_rows(device: torch.device, vocab: int, rounds: int) -> list[str]:
    return [
        f"{device.type:>6} {form:>20} {batch:>5} {ms['ours']:>9.3f} {ms['hf']:>9.3f} "
        f"{ms['hf'] / ms['ours']:>9.2f}x  {exact}"
        for form, batch, exact, ms in penalty_comparisons(device, vocab, rounds)
    ]


def eos_rows(device: torch.device, vocab: int, top_p: float, rounds: int) -> list[str]:
    nucleus = NucleusLogitsProcessor(top_p)
    keep = KeepEOSProbabilityLogitsProcessor(nucleus, eos_token_id=1)
    lines = []
    for batch in BATCHES:
        logits = peaked_logits(batch, vocab, torch.Generator().manual_seed(batch)).to(device)
        input_ids = torch.zeros(batch, 20, dtype=torch.long, device=device)
        prior = LengthPriorLogitsProcessor([-2.0] * 32, eos_token_id=1, prompt_length=4)
        ms = time_interleaved(
            {
                "keep": partial(keep, None, logits),
                "nucleus": partial(nucleus, None, logits),
                "prior": partial(prior, input_ids, logits),
                "softmax": partial(torch.softmax, logits, dim=-1),
            },
            rounds,
            device,
        )
        lines.append(
            f"{device.type:>6} {batch:>5} {ms['keep']:>9.3f} {ms['nucleus']:>9.3f} {ms['prior']:>9.3f} "
            f"{ms['softmax']:>9.3f} {ms['keep'] / ms['nucleus']:>10.2f}x "
            f"{ms['prior'] / ms['softmax']:>10.2f}x"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds (default 15)")
    parser.add_argument("--vocab", type=int, default=51200)
    parser.add_argument("--top-p", type=float, default=0.92)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="see CLOCK (default wall)")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"torch {torch.__version__}, {args.threads} CPU threads, {args.clock} clock, "
        f"vocab {args.vocab}, top_p {args.top_p}"
    )
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name()}")
    table(
        "nucleus: median ms per call (ours / transformers' TopPLogitsWarper / one softmax)",
        f"{'device':>6} {'logits':>7} {'batch':>5} {'nucleus':>8} {'ours':>9} {'hf top-p':>9} "
        f"{'softmax':>9} {'hf/ours':>10} {'ours/sm':>10}  agreement",
        [row for device in devices for row in nucleus_rows(device, args.vocab, args.top_p, args.rounds)],
    )
    table(
        "repetition penalty (64-token history): median ms per call (ours / transformers' at 1.2)",
        f"{'device':>6} {'ours':>20} {'batch':>5} {'ours':>9} {'hf':>9} {'hf/ours':>10}  agreement",
        [row for device in devices for row in penalty_rows(device, args.vocab, args.rounds)],
    )
    table(
        "EOS (peaked logits): median ms per call (nucleus, EOS kept / nucleus / length prior / softmax)",
        f"{'device':>6} {'batch':>5} {'keep+nuc':>9} {'nucleus':>9} {'prior':>9} {'softmax':>9} "
        f"{'keep/nuc':>11} {'prior/sm':>11}",
        [row for device in devices for row in eos_rows(device, args.vocab, args.top_p, args.rounds)],
    )


def table(title: str, header: str, rows: list[str]) -> None:
    print(f"\n{title}\n{header}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
