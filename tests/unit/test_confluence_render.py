"""Confluence storage format → plain HTML: what each macro and ``ac:``/``ri:`` element becomes."""

from __future__ import annotations

from ingest.sources.confluence.render import storage_to_html

EVERY_CONSTRUCT = (
    "<h1>Runbook</h1>"
    '<ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA[make <deploy>]]>'
    "</ac:plain-text-body></ac:structured-macro>"
    '<ac:structured-macro ac:name="info"><ac:rich-text-body><p>Check twice.</p></ac:rich-text-body>'
    "</ac:structured-macro>"
    '<ac:structured-macro ac:name="status"><ac:parameter ac:name="title">DONE</ac:parameter>'
    "</ac:structured-macro>"
    '<ac:structured-macro ac:name="toc"/>'
    '<p>See <ac:link><ri:page ri:content-title="Home"/></ac:link> and '
    '<ac:link><ri:user ri:username="jdoe"/></ac:link>.</p>'
    '<ac:image><ri:attachment ri:filename="diagram.png"/></ac:image>'
    "<ac:task-list><ac:task><ac:task-status>complete</ac:task-status><ac:task-body>ship it</ac:task-body>"
    "</ac:task></ac:task-list>"
    '<p>Happy <ac:emoticon ac:name="smile"/> <time datetime="2026-12-06"></time></p>'
    "<p><ac:inline-comment-marker>marked words</ac:inline-comment-marker><xx:unknown>kept text</xx:unknown></p>"
)


def test_every_storage_construct_becomes_plain_html_with_its_text() -> None:
    html = storage_to_html(EVERY_CONSTRUCT)
    assert "<pre>make &lt;deploy&gt;</pre>" in html
    assert "<p>Info:</p><p>Check twice.</p>" in html
    assert "DONE" in html and "toc" not in html
    assert "See Home and @jdoe." in html
    assert "[image: diagram.png]" in html
    assert "<ul><li>[x] ship it</li></ul>" in html
    assert "2026-12-06" in html and "emoticon" not in html
    assert "marked words" in html and "kept text" in html
    assert "ac:" not in html and "ri:" not in html and "xx:" not in html


def test_upper_case_tag_names_convert_as_lower_case_ones_do() -> None:
    upper = EVERY_CONSTRUCT.replace("<ac:", "<AC:").replace("</ac:", "</AC:")
    assert storage_to_html(upper) == storage_to_html(EVERY_CONSTRUCT)


def test_a_body_without_macros_is_its_html() -> None:
    assert storage_to_html("<h2>Plain</h2><p>Just text, <b>bold</b>.</p>") == (
        "<h2>Plain</h2><p>Just text, <b>bold</b>.</p>"
    )
