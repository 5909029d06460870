"""Shared CLI output: JSON to stdout for scripts, rich text for people, progress on stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

stdout = Console()
stderr = Console(stderr=True)


def print_json(data: Any) -> None:
    # Plain print: rich would wrap long lines and break the JSON.
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))
