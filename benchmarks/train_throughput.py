"""Review tokens trained per second: the course's data path against the recipe's, side by side.

    python benchmarks/train_throughput.py                 # embedded model, NSMC sample, CPU
    python benchmarks/train_throughput.py --steps 30 --rounds 5 --batch_size 64

Same model, same reviews, same batch size (reviews per step), same AdamW step; only the data path
differs:

- course:  every example padded (or cut) to 32 tokens, labels = input ids, so the loss also runs
           over the pads; reviews drawn at random.
- recipe:  the recipe's default, built by ``nsmc_gen.training`` itself: up to 128 tokens,
           dynamic padding (``ReviewCollator``, labels -100 on pads) and length-grouped batches.
- packing: the recipe with ``--packing`` (several reviews per 128-token row).
- flattening: the recipe's batches re-collated by transformers' ``DataCollatorWithFlattening``
           (the whole batch as one row, restarting position_ids: a block-causal sdpa mask).

A review token is a non-padding token of a batch (prefix + review + EOS). Steps are drawn at
random from a whole epoch of each path's batches (the length-grouped sampler puts its longest
batch first), rounds alternate between the paths, and the figure per path is its total tokens over
its total time. Time is the process's CPU time (``time.process_time``) as well as wall time: on a
shared machine, wall time also counts the moments other jobs hold the cores. With ``--threads 1``
(the default) CPU time is what the same steps take on an idle core.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

import datasets
import torch
from transformers import DataCollatorWithFlattening, TrainingArguments, default_data_collator

from nsmc_gen.arguments import DataArguments, ModelArguments, ScriptArguments
from nsmc_gen.data import load_nsmc
from nsmc_gen.formatting import tokenize_reviews
from nsmc_gen.modeling import NSMC_SAMPLE
from nsmc_gen.training import build_trainer, load_model, prepare_datasets

COURSE_LENGTH = 32


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="model_name_or_path (default: embedded)")
    # >= 50 x 4 batches, so that the length-grouped sampler sorts mega-batches of 50 batches, as in a real run
    parser.add_argument("--reviews", type=int, default=6400, help="train reviews forming the epoch")
    parser.add_argument("--batch_size", type=int, default=32, help="reviews per step (the course's 32)")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per path and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the paths")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (CPU time is exact at 1)"
    )
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def recipe_batches(model, tokenizer, batch_size: int, reviews: int, packing: bool, seed: int) -> list[dict]:
    """One epoch of batches exactly as the recipe's Trainer would feed them."""
    data_args = DataArguments(
        max_train_samples=reviews, max_eval_samples=8, validation_size=1000, packing=packing
    )
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="throughput-"),
        dataloader_pin_memory=False,
        use_cpu=not torch.cuda.is_available(),
        per_device_train_batch_size=batch_size,
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,
        seed=seed,
        report_to="none",
    )
    data = prepare_datasets(data_args, tokenizer, args)
    trainer = build_trainer(model, tokenizer, data, ScriptArguments(), data_args, args)
    return list(trainer.get_train_dataloader())


def flattening_batches(batches: list[dict]) -> list[dict]:
    """The same reviews per step as ``batches``, each batch flattened into one row by transformers."""
    flatten = DataCollatorWithFlattening(return_position_ids=True)
    return [
        flatten([{"input_ids": ids[mask.bool()].tolist()} for ids, mask in zip(*rows, strict=True)])
        for rows in ((batch["input_ids"], batch["attention_mask"]) for batch in batches)
    ]


