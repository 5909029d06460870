"""Metrics read from the catalog at scrape time, for `govrag metrics serve`.

Ingest and purge runs are batch processes that exit before Prometheus scrapes them, so
their in-process counters are lost; what they leave behind is in the catalog (documents by
status, chunks, scopes, quarantine by reason, the last run of each kind). This collector
turns that into gauges on every scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from governance.catalog import Catalog
from governance.catalog.statuses import RunStatus


class CatalogCollector(Collector):
    """Gauges over one catalog; a failed read becomes ``govrag_catalog_up 0``, not a 500."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("govrag_catalog_up", "1 when the catalog answered this scrape.")
        try:
            counts, gauges = self.catalog.runs.status_counts(), self.catalog.runs.gauges()
        except Exception:  # the scrape must still answer: Prometheus alerts on up == 0
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        docs = GaugeMetricFamily("govrag_documents", "Documents in the catalog, by status.", labels=["status"])
        for status, n in sorted(counts["documents"].items()):
            docs.add_metric([str(status)], n)
        yield docs
        yield GaugeMetricFamily("govrag_chunks", "Chunks of current versions.", value=counts["chunks"])
        yield GaugeMetricFamily("govrag_scopes", "Access scopes.", value=counts["scopes"])
        quarantine = GaugeMetricFamily("govrag_quarantine", "Quarantined inputs, by reason.", labels=["reason"])
        for reason, n in sorted(gauges["quarantine_by_reason"].items()):
            quarantine.add_metric([reason], n)
        yield quarantine
        started = GaugeMetricFamily(
            "govrag_last_run_started_seconds", "Start of the last run of each kind (epoch).", labels=["kind"]
        )
        finished = GaugeMetricFamily(
            "govrag_last_run_finished_seconds",
            "End of the last run of each kind (epoch; absent while running).",
            labels=["kind"],
        )
        ok = GaugeMetricFamily(
            "govrag_last_run_succeeded", "1 when the last run of each kind succeeded.", labels=["kind"]
        )
        for kind, run in sorted(gauges["last_runs"].items()):
            started.add_metric([kind], run["started_at"].timestamp())
            if run["finished_at"] is not None:
                finished.add_metric([kind], run["finished_at"].timestamp())
            ok.add_metric([kind], 1.0 if run["status"] == RunStatus.SUCCEEDED else 0.0)
        yield from (started, finished, ok)
