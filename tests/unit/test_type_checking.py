"""The type checker of ``./run test`` enforces ``LiteralString`` on SQL: a query built from a value fails it.

mypy --strict accepts such queries (it treats ``LiteralString`` as ``str``); basedpyright rejects them. This
keeps the claim true: tests/data/typing/fstring_query.py must produce errors on exactly its lines marked
``rejected``, under the strict rules src/ is checked with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SNIPPETS = Path(__file__).resolve().parents[1] / "data" / "typing"
BASEDPYRIGHT = Path(sys.executable).with_name("basedpyright")
"""Installed with the test extras, next to this interpreter."""


def test_a_query_built_from_a_value_does_not_type_check() -> None:
    snippet = SNIPPETS / "fstring_query.py"
    result = subprocess.run(
        [str(BASEDPYRIGHT), "--pythonpath", sys.executable, "-p", str(SNIPPETS), "--outputjson"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert report["summary"]["filesAnalyzed"] == 1, result.stdout
    flagged = {d["range"]["start"]["line"] + 1 for d in report["generalDiagnostics"] if d["severity"] == "error"}
    marked = {n for n, line in enumerate(snippet.read_text().splitlines(), 1) if line.endswith("rejected")}
    assert len(marked) == 3 and flagged == marked, report["generalDiagnostics"]
    assert result.returncode == 1
