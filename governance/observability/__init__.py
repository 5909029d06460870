"""Metrics and structured logs shared by the CLI, the Dagster jobs and the HTTP service."""
