"""The decoding study's report: a Markdown table, a JSON file and a PNG plot, written atomically.

The report is a plain dict (what :func:`nsmc_gen.evaluation.study.run_study` returns): a header
(model, perplexity on the test reviews, the judges' own accuracy) and one row per decoding strategy.
Every figure names the data it was measured on (the report's ``data_name``, e.g. "NSMC-rebuild").
Rendering knows nothing of models: it can be tested, and re-run, from the JSON alone.

Example:
    >>> paths = write_report(report, "study-out")  # doctest: +SKIP
    >>> sorted(p.name for p in paths.values())  # doctest: +SKIP
    ['decoding_study.json', 'decoding_study.md', 'decoding_study.png']
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nsmc_gen.files import atomic_write, write_text_atomic

STEM = "decoding_study"

# (row key, table header, format): the order of the Markdown table.
COLUMNS: list[tuple[str, str, str]] = [
    ("control", "control (judge)", "{:.2f}"),
    ("control_bayes", "control (Bayes)", "{:.2f}"),
    ("distinct_1", "distinct-1", "{:.2f}"),
    ("distinct_2", "distinct-2", "{:.2f}"),
    ("repetition_rate", "repeated 2-gram", "{:.2f}"),
    ("self_bleu", "self-BLEU", "{:.2f}"),
    ("mean_length", "mean chars", "{:.1f}"),
    ("short_share", "< 5 chars", "{:.2f}"),
    ("known_words", "known words", "{:.2f}"),
    ("discriminator", "real vs generated", "{:.2f}"),
    ("tokens_per_s", "tokens/s", "{:.0f}"),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


NEUTRAL = {"repetition_penalty": 1.0, "guidance_scale": 1.0}  # shown only when a row changes them


def _decoding_cell(decoding: dict[str, Any]) -> str:
    shown = {k: v for k, v in decoding.items() if NEUTRAL.get(k) != v}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "generate_reviews defaults"


def _also(row: dict[str, Any]) -> str:
    """The other names of a row that stands for several (``guidance-2`` is also ``default``)."""
    aliases = row.get("aliases") or []
    return f"; also named {', '.join(aliases)}" if aliases else ""


def find_row(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The report's row called ``name`` or merged under it (``default`` is ``guidance-2``'s alias).

    Example:
        >>> find_row({"rows": [{"name": "guidance-2", "aliases": ["default"]}]}, "default")["name"]
        'guidance-2'
    """
    return next((row for row in report["rows"] if name in (row["name"], *row.get("aliases", ()))), None)


def data_label(report: dict[str, Any]) -> str:
    """What the test reviews are: ``"NSMC-rebuild test reviews"``, never the official split's name
    unless the report says so (reports written before ``data_name``: named by their folder)."""
    return f"{report.get('data_name') or report.get('data', 'the data')} test reviews"


