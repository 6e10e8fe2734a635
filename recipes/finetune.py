"""Fine-tune a Korean GPT on NSMC to write movie reviews of a chosen sentiment ("긍정 ..." / "부정 ...").

    accelerate launch recipes/finetune.py                                    # embedded default, CPU, minutes
    accelerate launch recipes/finetune.py --config recipes/kogpt2/full.yaml  # KoGPT2 on the full NSMC
    accelerate launch recipes/finetune.py --config recipes/kogpt2/lora.yaml --max_steps 20 --output_dir out
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/finetune.py --config ...

Without ``--config`` the embedded recipe (recipes/embedded/default.yaml) applies. Every recipe key
can be overridden on the command line; ``--help`` lists them all. A run that crashed resumes from its
last checkpoint when restarted with the same output_dir; a finished run's folder is refused
(``--overwrite_output_dir true`` trains afresh into it, ``--resume_from_checkpoint DIR`` resumes one
of its checkpoints).
After training, the main process calibrates the model's length prior against the training reviews
and saves it with the model, calibrates a constant EOS bias for plain clients (``pipeline`` without
remote code: the ``sequence_bias`` field), and records the review lengths of both decoding paths
against the training reviews' own in the run facts and the card (``--calibrate_length_prior false``
skips all three).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import datasets
import transformers
from transformers import set_seed

from nsmc_gen.arguments import parse_args
from nsmc_gen.calibration import calibrate_length_prior, calibrate_plain_eos_bias, decoding_path_lengths
from nsmc_gen.custom_generate.generate import LENGTH_PRIOR_FIELD
from nsmc_gen.decoding import PLAIN_EOS_BIAS_FIELD, eos_sequence_bias
from nsmc_gen.generation import generate_reviews
from nsmc_gen.hub import push_model
from nsmc_gen.model_folder import (
    MERGED_DIR,
    merge_adapter,
    record_evaluation,
    save_finished_model,
    save_length_prior,
    save_plain_eos_bias,
)
from nsmc_gen.training import (
    build_trainer,
    check_output_dir,
    last_checkpoint,
    load_model,
    prepare_datasets,
    save_dtype,
    set_cpu_threads,
    take_push_request,
    train_reviews,
    training_facts,
    whole_model,
)

DEFAULT_CONFIG = Path(__file__).resolve().parent / "embedded" / "default.yaml"
logger = logging.getLogger("finetune")


def main(argv: list[str] | None = None, callbacks: list | None = None) -> Path:
    # ---- arguments: recipe YAML + command-line overrides, all checked before any work ----
    script_args, model_args, data_args, training_args = parse_args(argv, default_config=DEFAULT_CONFIG)
    check_output_dir(training_args)  # a finished run's folder is refused unless told how
    repo_id = take_push_request(training_args)  # checked now, pushed once at the end
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    log_level = training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    logger.info("%s\n%s", model_args, data_args)
    set_seed(training_args.seed)
    logger.info("torch threads: %d", set_cpu_threads(script_args.cpu_threads, training_args))

    # ---- model and tokenizer (LoRA targets checked against the model) ----
    model, tokenizer = load_model(model_args, data_args)

    # ---- data: "긍정 <review></s>" / "부정 <review></s>" token ids ----
    data = prepare_datasets(data_args, tokenizer, training_args)

    # ---- train (resuming from the last checkpoint in output_dir, if any) ----
    trainer = build_trainer(model, tokenizer, data, script_args, data_args, training_args, callbacks)
    train_result = trainer.train(resume_from_checkpoint=last_checkpoint(training_args))
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    # ---- evaluate: loss and perplexity over review tokens of the validation split ----
    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)

    # ---- the finished, Hub-ready folder: weights, tokenizer, decoding, run facts, card ----
    facts = training_facts(trainer, model_args, data_args, eval_metrics)
    folder = save_finished_model(trainer, facts, data_args.review_format, dtype=save_dtype(model_args))
    if trainer.is_world_process_zero():
        with whole_model(trainer, folder) as model:  # under ZeRO-3: the folder, loaded whole
            # ---- the length prior: sampled reviews end as often, per token count, as the training ones ----
            if script_args.calibrate_length_prior:
                reference = train_reviews(data_args, training_args)
                calibration = {"num_reviews": script_args.calibration_reviews, "seed": training_args.seed}
                prior = calibrate_length_prior(model, tokenizer, reference, **calibration)
                save_length_prior(folder, prior)
                setattr(model.generation_config, LENGTH_PRIOR_FIELD, prior)  # the sample reviews use it
                # ---- plain clients: one EOS bias, so that pipeline() writes reviews of the same length ----
                bias = calibrate_plain_eos_bias(model, tokenizer, reference, **calibration)
                save_plain_eos_bias(folder, bias)
                eos = model.generation_config.eos_token_id
                setattr(model.generation_config, PLAIN_EOS_BIAS_FIELD, eos_sequence_bias(eos, bias))
                # ---- both paths measured on fresh seeds, for the run facts and the card ----
                calibration["seed"] += 1000
                lengths = decoding_path_lengths(model, tokenizer, reference, **calibration)
                record_evaluation(folder, review_lengths=lengths)
                logger.info("plain EOS bias %.3f; review lengths %s", bias, lengths)
            for sentiment in ("positive", "negative") if script_args.sample_reviews else ():
                reviews = generate_reviews(
                    model,
                    tokenizer,
                    sentiment,
                    num_return_sequences=script_args.sample_reviews,
                    seed=training_args.seed,
                )  # the default decoding, as `nsmc-gen generate` applies it
                print(f"\n{sentiment}:", *(f"  - {review}" for review in reviews), sep="\n")
        if model_args.merge_lora:  # from the saved adapter: under ZeRO-3 the weights are partitioned
            folder = merge_adapter(folder, folder / MERGED_DIR, dtype=save_dtype(model_args))
        print(f"model folder: {folder}")

    # ---- publish: the finished folder, one commit ----
    if repo_id and trainer.is_world_process_zero():
        args = training_args
        commit = push_model(folder, repo_id, private=bool(args.hub_private_repo), token=args.hub_token)
        print(f"pushed: {commit.commit_url}")
    return folder


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"finetune.py: error: {error}")
