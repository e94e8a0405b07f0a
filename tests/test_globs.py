"""Path globs: the documented semantics, refused patterns, and linear-time matching."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth_service import globs
from auth_service.globs import Glob, glob_problem


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/admin/**", "/admin", True),
        ("/admin/**", "/admin/", True),
        ("/admin/**", "/admin/a/b/c", True),
        ("/admin/**", "/administrator", False),
        ("/admin/**", "/", False),
        ("/api/*/items", "/api/7/items", True),
        ("/api/*/items", "/api/7/8/items", False),
        ("/a/**/z", "/a/z", True),
        ("/a/**/z", "/a/b/c/z", True),
        ("/a/**/z", "/a/b/cz", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("/files/*.pdf", "/files/report.pdf", True),
        ("/files/*.pdf", "/files/x/report.pdf", False),
        ("/files/*.pdf", "/files/.pdf", True),
        ("/a*b*c", "/abc", True),
        ("/a*b*c", "/axxbyyc", True),
        ("/a*b*c", "/acb", False),
        ("/a*a", "/a", False),
        ("/*", "/", True),
        ("/exact", "/exact", True),
        ("/exact", "/exact/", False),
        ("/", "/", True),
        ("/", "/a", False),
        ("/**/a/**/b/**/c", "/a/b/c", True),
        ("/**/a/**/b/**/c", "/x/a/y/b/z/c", True),
        ("/**/a/**/b/**/c", "/c/b/a", False),
        ("/caf\u00e9/**", "/caf\u00e9/menu", True),
    ],
)
def test_glob_semantics(pattern: str, path: str, matches: bool) -> None:
    assert Glob(pattern).matches(path) is matches


def test_a_case_insensitive_glob_matches_any_case() -> None:
    glob = Glob("/Admin/**", case_sensitive=False)
    assert all(glob.matches(p) for p in ("/admin", "/ADMIN/x", "/aDmIn/Users"))
    assert not glob.matches("/admins")
    assert not Glob("/admin/**").matches("/ADMIN/x")


def _regex_of(pattern: str) -> re.Pattern[str]:
    """The previous matcher's translation (a backtracking regex): the reference for the
    semantics on short paths, where backtracking costs nothing."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("/**", i):
            regex, i = regex + "(?:/.*)?", i + 3
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex)


_SEGMENT = st.text(alphabet="ab.", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
_PATHS = st.builds(
    lambda segments, slash: "/" + "/".join(segments) + ("/" if slash and segments else ""),
    st.lists(_SEGMENT, max_size=6),
    st.booleans(),
)
_GLOBS = st.builds(
    lambda segments, slash: "/" + "/".join(segments) + ("/" if slash and segments else ""),
    st.lists(st.sampled_from(["a", "b", "*", "**", "a*", "*b", "a*b", "*.*", "ab"]), max_size=5),
    st.booleans(),
)


@given(_GLOBS, _PATHS)
def test_globs_mean_what_they_meant(pattern: str, path: str) -> None:
    assert Glob(pattern).matches(path) is (_regex_of(pattern).fullmatch(path) is not None)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("admin/**", "must start with '/'"),
        ("/admin/../public/**", "'.' or '..'"),
        ("/admin/./x", "'.' or '..'"),
        ("/admin//x", "empty segment"),
        ("/caf%C3%A9", "escape"),
        ("/a;b", "';'"),
        ("/a\\b", "'\\'"),
        ("/a?b=1", "query"),
        ("/a#b", "'#'"),
        ("/a/**x", "whole segment"),
        ("/**.pdf", "whole segment"),
        ("/a\tb", "control"),
    ],
)
def test_globs_that_could_not_match_a_canonical_path_are_refused(
    pattern: str, problem: str
) -> None:
    found = glob_problem(pattern)
    assert found is not None and problem in found
    with pytest.raises(ValueError, match=re.escape(problem)):
        Glob(pattern)


@pytest.mark.parametrize("length", [4096, 8192])
def test_many_double_stars_match_long_paths_in_linear_steps(
    monkeypatch: pytest.MonkeyPatch, length: int
) -> None:
    # Issue 16, M3: this glob against a 4 KB path took 7 s as a regex, 8 KB 54 s.
    calls = 0
    segment_matches = globs._segment_matches

    def counted(parts: tuple[str, ...], segment: str) -> bool:
        nonlocal calls
        calls += 1
        return segment_matches(parts, segment)

    monkeypatch.setattr(globs, "_segment_matches", counted)
    glob = Glob("/**/a/**/b/**/c")
    near_miss = ("/a/b" * length)[: length - 2] + "/x"
    assert not glob.matches(near_miss)
    segments = near_miss.count("/")
    # Each path segment is tried against at most each of the three literal glob segments.
    assert calls <= 3 * segments
    assert glob.matches(near_miss[:-2] + "/c")
