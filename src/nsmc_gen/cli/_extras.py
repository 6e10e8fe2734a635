"""What a subcommand needs beyond the base install, checked before anything slow."""

from __future__ import annotations

import importlib.util

# extra -> the import names it brings (pyproject.toml's [project.optional-dependencies])
EXTRAS = {
    "eval": ("sklearn", "sacrebleu", "matplotlib"),
    "demo": ("gradio",),
}


def require_extra(extra: str) -> None:
    """Raise ``ValueError`` (one line) naming the pip command when ``extra``'s packages are missing.

    Example:
        >>> require_extra("eval")  # installed here: nothing happens
    """
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(
            f"this command needs the {extra!r} extra ({', '.join(missing)} missing): "
            f"pip install 'nsmc-gen[{extra}]' (or pip install -e \".[{extra}]\" in a clone)"
        )
