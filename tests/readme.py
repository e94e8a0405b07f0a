"""Reading README.md as a user does: its sections and the fenced blocks in them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    """The text under the heading ``title`` (any level), up to the next heading of the same
    or a higher level (a ``#`` line inside a fenced block is not a heading)."""
    lines = README.read_text(encoding="utf-8").splitlines(keepends=True)
    start = level = None
    in_fence = False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        heading = None if in_fence else re.match(r"(#+) (.*)\n", line)
        if heading and start is None and heading.group(2) == title:
            start, level = number + 1, len(heading.group(1))
        elif heading and start is not None and level is not None:
            if len(heading.group(1)) <= level:
                return "".join(lines[start:number])
    assert start is not None, f"README.md has no section {title!r}"
    return "".join(lines[start:])


def fenced_blocks(text: str | None = None) -> list[tuple[str, str]]:
    """(language, body) of every fenced block in ``text`` (default: the whole README)."""
    source = README.read_text(encoding="utf-8") if text is None else text
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(source)]
