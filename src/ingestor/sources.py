"""What a run loads and what becomes of it: report sources (an API listing or a local file), the outcome
of each file, and the progress interface the CLI shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import IO, Protocol

from ingestor import ledger
from ingestor.api.client import DownloadResult, ReportItem, ShadowserverClient
from ingestor.load import LoadStats


class ReportSource(Protocol):
    """A report file to load: a file listed by the API, or a local file being imported."""

    @property
    def label(self) -> str: ...
    @property
    def report_type(self) -> str: ...
    @property
    def report_date(self) -> date: ...
    @property
    def file_name(self) -> str: ...
    @property
    def subscription(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def source_key(self) -> str: ...

    def fetch(self, spool: IO[bytes]) -> DownloadResult:
        """Write the file's bytes into ``spool``; raise DownloadError or ReportFileError."""
        ...


@dataclass(frozen=True)
class ApiReport:
    """A file listed by ``reports/list``, fetched from the download host."""

    item: ReportItem
    client: ShadowserverClient = field(repr=False)
    source: str = "api"

    @property
    def label(self) -> str:
        return self.item.label

    @property
    def report_type(self) -> str:
        return self.item.type

    @property
    def report_date(self) -> date:
        return self.item.date

    @property
    def file_name(self) -> str:
        return self.item.file

    @property
    def subscription(self) -> str:
        return self.item.subscription

    @property
    def source_key(self) -> str:
        return ledger.api_source_key(self.item.id)

    def fetch(self, spool: IO[bytes]) -> DownloadResult:
        return self.client.download(self.item, spool)


@dataclass
class FileOutcome:
    """What became of one file in a run."""

    label: str
    report_type: str
    report_date: date
    status: str  # loaded | failed | interrupted
    stats: LoadStats | None = None
    size_bytes: int = 0
    error: str | None = None


class Reporter(Protocol):
    """Receives progress; the CLI shows it on a terminal, the service ignores it."""

    def files_planned(self, count: int) -> None: ...
    def file_started(self, item_label: str, size_hint: int | None) -> None: ...
    def rows_loaded(self, rows: int) -> None: ...
    def file_finished(self, outcome: FileOutcome) -> None: ...


class NullReporter:
    def files_planned(self, count: int) -> None:
        pass

    def file_started(self, item_label: str, size_hint: int | None) -> None:
        pass

    def rows_loaded(self, rows: int) -> None:
        pass

    def file_finished(self, outcome: FileOutcome) -> None:
        pass
