"""Integration tests: the real components in this process: SQLite and PostgreSQL catalogs,
Milvus Lite, the embedding model, the pipeline, search, the HTTP service and Dagster's
in-process runs. Backend-parametrized tests also run on the session's milvus-server (the
``server`` case of the ``backend`` fixture, marked ``milvus_server``)."""