def render_table(report: dict[str, Any]) -> str:
    """The strategy table alone (what a model card shows)."""
    lines = [
        "| strategy | decoding | " + " | ".join(header for _, header, _ in COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for row in report["rows"]:
        decoding = _decoding_cell(row["decoding"]) + _also(row)
        cells = [_cell(row.get(key), fmt) for key, _, fmt in COLUMNS]
        lines.append(f"| {row['name']} | {decoding} | " + " | ".join(cells) + " |")
    if reference := report.get("reference"):
        cells = [_cell(reference.get(key), fmt) for key, _, fmt in COLUMNS]
        lines.append(f"| *{reference['name']}* | human reviews | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the header facts, then one table row per strategy."""
    judges, ppl = report["judges"], report["perplexity"]
    independent = judges["independent"]
    test = data_label(report)
    train = test.replace("test reviews", "train reviews")
    lines = [
        f"# Decoding study: {report['model']}",
        "",
        f"- Perplexity on {ppl['test_reviews']:,} {test} (review tokens + EOS after the true "
        f"sentiment prefix): **{ppl['perplexity']:.2f}** ({ppl['loss']:.3f} nats/token)",
        f"- Independent judge ({independent['name']}, trained on {independent['train_reviews']:,} "
        f"{train}): accuracy **{independent['accuracy']:.3f}** on "
        f"{independent['test_reviews']:,} {test}",
        f"- Bayes judge (this model, log p(review | 긍정) vs log p(review | 부정)): accuracy "
        f"**{judges['bayes']['accuracy']:.3f}** on {judges['bayes']['test_reviews']:,} {test}",
        f"- {report['num_reviews']} reviews per sentiment and strategy, seed {report['seed']}; words are "
        f"whitespace-separated; 'known words': share of generated words found in the {train}; "
        "'real vs generated': cross-validated accuracy of a classifier (char 1-3-gram TF-IDF + logistic "
        f"regression) telling the row's reviews from as many {test} (0.5: indistinguishable; "
        f"the human row: against other {test}). "
        "Repetition penalty 1.0 and guidance scale 1.0 (both off) unless a row says otherwise; no row "
        "has a length floor (min_new_tokens 0) unless it says so. Rows that decode the same way are "
        "one row, 'also named' by the others (the default decoding is guidance-2).",
        "",
        render_table(report),
    ]
    if report.get("notes"):
        lines += ["", *(f"- {note}" for note in report["notes"])]
    if any(row.get("deterministic") for row in report["rows"]):
        lines += [
            "",
            "Greedy and beam rows are deterministic: every request returns the same review, generated "
            "once per sentiment (so their tokens/s is unbatched; sampling rows generate a batch).",
        ]
    lines += ["", "## Examples", ""]
    for row in report["rows"]:
        for sentiment, texts in row.get("examples", {}).items():
            lines.append(f"- **{row['name']}**, {sentiment}: " + " / ".join(f"`{t}`" for t in texts))
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Three panels, one point per strategy: diversity (distinct-2), fluency (known words) and
    realness (real vs generated accuracy) against sentiment control, the human reviews as a star."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    reference = report.get("reference")
    families = sorted({row["family"] for row in report["rows"]})
    colors = {family: plt.cm.tab10(i % 10) for i, family in enumerate(families)}
    fig, axes = plt.subplots(1, 3, figsize=(20, 5.5), constrained_layout=True)
    for ax, key, label in (
        (axes[0], "distinct_2", "distinct-2 (diversity)"),
        (axes[1], "known_words", "known words (fluency)"),
        (axes[2], "discriminator", "real vs generated accuracy (realness: 0.5 best)"),
    ):
        rows = [row for row in report["rows"] if row.get(key) is not None]
        for family in families:
            mine = [row for row in rows if row["family"] == family]
            x, y = [r[key] for r in mine], [r["control"] for r in mine]
            ax.scatter(x, y, color=colors[family], label=family, s=40)
        for row in rows:  # the colour names the family, so the label is only the knob's value
            text = row["name"][len(row["family"]) + 1 :] or row["name"]
            ax.annotate(
                text,
                (row[key], row["control"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
                color=colors[row["family"]],
            )
        if reference and reference.get(key) is not None:
            star = dict(marker="*", s=200, color="black", label=f"{reference['name']} (human)")
            ax.scatter([reference[key]], [reference["control"]], **star)
        ax.set_xlabel(label)
        ax.set_ylabel("sentiment control (independent judge)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"Decoding study: {report['model']} ({report['num_reviews']} reviews per sentiment)")
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def write_report(report: dict[str, Any], output_dir: str | Path) -> dict[str, Path]:
    """Write ``decoding_study.{md,json,png}`` into ``output_dir``, each atomically.

    Returns:
        ``{"markdown": ..., "json": ..., "plot": ...}`` paths.
    """
    output_dir = Path(output_dir)
    paths = {
        kind: output_dir / f"{STEM}.{ext}"
        for kind, ext in (("markdown", "md"), ("json", "json"), ("plot", "png"))
    }
    write_text_atomic(paths["markdown"], render_markdown(report))
    write_text_atomic(paths["json"], json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    atomic_write(paths["plot"], lambda p: plot_report(report, p))
    return paths
