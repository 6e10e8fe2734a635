"""Review perplexity: how well a causal LM predicts movie reviews, review tokens only.

Each review is tokenized as in training (the sentiment prefix when ``sentiments`` are given,
the review, EOS); the loss counts the review's tokens and its EOS, never the prefix or padding.
Without ``sentiments`` there is no prefix and the first review token, which has no context, is
not counted. ``perplexity`` is the corpus perplexity ``exp(total loss / total tokens)``.

Example:
    >>> import evaluate
    >>> metric = evaluate.load("src/nsmc_gen/evaluation/metrics/review_perplexity")
    >>> result = metric.compute(predictions=["재밌어요"], model=model, tokenizer=tok, sentiments=[1])
    ... # doctest: +SKIP
    >>> sorted(result)  # doctest: +SKIP
    ['loss', 'num_tokens', 'perplexities', 'perplexity']
"""

import math

import datasets
import evaluate

from nsmc_gen.evaluation.scoring import mean_token_loss, review_log_probs

_KWARGS = """
Args:
    predictions (list of str): the reviews to score (without a sentiment word).
    model: a causal LM object (e.g. ``AutoModelForCausalLM``).
    tokenizer: its tokenizer.
    sentiments (list of "positive"/"negative" or 1/0, optional): the prefix for each review, in
        the words the model was trained on (its generation config's sentiment_guidance field).
    batch_size (int, default 32): reviews per forward pass.
Returns:
    ``perplexity`` (corpus), ``loss`` (nats per token), ``num_tokens``, and ``perplexities``
    (one per review).
"""


class ReviewPerplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__.split("\n\n")[1],
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, model, tokenizer, sentiments=None, batch_size=32):
        scores = review_log_probs(model, tokenizer, predictions, sentiments, batch_size)
        loss, count = mean_token_loss(scores)
        return {
            "perplexity": math.exp(loss),
            "loss": loss,
            "num_tokens": count,
            "perplexities": [math.exp(-float(s.mean())) if len(s) else float("nan") for s in scores],
        }
