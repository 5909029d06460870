"""Parsing source bytes into text elements with ``unstructured``, offline."""
