"""Model output as safe HTML: Markdown with raw HTML off, code highlighted by
Pygments, then nh3 (an allow-list sanitiser) so no script, handler or
javascript: URL can survive, whatever the model wrote."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from project.user_input import loads_user_json

_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(code, lexer, _FORMATTER)


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight}).enable("table")

_TAGS = {"p", "br", "strong", "em", "code", "pre", "span", "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4",
         "h5", "h6", "a", "hr", "table", "thead", "tbody", "tr", "th", "td", "del"}
# Images in model output are left out: they would load third-party URLs from the page.
_ATTRIBUTES = {"span": {"class"}, "code": {"class"}, "a": {"href", "title"}}


# A reply is rendered again on every page that shows it and at the end of its stream on
# every open page (~0.3 ms for a 1 KB reply with code); the same text always renders the
# same, so recent ones are kept. Long texts are not, so the cache stays small (512 entries
# of at most 16 KB of text each, a few MB at worst).
_CACHED_TEXT_MAX = 16 * 1024


def render_markdown(text: str) -> str:
    return _render_cached(text) if len(text) <= _CACHED_TEXT_MAX else _render(text)


def _render(text: str) -> str:
    html = _MARKDOWN.render(text)
    return nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow")


_render_cached = lru_cache(maxsize=512)(_render)


def pretty_json(text: str) -> str | None:
    try:
        value: Any = loads_user_json(text)
    except ValueError:
        return None
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except RecursionError:  # parses, but too deep to indent
        return None
