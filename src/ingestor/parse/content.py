"""Is this file a Shadowserver report at all? Decided from its header, before a row is loaded.

A download host, a proxy or a captive portal can answer ``200 OK`` with something else: an HTML error
page, a JSON error object, a CSV of unrelated columns. Loaded, such a body would become a few junk rows
and the file would be marked ``loaded``, never downloaded again, its real rows lost. Such a file is
refused (:class:`~ingestor.errors.NotAReportError`): it fails, and is retried on a later cycle.

A report type the catalog does not know has no known columns, so only the shape of its header is
checked: it still loads (new report types appear several times a year).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ingestor.catalog import ReportType
from ingestor.errors import NotAReportError
from ingestor.redaction import redact

_EXCERPT_CHARS = 120
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
"""ASCII control characters (not tab or line breaks, which a quoted name may hold): binary data."""


def check_header(header: Sequence[str], report: ReportType) -> None:
    """Raise :class:`NotAReportError` unless ``header`` can be the header of a ``report`` file."""
    first = header[0].lstrip() if header else ""
    if first.startswith("<"):
        raise NotAReportError(f"the content is an HTML or XML page, not a CSV report ({_excerpt(header)})")
    if first.startswith(("{", "[")):
        raise NotAReportError(f"the content is a JSON document, not a CSV report ({_excerpt(header)})")
    if any(_CONTROL.search(name) for name in header):
        raise NotAReportError("the content is binary data, not a CSV report")
    if report.known and not set(header) & set(report.fields):
        raise NotAReportError(
            f"the content is not a {report.type} report: its header shares no column with the type's "
            f"published columns ({_excerpt(header)})"
        )


def _excerpt(header: Sequence[str]) -> str:
    text = ",".join(header)
    text = text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"
    return "starts " + redact(repr(text))
