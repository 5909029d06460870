"""The contract every source keeps, and what it is given to open an input.

A source is an object with a ``kind`` (``slack``, ``confluence``, ``pdf``: the
``SourceItem.source`` of its documents) and three methods::

    detect(path) -> bool                        # is this input mine?
    open(path, ctx) -> SourceExport             # its documents and the permission state it states
    discover(path, ctx) -> Iterator[SourceItem] # its documents alone

``ctx`` is a :class:`SourceContext`: the run's policy, the folder archives are unpacked
into, and the site / team named by ``--site`` or a policy ``sources`` rule. The registry of
sources, in the order they are tried, is ``ingest/sources/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from governance.policy import Policy
from ingest.sources.base import SourceExport, SourceItem


def process_policy() -> Policy:
    """The policy of the process (``GOVRAG_POLICY``; with multi-tenancy, GOVRAG_TENANT's),
    for callers that pass none."""
    from governance.policy import load_policy
    from governance.settings import get_settings

    settings = get_settings()
    return load_policy(settings.policy_for((settings.tenant or None) if settings.multi_tenant else None))


@dataclass(frozen=True)
class SourceContext:
    """What a source is given to open an input.

    ``policy`` maps workspace-wide scopes (key ``workspaces``); ``work_dir`` is where zips are
    unpacked (``<GOVRAG_HOME>/work``); ``site`` names the Confluence site / Slack team of an
    export that does not state one (what an export states always wins)."""

    policy: Policy
    work_dir: Path
    site: str | None = None

    @classmethod
    def create(
        cls, policy: Policy | None = None, *, site: str | None = None, work_dir: Path | None = None
    ) -> SourceContext:
        """A context with defaults: the process policy, the settings' work folder."""
        from ingest.sources.archive import work_root

        return cls(
            policy=policy if policy is not None else process_policy(),
            work_dir=work_dir if work_dir is not None else work_root(),
            site=site,
        )


class Source(Protocol):
    """One kind of input (see the module docstring)."""

    kind: str

    def detect(self, path: Path) -> bool:
        """Whether ``path`` is an input of this kind (cheap: names and headers only)."""

    def open(self, path: Path, ctx: SourceContext) -> SourceExport:
        """The input's documents and the permission state it states. Close the result once
        its items are ingested: it may hold an unpacked copy of the input."""

    def discover(self, path: Path, ctx: SourceContext) -> Iterator[SourceItem]:
        """The input's documents, without the permission state."""


class ExportSource:
    """What sources share: ``discover`` as the items of ``open``, and the per-source entry
    points tests and benchmarks call with a policy instead of a context."""

    kind: str = ""

    def detect(self, path: Path) -> bool:
        raise NotImplementedError

    def open(self, path: Path, ctx: SourceContext) -> SourceExport:
        raise NotImplementedError

    def discover(self, path: Path, ctx: SourceContext) -> Iterator[SourceItem]:
        """The items of :meth:`open` (documents only, no permission state)."""
        yield from self.open(Path(path), ctx).items

    def open_source(self, path: Path, policy: Policy | None = None, *, site: str | None = None) -> SourceExport:
        """:meth:`open` with ``policy`` (default: the process policy) and ``site``."""
        return self.open(Path(path), SourceContext.create(policy, site=site))

    def discover_items(
        self, path: Path, policy: Policy | None = None, *, site: str | None = None
    ) -> Iterator[SourceItem]:
        """:meth:`discover` with ``policy`` (default: the process policy) and ``site``."""
        yield from self.discover(Path(path), SourceContext.create(policy, site=site))
