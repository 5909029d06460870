"""One `sources` partition per export in the drop folder (a Slack workspace export, a
Confluence space export, a PDF drop folder). Keys come from
`ingest.pipeline.drop_folder.source_key`: safe names that map back to their entry."""

import dagster as dg

SOURCES = "sources"  # the partitions' name, for the instance's partition calls
sources = dg.DynamicPartitionsDefinition(name=SOURCES)
