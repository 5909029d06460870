"""The filter builder and the row contract load in a fresh interpreter without pymilvus."""

from __future__ import annotations


def test_filters_and_rows_load_without_pymilvus():
    # The filter builder and the row contract are pure: importing the package (as `govrag
    # --help` and the catalog-only commands do) must not pay for pymilvus.
    import subprocess
    import sys

    code = "import sys, governance.vector_index.filters, governance.vector_index.rows; print('pymilvus' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
