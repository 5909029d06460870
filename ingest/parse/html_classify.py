"""``partition_html`` without spaCy: the element type of untagged HTML text decided by rules.

unstructured's HTML partitioner takes headings, list items, tables and code from the tags.
Text outside them (``<p>``, ``<div>``, table-less blocks) it classifies with
``derive_element_type_from_text``, which runs the spaCy pipeline (sentence splitting, part of
speech tagging) on every paragraph only to choose between ``NarrativeText`` and ``Text``.
That choice is never ``Title`` in the HTML partitioner, and chunking (``chunk_by_title``)
treats the two alike, so it changes no chunk: it was ≈ 3/4 of the time of a Confluence page.
:func:`install` replaces it with the same function minus the NLP check; bullets, addresses,
e-mail addresses and one-character texts are decided as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_original: Any = None  # unstructured's own derive_element_type_from_text, once replaced


def derive_element_type(text: str) -> Any:
    """unstructured's ``derive_element_type_from_text`` with ``NarrativeText`` for any text of
    two characters or more that is not a bullet, address or e-mail address (``Text`` for
    numbers and symbol runs, as unstructured's cheap checks say)."""
    from unstructured.documents.elements import Address, EmailAddress, ListItem, NarrativeText, Text
    from unstructured.partition.text_type import (
        is_bulleted_text,
        is_email_address,
        is_us_city_state_zip,
        under_non_alpha_ratio,
    )

    if is_bulleted_text(text):
        return ListItem
    if is_us_city_state_zip(text):
        return Address
    if is_email_address(text):
        return EmailAddress
    if len(text) < 2:
        return None
    if text.isnumeric() or under_non_alpha_ratio(text, threshold=0.5):
        return Text
    return NarrativeText


def install() -> None:
    """Make unstructured's HTML partitioner use :func:`derive_element_type`; idempotent."""
    global _original
    from unstructured.partition.html import parser

    with _lock:
        if _original is None:
            _original = parser.derive_element_type_from_text
            parser.derive_element_type_from_text = derive_element_type


@contextmanager
def nlp_classifier() -> Iterator[None]:
    """Within the block, unstructured's own (spaCy) classifier: for reference measurements
    only (not thread-safe: other threads partitioning HTML meanwhile get it too)."""
    from unstructured.partition.html import parser

    current: Any = parser.derive_element_type_from_text
    parser.derive_element_type_from_text = _original or current
    try:
        yield
    finally:
        parser.derive_element_type_from_text = current
