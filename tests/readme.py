"""Reading README.md as a user does: its sections and the fenced blocks in them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    """The text under the heading ``title`` (any level), up to the next heading of the same
    or a higher level."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.MULTILINE)
    assert match, f"README.md has no section {title!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def fenced_blocks(text: str | None = None) -> list[tuple[str, str]]:
    """(language, body) of every fenced block in ``text`` (default: the whole README)."""
    source = README.read_text(encoding="utf-8") if text is None else text
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(source)]
