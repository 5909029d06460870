"""The Milvus processes govrag runs or configures.

- :mod:`governance.milvus_process.local`: the shared ``milvus-lite server`` under
  ``GOVRAG_HOME`` (start, attach, stop);
- :mod:`governance.milvus_process.lite_compaction`: physical deletion on Milvus Lite (the
  module that server is started as);
- :mod:`governance.milvus_process.erasure_config`: the strict-erasure settings of a Milvus
  server (``deploy/milvus/strict-erasure.yaml`` holds the same).
"""
