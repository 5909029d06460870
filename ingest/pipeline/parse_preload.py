"""Imported once by the ``forkserver`` that ingest workers are forked from (its preload):
the parsers and the NLP setup load there, so every worker starts with them warm."""

from ingest.pipeline.parse_worker import warm

warm()
