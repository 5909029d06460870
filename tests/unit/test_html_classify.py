"""Confluence pages through partition_html without spaCy: the same chunks as with it."""

from __future__ import annotations

import random

from ingest.chunking import chunk_elements, clean_elements
from ingest.parse.html_classify import derive_element_type
from ingest.sources.confluence.model import PageInfo
from ingest.sources.confluence.render import PageParser
from testsupport.parse_reference import reference_page_elements
from testsupport.pdf_builder import sentence
from testsupport.sources_fixtures import storage_body


def _chunks(elements: list) -> list[str]:
    return chunk_elements(clean_elements(elements), 1000)


def test_untagged_text_keeps_unstructured_types_for_bullets_numbers_and_single_characters() -> None:
    from unstructured.documents.elements import ListItem, NarrativeText, Text

    assert derive_element_type("• first point") is ListItem
    assert derive_element_type("20261206") is Text
    assert derive_element_type("--- 12 / 34 ---") is Text
    assert derive_element_type("x") is None
    assert derive_element_type("Deploys stop at noon on Fridays") is NarrativeText


def test_a_page_parses_without_loading_an_nlp_model(monkeypatch) -> None:
    import unstructured.nlp.tokenize as tokenize

    def no_model() -> None:  # the injected fault: spaCy's model is unavailable
        raise AssertionError("the Confluence path loaded spaCy")

    monkeypatch.setattr(tokenize, "_get_nlp", no_model)
    page = PageInfo(id="7", title="Oboe tuning", space="ENG", body=storage_body("oboe reeds and tuning forks"))
    assert "oboe reeds" in " ".join(_chunks(PageParser(page).parse().elements))


def test_pages_chunk_exactly_as_with_spacy_classification() -> None:
    rng = random.Random(3)
    for i in range(6):
        body = "".join(
            f"<h2>{sentence(rng, 4)}</h2><p>{sentence(rng, rng.randrange(2, 60))}</p><p>{sentence(rng, 3)}</p>"
            f"<div>{sentence(rng, 9)} {sentence(rng, 12)}</div><ul><li>{sentence(rng, 8)}</li></ul><p>12 / 34</p>"
            for _ in range(rng.randrange(1, 8))
        )
        page = PageInfo(id=str(i), title=f"Page {i}", space="ENG", body=body + storage_body(f"phrase {i}"))
        assert _chunks(PageParser(page).parse().elements) == _chunks(reference_page_elements(page))
