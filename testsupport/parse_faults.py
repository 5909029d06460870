"""Parsers that misbehave the way a native parser can, for the parse-worker tests: picklable
(module-level classes holding plain data), so the ingest hands them to worker processes."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from governance.contracts import AccessScope
from ingest.parse.deadline import deadline
from ingest.sources.base import Parsed, SourceItem, TextBlock

SCOPE = AccessScope(key="test:workers", layers=[["user:alice@example.com"]])


@dataclass(frozen=True)
class TextParser:
    """A document that parses to ``text`` (and says which process parsed it, if asked)."""

    text: str
    tell_pid: bool = False
    tell_niceness: bool = False

    def fingerprint(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def parse(self) -> Parsed:
        text = f"{self.text} (parsed by process {os.getpid()})" if self.tell_pid else self.text
        text = f"{text} (at niceness {os.nice(0)})" if self.tell_niceness else text
        return Parsed(elements=[TextBlock(text)], title=self.text[:20])


@dataclass(frozen=True)
class CrashingParser(TextParser):
    """Kills its own process while parsing, as a segfault in native code would."""

    def parse(self) -> Parsed:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class HangingParser(TextParser):
    """Never returns and sets no time limit of its own (a loop stuck in C code)."""

    def parse(self) -> Parsed:
        time.sleep(3600)
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class StuckPastItsDeadlineParser(TextParser):
    """Sets a time limit of ``seconds`` and then blocks in one C call the limit cannot interrupt."""

    seconds: float = 0.5

    def parse(self) -> Parsed:
        with deadline(self.seconds):
            time.sleep(3600)
        raise AssertionError("unreachable")


def item(name: str, parser: TextParser) -> SourceItem:
    """A document named ``name`` read by ``parser``, readable by alice."""
    return SourceItem(
        source="slack",  # a source kind the catalog knows
        path=Path("/workers") / f"{name}.txt",
        rel_path=f"{name}.txt",
        document_id=f"test:workers:{name}",
        fingerprint=parser.fingerprint,
        parse=parser.parse,
        facts={"source": "slack"},
        scope=SCOPE,
        origin="test:workers",
    )


@dataclass(frozen=True)
class SlowParser(TextParser):
    """Takes ``seconds`` to parse, within every limit (a long but genuine document)."""

    seconds: float = 5.0

    def parse(self) -> Parsed:
        time.sleep(self.seconds)
        return super().parse()
