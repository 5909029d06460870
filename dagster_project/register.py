"""Register the drop folder's exports as `sources` partitions (what the sensor does, once).

    DAGSTER_HOME=... GOVRAG_DROP_DIR=... python -m dagster_project.register [--drop-dir DIR]

Prints one `key<TAB>path` line per export; then
`dagster asset materialize -m dagster_project --select '*' --partition KEY` ingests one.
"""

import argparse
import sys

import dagster as dg

from dagster_project.defs.partitions import SOURCES
from dagster_project.defs.resources import DropFolderResource
from ingest.pipeline.drop_folder import scan_drop_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dagster_project.register", description=__doc__.split("\n")[0])
    parser.add_argument("--drop-dir", help="drop folder (default: GOVRAG_DROP_DIR, else GOVRAG_HOME/drop)")
    args = parser.parse_args(argv)
    root = DropFolderResource(drop_dir=args.drop_dir).root()
    entries = scan_drop_folder(root)
    if not entries:
        print(f"no exports in {root}", file=sys.stderr)
        return 1
    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions(SOURCES))
        new = [e.key for e in entries if e.key not in known]
        if new:
            instance.add_dynamic_partitions(SOURCES, new)
    for e in entries:
        print(f"{e.key}\t{e.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
