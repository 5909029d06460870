"""Deleted rows physically gone on Milvus Lite 3.2: a ``compact`` that does something.

Milvus Lite 3.2 stores a collection as Parquet data files plus delete tombstones. A delete
only writes a tombstone: the deleted rows -- text, title, vector -- stay in their data file
until the engine's size-tiered compaction happens to merge that file (four files of one
size class, or more than 32 files), which a small index may never reach; and its
``ManualCompaction`` (pymilvus ``compact``) does nothing and answers job 0. So a purged
document's text would stay readable in ``GOVRAG_HOME/milvus/data`` for good.

:func:`install` gives the Lite servers of this process a ``ManualCompaction`` that makes
deletes physical before it answers: it flushes, then rewrites every data file that still
holds a deleted row without it (the engine's own compaction step, one file at a time, so
memory stays bounded by one file), drops the tombstones and index files nothing needs any
more, rebuilds the indexes of the rewritten files, and answers a nonzero job id (whose
state, like any job's on Lite, is "Completed"). govrag's Lite servers run with it: the one
govrag starts under ``GOVRAG_HOME`` (``python -m governance.milvus_process.lite_compaction
server``, see ``governance.milvus_process.local``) and a ``.db`` file opened in-process. A
Lite server started some other way answers job 0, and ``VectorIndex.compact`` reports that
nothing was compacted.

This reaches into milvus-lite 3.2's engine (``Collection._compaction_mgr`` and friends);
pyproject pins ``milvus-lite<3.3`` and tests/system/test_disk_forgetting.py reads the data files
after a purge, so a change there fails a test rather than a promise.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)

_installed = False
_lock = threading.Lock()
_jobs = [0]


def _dead_row_files(col: Any) -> dict[str, list[str]]:
    """Partition -> data files (manifest names) holding a row a tombstone deletes."""
    delta = col._delta_index
    out: dict[str, list[str]] = {}
    if len(delta) == 0:
        return out
    for (partition, rel), seg in list(col._segment_cache.items()):
        seqs = seg.seqs
        if any(delta.is_deleted(pk, int(seqs[i])) for i, pk in enumerate(seg.pks)):
            out.setdefault(partition, []).append(rel)
    return out


def compact_collection(col: Any) -> int:
    """Rewrite every data file of ``col`` (a milvus-lite ``Collection``) that holds deleted
    rows, without them; returns how many files were rewritten."""
    col.flush()  # tombstones still in the MemTable reach the delta index (and the WAL goes)
    col._wait_for_bg()  # an automatic compaction in flight finishes first
    mgr, lock = col._compaction_mgr, col._maintenance_lock
    with lock:
        dirty = _dead_row_files(col)
    rewritten = 0
    for partition, files in dirty.items():
        partition_dir = os.path.join(col._data_dir, "partitions", partition)
        for rel in files:
            # One file per turn of the lock (searches take it briefly, for their snapshot).
            with lock:
                if rel not in col._manifest.get_data_files(partition):
                    continue  # merged meanwhile by the engine's own compaction
                mgr._compact_files(partition, partition_dir, [rel], col._manifest, col._delta_index)
                col._refresh_segment_cache()
            rewritten += 1
    if rewritten:
        with lock:  # as the engine does after its compaction: tombstones, then stale index files
            mgr._gc_tombstones(col._manifest, col._delta_index)
            col._refresh_segment_cache()
            col._cleanup_orphan_index_files()
        col._ensure_loaded_segments_indexed()
    return rewritten


def _manual_compaction(self: Any, request: Any, context: Any) -> Any:
    """``ManualCompaction`` of govrag's Lite servers: synchronous, physical (module docstring)."""
    from milvus_lite.adapter.grpc.errors import UNEXPECTED_ERROR, success_status_kwargs, to_status_kwargs
    from milvus_lite.exceptions import MilvusLiteError
    from pymilvus.grpc_gen import common_pb2, milvus_pb2

    try:
        col = self._get_collection(request, context)
        files = compact_collection(col)
        with _lock:
            _jobs[0] += 1
            job = _jobs[0]
        log.info(
            "compaction %d of %r: %d data files rewritten without deleted rows", job, request.collection_name, files
        )
        return milvus_pb2.ManualCompactionResponse(
            status=common_pb2.Status(**success_status_kwargs()), compactionID=job, compactionPlanCount=files
        )
    except MilvusLiteError as exc:
        return milvus_pb2.ManualCompactionResponse(status=common_pb2.Status(**to_status_kwargs(exc)))
    except Exception as exc:  # the client gets the error, the server stays up
        log.exception("compaction of %r failed", getattr(request, "collection_name", "?"))
        return milvus_pb2.ManualCompactionResponse(status=common_pb2.Status(code=UNEXPECTED_ERROR, reason=str(exc)))


def install() -> None:
    """Give the Lite servers this process starts from now on the physical ``ManualCompaction``
    (gRPC binds a servicer's methods when the server starts). Idempotent."""
    global _installed
    if _installed:
        return
    from milvus_lite.adapter.grpc.servicer import MilvusServicer

    MilvusServicer.ManualCompaction = _manual_compaction
    _installed = True


def main(argv: list[str] | None = None) -> int:
    """``python -m governance.milvus_process.lite_compaction server --data-dir D --host H
    --port P``: the ``milvus-lite`` command, with :func:`install` done first."""
    install()
    from milvus_lite.cmdline import main as milvus_lite_main

    exit_code: int = milvus_lite_main(argv)  # annotated `-> int`; milvus-lite ships no type information
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
