"""The govrag code location's definitions, one module per concern.

These modules do not use `from __future__ import annotations`: Dagster reads the
annotations of asset, op and resource functions at definition time and needs real types.
"""
