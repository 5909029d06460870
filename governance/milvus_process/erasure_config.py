"""Strict erasure on a Milvus server: settings that bound how long purged rows stay in its files.

docs/governance.md ("What is kept on disk, and for how long — Milvus server") explains them;
they were measured on milvus-server 2.3.5 by tests/system/test_server_erasure_disk.py.
deploy/milvus/strict-erasure.yaml holds the same for the compose stack
(tests/system/test_deploy_compose.py compares the two).
"""

from __future__ import annotations

from typing import Any

# Dotted milvus.yaml keys; Milvus's default in [].
STRICT_ERASURE_CONFIG: dict[str, Any] = {
    # Any deleted row makes its segment due for a rewrite [0.2: a fifth of its rows]; also
    # when a manual compaction found the segment busy or not yet indexed.
    "dataCoord.compaction.single.ratio.threshold": 1.0e-9,
    "dataCoord.compaction.global.interval": 10,  # s between automatic compaction checks [60]
    "dataCoord.gc.interval": 10,  # s between garbage collections [3600]
    "dataCoord.gc.dropTolerance": 60,  # s a dropped collection's segment files stay [10800]
    "dataCoord.gc.missingTolerance": 3600,  # s a file no segment lists stays (a failed flush/compaction) [3600]
    "dataNode.segment.syncPeriod": 10,  # s buffered writes wait for binlogs; well below the WAL retention [600]
    "rocksmq.rocksmqPageSize": 4096,  # bytes per WAL page: only whole pages expire [64 MB]
    "rocksmq.retentionTimeInMinutes": 1,  # a consumed WAL page's life [4320: 3 days]
    "rocksmq.timtickerInterval": 5,  # s between WAL retention checks [600]
    "rocksmq.compactionInterval": 10,  # s between RocksDB compactions that drop expired pages [86400]
}

__all__ = ["STRICT_ERASURE_CONFIG"]
