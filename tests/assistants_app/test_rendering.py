"""Model output as HTML: sanitised whatever it says, and a reply shown again (every page,
every viewer, the end of its stream) is not parsed again."""

from __future__ import annotations

import pytest

from assistants_app import rendering
from assistants_app.rendering import render_markdown

HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>[click](javascript:alert(3)) **bold**'


def test_model_output_is_rendered_without_scripts_handlers_or_javascript_links() -> None:
    html = render_markdown(HOSTILE)
    # Raw HTML is shown as text, never as tags; a javascript: link is never a link.
    assert "<script" not in html and "<img" not in html and "href=\"javascript:" not in html
    assert "&lt;script&gt;" in html and "<strong>bold</strong>" in html


def test_the_same_reply_is_parsed_once_and_rendered_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    parse = rendering._MARKDOWN.render

    def counted(text: str) -> str:
        parsed.append(text)
        return parse(text)

    monkeypatch.setattr(rendering._MARKDOWN, "render", counted)
    text = "A reply shown on three pages, with `code` and a [link](https://example.com). (cache test 1)"
    first = render_markdown(text)
    assert render_markdown(text) == render_markdown(text) == first
    assert parsed == [text]
    assert 'rel="noopener noreferrer nofollow"' in first


def test_a_long_reply_is_rendered_each_time_and_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    parse = rendering._MARKDOWN.render

    def counted(text: str) -> str:
        parsed.append(len(text))
        return parse(text)

    monkeypatch.setattr(rendering._MARKDOWN, "render", counted)
    long_text = "word " * (rendering._CACHED_TEXT_MAX // 4)
    render_markdown(long_text)
    render_markdown(long_text)
    assert len(parsed) == 2
