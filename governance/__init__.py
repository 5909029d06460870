"""Bottom layer of govrag: identity, access scopes, policy, catalog, audit, vector index.

Nothing in this package imports from ``ingest``, ``retrieval``, ``dagster_project`` or
``govrag`` (the CLI).
"""
