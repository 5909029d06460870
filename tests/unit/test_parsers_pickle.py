"""Every source's parser object travels to a worker process by pickle: plain data in, the same
document out."""

from __future__ import annotations

import pickle
from pathlib import Path

from governance.policy import Policy
from ingest.sources import confluence, slack
from ingest.sources.confluence.model import PageInfo
from ingest.sources.confluence.render import PageParser
from ingest.sources.pdf import PdfFile
from ingest.sources.protocol import SourceContext
from ingest.sources.slack.render import RenderedDocument
from testsupport.parse_reference import parser_of
from testsupport.pdf_builder import write_report_pdf
from testsupport.sources_fixtures import (
    CPage,
    CSpace,
    CUser,
    small_slack_export,
    storage_body,
    write_confluence_xml,
)


def _texts(parser: object) -> list[str]:
    return [e.text for e in parser.parse().elements]  # type: ignore[attr-defined]


def _same_after_pickle(parser: object) -> None:
    copy = pickle.loads(pickle.dumps(parser))
    assert _texts(copy) == _texts(parser) and _texts(copy)


def test_a_pdf_parser_pickles_and_parses(tmp_path: Path) -> None:
    _same_after_pickle(PdfFile(write_report_pdf(tmp_path / "report.pdf", 1)))


def test_a_confluence_page_parser_pickles_and_parses() -> None:
    _same_after_pickle(PageParser(PageInfo(id="1", title="Runbook", space="ENG", body=storage_body("kettle drums"))))


def test_the_confluence_source_hands_out_picklable_parsers(tmp_path: Path) -> None:
    space = CSpace("ENG", "Engineering", view_groups=["staff"], pages=[CPage("10", "Home", storage_body("tuba"))])
    export = write_confluence_xml(tmp_path / "space", [space], [CUser("u1", "alice", "alice@corp.example")])
    ctx = SourceContext(policy=Policy(), work_dir=tmp_path / "work", site="acme.atlassian.net")
    parsers = [parser_of(item.parse) for item in confluence.SOURCE.open(export, ctx).items]
    assert parsers and all(isinstance(p, PageParser) for p in parsers)
    for p in parsers:
        _same_after_pickle(p)


def test_a_slack_document_parser_pickles_and_parses(tmp_path: Path) -> None:
    ctx = SourceContext(policy=Policy(), work_dir=tmp_path / "work")
    items = slack.SOURCE.open(small_slack_export(tmp_path / "slack"), ctx).items
    parsers = [p for item in items if isinstance(p := parser_of(item.parse), RenderedDocument)]
    assert parsers
    for p in parsers:
        _same_after_pickle(p)
