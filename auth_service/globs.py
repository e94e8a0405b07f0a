"""Path globs of access rules: checked when the configuration is read, matched in linear time.

``*`` matches any characters within one path segment; ``**``, a whole segment of its own,
matches any number of segments, none included, so ``/admin/**`` matches ``/admin``,
``/admin/`` and everything below. A glob is matched against the canonical, decoded path
(``forwarded.canonical_path``), so it is written the same way: no escapes, no ``.`` or
``..`` segments, no ``//``.

Matching reads the path's segments once, each against the set of glob positions still alive
(at most one per glob segment), and a segment against ``*`` by finding the literal parts in
order: no backtracking, whatever the glob. A regular expression of ``.*`` pieces would
backtrack: ``/**/a/**/b/**/c`` took seconds against a few KB of path.
"""

from __future__ import annotations

_DOUBLE_STAR = "**"
_NEVER_IN_A_PATH = {
    "%": "an escape (write the character itself: rules match the decoded path)",
    "\\": "a '\\'",
    ";": "a ';'",
    "#": "a '#'",
    "?": "a '?' (the query is not part of the path)",
}


def glob_problem(pattern: str) -> str | None:
    """What makes ``pattern`` unusable as a path glob, or None when it is fine.

    A glob that could never match a canonical path is refused rather than left to match
    nothing, and so is a ``**`` inside a segment, whose meaning would be a guess.
    """
    if not pattern.startswith("/"):
        return "must start with '/'"
    if not pattern.isprintable():
        return "must not contain control or invisible characters"
    for character, name in _NEVER_IN_A_PATH.items():
        if character in pattern:
            return f"must not contain {name}"
    segments = pattern[1:].split("/")
    if "." in segments or ".." in segments:
        return "must not contain '.' or '..' segments"
    if "" in segments[:-1]:
        return "must not contain an empty segment ('//')"
    if any(_DOUBLE_STAR in s and s != _DOUBLE_STAR for s in segments):
        return "must use '**' only as a whole segment ('/a/**/b'); within a segment, use '*'"
    return None


class Glob:
    """A compiled path glob; ``matches(path)`` runs in time linear in the path's length."""

    __slots__ = ("_exact", "_ignore_case", "_prefix", "_segments", "pattern")

    def __init__(self, pattern: str, *, case_sensitive: bool = True) -> None:
        problem = glob_problem(pattern)
        if problem is not None:
            raise ValueError(f"path glob {pattern!r} {problem}")
        self.pattern = pattern
        self._ignore_case = not case_sensitive
        text = pattern.lower() if self._ignore_case else pattern
        # The common shapes need no segment walk: an exact path, and "/prefix/**".
        self._exact: str | None = text if "*" not in text else None
        head = text.removesuffix("/**")
        self._prefix: str | None = head if head != text and "*" not in head else None
        self._segments = tuple(
            None if s == _DOUBLE_STAR else tuple(s.split("*")) for s in text[1:].split("/")
        )

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def matches(self, path: str) -> bool:
        """Whether the canonical ``path`` matches."""
        if self._ignore_case:
            path = path.lower()
        if self._exact is not None:
            return path == self._exact
        if self._prefix is not None:
            prefix = self._prefix
            return path == prefix or path.startswith(prefix + "/")
        return _walk(self._segments, path[1:].split("/"))


def _walk(glob: tuple[tuple[str, ...] | None, ...], segments: list[str]) -> bool:
    """Whether ``segments`` match the glob's segments (None standing for ``**``).

    A set of positions in the glob, advanced one path segment at a time (a Thompson
    simulation): O(path segments x glob segments) segment matches, no backtracking.
    """
    end = len(glob)
    alive = _closure(glob, {0})
    for segment in segments:
        following = set()
        for position in alive:
            if position == end:
                continue
            parts = glob[position]
            if parts is None:
                following.add(position)  # "**" takes this segment and may take more
            elif _segment_matches(parts, segment):
                following.add(position + 1)
        if not following:
            return False
        alive = _closure(glob, following)
    return end in alive


def _closure(glob: tuple[tuple[str, ...] | None, ...], positions: set[int]) -> set[int]:
    """``positions`` and those reached by letting each ``**`` match no segment."""
    reached = set(positions)
    for position in sorted(positions):
        while position < len(glob) and glob[position] is None:
            position += 1
            reached.add(position)
    return reached


def _segment_matches(parts: tuple[str, ...], segment: str) -> bool:
    """Whether ``segment`` matches a segment glob split at its ``*``s.

    The literal parts must appear in order, the first at the start and the last at the end;
    taking each middle part at its first occurrence is never worse than a later one, so one
    left-to-right pass decides.
    """
    first, last = parts[0], parts[-1]
    if len(parts) == 1:
        return segment == first
    if len(segment) < len(first) + len(last):
        return False
    if not segment.startswith(first) or not segment.endswith(last):
        return False
    position, stop = len(first), len(segment) - len(last)
    for part in parts[1:-1]:
        found = segment.find(part, position, stop)
        if found < 0:
            return False
        position = found + len(part)
    return True
