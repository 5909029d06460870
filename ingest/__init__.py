"""Ingest layer: sources → parse → clean → chunk → version → embed → index."""
