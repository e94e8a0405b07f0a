"""The HTML forms ``trace-oauth`` fills in, read the way a browser reads them.

The tracer signs in and approves as a person would, through the same pages, so it needs each
form's action, method and fields (hidden CSRF token and flow id included), and the named
submit buttons (the consent page's Allow is ``decision=allow``). The standard library's HTML
parser is enough for our own pages; nothing here runs scripts or follows styles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode

__all__ = ["Form", "find_forms"]


@dataclass
class Form:
    """One ``<form>``: where it posts, its fields in order, and its named buttons."""

    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    field_types: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)

    def has_field(self, name: str) -> bool:
        return name in self.field_types

    def has_button(self, name: str, value: str) -> bool:
        return (name, value) in self.buttons

    def submission(self, values: dict[str, str], button: tuple[str, str] | None = None) -> str:
        """The body a browser would send: the fields with ``values`` filled in, then the
        button pressed (``application/x-www-form-urlencoded``)."""
        pairs = [(name, values.get(name, value)) for name, value in self.fields]
        if button is not None:
            pairs.append(button)
        return urlencode(pairs)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(
                action=attributes.get("action", ""),
                method=attributes.get("method", "get").lower(),
            )
            self.forms.append(self._current)
            return
        form = self._current
        name = attributes.get("name")
        if form is None or not name:
            return
        kind = attributes.get("type", "submit" if tag == "button" else "text").lower()
        if tag == "button" or (tag == "input" and kind == "submit"):
            form.buttons.append((name, attributes.get("value", "")))
        elif tag == "input" and kind not in ("checkbox", "radio", "image", "file", "reset"):
            form.fields.append((name, attributes.get("value", "")))
            form.field_types[name] = kind

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def find_forms(html: str) -> list[Form]:
    """Every form of the page, in document order."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms
