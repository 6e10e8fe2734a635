"""A griffe extension for the API pages: read ``Example:`` as the Google-style examples section.

The project's docstrings head their doctests ``Example:`` (Napoleon's spelling, also Google's
style guide's). griffe's Google parser knows only ``Examples:`` and would render ``Example:`` as
an admonition of Markdown text, where doctest output such as ``[0][:4]`` reads as a broken link.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename each ``Example:`` section header to ``Examples:`` before the docstring is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