def course_batches(data: datasets.Dataset, tokenizer, batch_size: int, seed: int) -> list[dict]:
    """The course's path: pad/cut every example to 32 tokens, labels = input ids (pads included)."""

    def pad_to_32(batch):
        ids = tokenize_reviews(batch, tokenizer, max_length=COURSE_LENGTH)["input_ids"]
        padded = [row + [tokenizer.pad_token_id] * (COURSE_LENGTH - len(row)) for row in ids]
        masks = [[1] * len(row) + [0] * (COURSE_LENGTH - len(row)) for row in ids]
        return {"input_ids": padded, "attention_mask": masks, "labels": padded}

    rows = data.map(pad_to_32, batched=True, remove_columns=data.column_names).shuffle(seed=seed)
    return [
        default_data_collator([rows[i] for i in range(start, min(start + batch_size, rows.num_rows))])
        for start in range(0, rows.num_rows, batch_size)
    ]


def timed_steps(model, optimizer, batches: list[dict], pad_token_id: int) -> tuple[int, float, float, int]:
    """Train on ``batches``; return (review tokens, CPU seconds, wall seconds, positions)."""
    tokens, cpu, wall, positions = 0, 0.0, 0.0, 0
    for batch in batches:
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        cpu += time.process_time() - cpu_start
        wall += time.perf_counter() - wall_start
        tokens += int((batch["input_ids"] != pad_token_id).sum())
        positions += batch["input_ids"].numel()
    return tokens, cpu, wall, positions


def main() -> None:
    options = parse()
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    model, tokenizer = load_model(ModelArguments(model_name_or_path=options.model))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)  # the same step for every path

    # The same reviews for every path: the recipe's carve of the sample, first `reviews` train rows.
    nsmc = load_nsmc(NSMC_SAMPLE, validation_size=1000, seed=options.seed)
    reviews = nsmc["train"].select(range(options.reviews))
    paths = {
        "course (pad to 32, loss on pads)": course_batches(
            reviews, tokenizer, options.batch_size, options.seed
        ),
        "recipe (dynamic padding)": recipe_batches(
            model, tokenizer, options.batch_size, options.reviews, False, options.seed
        ),
        "recipe --packing": recipe_batches(
            model, tokenizer, options.batch_size, options.reviews, True, options.seed
        ),
    }
    paths["DataCollatorWithFlattening"] = flattening_batches(paths["recipe (dynamic padding)"])

    rng = random.Random(options.seed)
    for batches in paths.values():  # warm-up (allocator, kernels) outside the timings
        timed_steps(model, optimizer, batches[:1], tokenizer.pad_token_id)
    totals = {name: [0, 0.0, 0.0, 0] for name in paths}
    per_round = {name: [] for name in paths}
    for _ in range(options.rounds):
        for name, batches in paths.items():
            sample = rng.sample(batches, min(options.steps, len(batches)))
            tokens, cpu, wall, positions = timed_steps(model, optimizer, sample, tokenizer.pad_token_id)
            for i, value in enumerate((tokens, cpu, wall, positions)):
                totals[name][i] += value
            per_round[name].append(tokens / cpu)

    print(
        f"\nmodel {options.model}, {options.reviews} NSMC sample reviews, "
        f"batch {options.batch_size} reviews, {options.steps} steps x {options.rounds} rounds per path, "
        f"{options.threads} thread(s)"
    )
    print(
        f"{'path':34} {'tok/CPU-s':>9} {'median':>7} {'tok/wall-s':>10} {'tok/step':>8} {'pos/step':>8} "
        f"{'CPU-s/step':>10}  ratio"
    )
    course_tokens, course_cpu, _, _ = totals[next(iter(paths))]
    course_rate = course_tokens / course_cpu
    steps = options.rounds * min(options.steps, min(len(b) for b in paths.values()))
    for name, (tokens, cpu, wall, positions) in totals.items():
        print(
            f"{name:34} {tokens / cpu:9.0f} {statistics.median(per_round[name]):7.0f} {tokens / wall:10.0f} "
            f"{tokens / steps:8.0f} {positions / steps:8.0f} {cpu / steps:10.3f}  "
            f"{tokens / cpu / course_rate:5.2f}x"
        )
    print("ratio: review tokens per CPU-second against the course's path")


if __name__ == "__main__":
    main()
