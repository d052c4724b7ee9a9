"""How names, paths and queries appear on the page: as text, never as Markdown or HTML.

A file may be called ``[Verify](https:\\\\evil.com).jpg`` or ``$x$ :red[y].png``; Streamlit reads Markdown
(links, LaTeX, colour directives) in labels and around inline HTML, so every such string goes through
:func:`md` (Markdown labels) or :func:`html_text` (the cards' HTML).
"""

from __future__ import annotations

MARKDOWN = set("\\`*_{}[]<>()#+-.!|~$:=")


def md(text: str) -> str:
    """``text`` for a Markdown label: every Markdown character backslash-escaped, one line."""
    return "".join("\\" + c if c in MARKDOWN else c for c in text.replace("\n", " "))


def html_text(text: str) -> str:
    """``text`` inside HTML: HTML's and Markdown's special characters as numeric entities, one line."""
    return "".join(f"&#{ord(c)};" if c in MARKDOWN or c in "&<>\"'" else c for c in text.replace("\n", " "))
