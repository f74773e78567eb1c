"""HTTP client of the Shadowserver Reports API and of the report download host.

One ``httpx.Client`` (connection reuse) serves both hosts. API calls are POSTs of one JSON object signed
with HMAC2 over the exact bytes sent; downloads are plain GETs streamed to a file. Connection errors,
timeouts, 5xx and 429 are retried with exponential backoff and full jitter (honouring ``Retry-After``);
401/403, 404 and error bodies raise at once. No message built here contains a download id or URL.

A download is complete only when its raw body has the announced ``Content-Length`` (compared with the
bytes received, before decompression), a gzip body (labelled with ``Content-Encoding`` or not) reached
its end marker, and the file ends with a line break, as every Shadowserver report does; otherwise it is
retried as truncated. Its size, compression ratio, duration and speed are bounded (:class:`DownloadLimits`);
a file over a bound fails at once (it would fail again if retried now) and is tried again next cycle.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import IO, TYPE_CHECKING, Any, TypeVar

import httpx

from ingestor import __version__, metrics
from ingestor.api.signing import encode_body, sign_body
from ingestor.errors import (
    ApiAuthError,
    ApiMethodError,
    ApiResponseError,
    ApiUnavailableError,
    DownloadError,
    DownloadNotFoundError,
    DownloadTooSlowError,
    EmptyDownloadError,
    StopRequested,
    TruncatedDownloadError,
)
from ingestor.limits import GZIP_MAGIC, FileLimits, Inflater, SpoolWriter, format_bytes
from ingestor.redaction import REDACTOR, redact

if TYPE_CHECKING:
    from ingestor.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

FILE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-([^-]+)-(.+)\.csv$")


class Hmac2Auth(httpx.Auth):
    """Adds ``HMAC2: hex(HMAC-SHA256(secret, body))`` computed over the request's final body bytes."""

    requires_request_body = True

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["HMAC2"] = sign_body(self._secret, request.content)
        yield request

    def __repr__(self) -> str:
        return "Hmac2Auth(secret=<redacted>)"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; ``Retry-After`` wins when the server sends one."""

    retries: int = 4
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0
    stop: threading.Event = field(default_factory=threading.Event)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))

    def wait(self, seconds: float) -> None:
        """Sleep, waking early (and raising :class:`StopRequested`) when a stop is requested."""
        if self.stop.wait(seconds):
            raise StopRequested("stop requested while waiting to retry")


@dataclass(frozen=True)
class ReportItem:
    """One downloadable file from ``reports/list``. The id is a capability: kept out of ``repr``."""

    id: str = field(repr=False)
    type: str
    date: date
    file: str
    subscription: str

    @property
    def label(self) -> str:
        """How logs and errors name the file (never by id)."""
        return self.file or f"{self.date}-{self.type}"


@dataclass(frozen=True)
class DownloadResult:
    size: int
    sha256: str
    seconds: float


@dataclass(frozen=True)
class DownloadLimits:
    """Bounds of one file's download besides the per-read timeout (``0`` switches one off)."""

    files: FileLimits = field(default_factory=FileLimits)
    deadline: float = 3600.0
    """Seconds the whole download of a file may take, retries included."""
    min_speed: int = 16 * 1024
    """Bytes per second the body must average over each :attr:`speed_window`."""
    speed_window: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DownloadLimits:
        return cls(FileLimits.from_settings(settings), settings.download_deadline, int(settings.download_min_speed))


class RetryKind(enum.Enum):
    """Why an attempt may be worth repeating; decides the error raised when the retries run out."""

    TRANSPORT = "transport"
    """Connection refused or reset, a timeout."""
    STATUS = "status"
    """HTTP 5xx or 429."""
    EMPTY = "empty"
    """A download with a 0-byte body."""
    TRUNCATED = "truncated"
    """A download that ended early: short of Content-Length, mid-gzip, or without its final newline."""


_DOWNLOAD_ERRORS: dict[RetryKind, type[DownloadError]] = {
    RetryKind.EMPTY: EmptyDownloadError,
    RetryKind.TRUNCATED: TruncatedDownloadError,
}


class _Retryable(Exception):
    def __init__(self, kind: RetryKind, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retry_after = retry_after


def _http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _error_text(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return redact(response.text.strip()[:200]) or response.reason_phrase
    if isinstance(payload, dict) and "error" in payload:
        return redact(str(payload["error"])[:200])
    return redact(str(payload)[:200])


def date_range(start: date, end: date) -> str:
    """The API's date syntax: one day, or an inclusive ``start:end`` range."""
    return start.isoformat() if start == end else f"{start.isoformat()}:{end.isoformat()}"


def parse_report_items(payload: Any) -> tuple[list[ReportItem], int]:
    """Turn a ``reports/list`` answer into items; also return how many entries were unusable."""
    if isinstance(payload, dict) and not payload:
        return [], 0
    if not isinstance(payload, list):
        raise ApiResponseError("reports/list returned something other than a list", method="reports/list")
    items: list[ReportItem] = []
    invalid = 0
    for entry in payload:
        try:
            report_id = str(entry["id"])
            file_name = str(entry.get("file") or "")
            match = FILE_NAME.match(file_name)
            report_type = str(entry.get("type") or (match.group(2) if match else ""))
            day = date.fromisoformat(str(entry.get("timestamp") or (match.group(1) if match else ""))[:10])
        except (KeyError, TypeError, ValueError, AttributeError):
            invalid += 1
            continue
        if not report_id or not report_type:
            invalid += 1
            continue
        items.append(ReportItem(report_id, report_type, day, file_name, str(entry.get("report") or "")))
    REDACTOR.add_ids(item.id for item in items)
    return items, invalid


class ShadowserverClient:
    """The Reports API (``test/ping``, ``key/info``, ``reports/*``) and report downloads."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        api_secret: str,
        download_url: str = "https://dl.shadowserver.org/",
        *,
        api_timeout: float = 120.0,
        download_timeout: float = 300.0,
        retry: RetryPolicy | None = None,
        limits: DownloadLimits | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.download_url = download_url if download_url.endswith("/") else download_url + "/"
        self._api_key = api_key
        self._auth = Hmac2Auth(api_secret)
        self.retry = retry or RetryPolicy()
        self.limits = limits or DownloadLimits()
        self._api_timeout = httpx.Timeout(api_timeout, connect=min(api_timeout, 15.0))
        read_timeout = min(download_timeout, self.limits.deadline or download_timeout)
        self._download_timeout = httpx.Timeout(read_timeout, connect=min(read_timeout, 15.0))
        REDACTOR.add(api_key, api_secret)
        self._http = httpx.Client(
            transport=transport,
            headers={"User-Agent": f"shadowserver-ingestor/{__version__}"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    server_date: datetime | None = None
    """The ``Date`` header of the API's latest answer (``doctor`` compares it with this machine's clock)."""

    def __enter__(self) -> ShadowserverClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- API methods ----------------------------------------------------------------------------

    def call(self, method: str, fields: Mapping[str, Any] | None = None) -> Any:
        """POST one signed API call and return its decoded JSON answer."""
        body = encode_body(fields or {}, self._api_key)
        url = self.api_url + method.strip("/")
        return self._with_retries(method, lambda: self._post_once(method, url, body))

    def ping(self) -> dict[str, Any]:
        answer = self.call("test/ping")
        if not isinstance(answer, dict):
            raise ApiResponseError("test/ping returned something other than an object", method="test/ping")
        return answer

    def key_info(self) -> dict[str, Any]:
        answer = self.call("key/info")
        if isinstance(answer, list) and answer and isinstance(answer[0], dict):
            return answer[0]
        if isinstance(answer, dict):
            return answer
        raise ApiResponseError("key/info returned an unexpected shape", method="key/info")

    def subscribed(self) -> list[str]:
        answer = self.call("reports/subscribed")
        if not isinstance(answer, list):
            raise ApiResponseError("reports/subscribed returned something other than a list")
        return [str(name) for name in answer]

    def report_types(self, date_spec: str | None = None, *, detail: bool = False) -> list[Any]:
        fields: dict[str, Any] = {"detail": detail}
        if date_spec:
            fields["date"] = date_spec
        answer = self.call("reports/types", fields)
        if not isinstance(answer, list):
            raise ApiResponseError("reports/types returned something other than a list")
        return answer

    def list_reports(
        self,
        start: date,
        end: date,
        *,
        subscriptions: Sequence[str] = (),
        types: Sequence[str] = (),
        limit: int | None = None,
    ) -> tuple[list[ReportItem], int]:
        """List the files of a date window; return the items and the count of unusable entries."""
        fields: dict[str, Any] = {"date": date_range(start, end)}
        if subscriptions:
            fields["reports"] = list(subscriptions)
        if types:
            # Shadowserver's own client sends the list as "types" since 2025 (api_utils report-manager.py,
            # "Revised report-manager 'types' filter"); "type" is its deprecated, single-type spelling.
            fields["types"] = list(types)
        if limit:
            fields["limit"] = limit
        return parse_report_items(self.call("reports/list", fields))

    # ---- downloads ------------------------------------------------------------------------------

    def download(self, item: ReportItem, sink: IO[bytes]) -> DownloadResult:
        """Stream a report file into ``sink`` (rewound on each retry); reject empty, short or bounded bodies."""
        url = self.download_url + item.id
        started = time.monotonic()
        deadline = started + self.limits.deadline if self.limits.deadline else None

        def attempt() -> tuple[int, str]:
            sink.seek(0)
            sink.truncate()
            return self._download_once(url, item.label, sink, deadline)

        size, digest = self._with_retries(f"download of {item.label}", attempt, download=True)
        return DownloadResult(size=size, sha256=digest, seconds=time.monotonic() - started)

    def _download_once(self, url: str, label: str, sink: IO[bytes], deadline: float | None) -> tuple[int, str]:
        writer = SpoolWriter(sink, self.limits.files, label)
        writer.reserve(None)  # no request at all when the disk is already too full
        pace = _Pace(self.limits, label, deadline)
        try:
            with self._http.stream(
                "GET", url, timeout=self._download_timeout, headers={"Accept-Encoding": "gzip"}
            ) as response:
                if response.status_code == 404:
                    raise DownloadNotFoundError(f"{label}: the download host does not know this report (404)")
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(RetryKind.STATUS, f"HTTP {response.status_code}", _retry_after(response))
                if response.status_code != 200:
                    raise DownloadError(f"{label}: download refused with HTTP {response.status_code}")
                expected = _content_length(response)
                writer.reserve(expected)
                body = _BodyDecoder(response.headers.get("Content-Encoding", ""), self.limits.files, label)
                # As the bytes arrive (no re-chunking): a stop request is seen within one network read.
                for chunk in response.iter_raw():
                    if self.retry.stop.is_set():
                        raise StopRequested(f"{label}: download abandoned, stop requested")
                    pace.check(response.num_bytes_downloaded)
                    for piece in body.feed(chunk):
                        writer.write(piece)
                    metrics.DOWNLOADED_BYTES.inc(len(chunk))
                received = response.num_bytes_downloaded
                if received == 0:
                    raise _Retryable(RetryKind.EMPTY, "empty download (0 bytes)")
                if expected is not None and received != expected:
                    raise _Retryable(RetryKind.TRUNCATED, f"truncated download ({received} of {expected} bytes)")
                for piece in body.finish():
                    writer.write(piece)
        except httpx.RemoteProtocolError as exc:
            raise _Retryable(RetryKind.TRUNCATED, f"truncated download ({_short(exc)})") from None
        except httpx.TransportError as exc:
            raise _Retryable(RetryKind.TRANSPORT, f"{type(exc).__name__}: {_short(exc)}") from None
        except EOFError:
            raise _Retryable(RetryKind.TRUNCATED, "truncated download (the gzip body stops mid-stream)") from None
        except zlib.error as exc:  # damaged in transit, or cut and resumed: worth another download
            raise _Retryable(RetryKind.TRUNCATED, f"truncated download (corrupt gzip body: {exc})") from None
        if writer.size == 0:
            raise _Retryable(RetryKind.EMPTY, "empty download (0 bytes after decompression)")
        if not writer.ends_with_newline:
            raise _Retryable(RetryKind.TRUNCATED, "truncated download (the last line has no line break)")
        sink.flush()
        return writer.size, writer.hexdigest()

    # ---- plumbing -------------------------------------------------------------------------------

    def _post_once(self, method: str, url: str, body: bytes) -> Any:
        started = time.monotonic()
        status = "error"
        try:
            response = self._http.post(
                url,
                content=body,
                headers={"Content-Type": "application/json"},
                auth=self._auth,
                timeout=self._api_timeout,
            )
            status = str(response.status_code)
            self.server_date = _http_date(response.headers.get("Date"))
        except httpx.TransportError as exc:
            raise _Retryable(RetryKind.TRANSPORT, f"{type(exc).__name__}: {_short(exc)}") from None
        finally:
            metrics.API_REQUESTS.labels(method, status).inc()
            metrics.API_SECONDS.labels(method).observe(time.monotonic() - started)
        code = response.status_code
        if code == 429 or code >= 500:
            raise _Retryable(RetryKind.STATUS, f"HTTP {code}: {_error_text(response)}", _retry_after(response))
        if code in (401, 403):
            raise ApiAuthError(
                f"{method}: the API refused the credentials (HTTP {code}: {_error_text(response)}); "
                "check SS_API_KEY and SS_API_SECRET",
                method=method,
                status=code,
            )
        if code == 404:
            raise ApiMethodError(
                f"{method}: the API does not offer this method (HTTP 404: {_error_text(response)})",
                method=method,
                status=code,
            )
        if code != 200:
            raise ApiResponseError(f"{method}: HTTP {code}: {_error_text(response)}", method=method, status=code)
        try:
            payload = response.json()
        except ValueError:
            raise ApiResponseError(f"{method}: the API answered with invalid JSON", method=method) from None
        if isinstance(payload, dict) and "error" in payload:
            raise ApiResponseError(f"{method}: {redact(str(payload['error'])[:200])}", method=method, status=code)
        return payload

    def _with_retries(self, what: str, action: Callable[[], T], *, download: bool = False) -> T:
        attempt = 0
        while True:
            try:
                return action()
            except _Retryable as exc:
                if attempt >= self.retry.retries:
                    message = f"{what}: gave up after {attempt + 1} attempts: {exc.reason}"
                    if download:
                        raise _DOWNLOAD_ERRORS.get(exc.kind, DownloadError)(message) from None
                    raise ApiUnavailableError(message, method=what) from None
                pause = self.retry.delay(attempt, exc.retry_after)
                log.warning("%s: %s; retry %d/%d in %.1f s", what, exc.reason, attempt + 1, self.retry.retries, pause)
                self.retry.wait(pause)
                attempt += 1


class _Pace:
    """Fails a download that outlives its deadline or averages less than the minimum speed over a window."""

    def __init__(self, limits: DownloadLimits, label: str, deadline: float | None) -> None:
        self._limits = limits
        self._label = label
        self._deadline = deadline
        self._window_start = time.monotonic()
        self._window_bytes = 0

    def check(self, received: int) -> None:
        now = time.monotonic()
        if self._deadline is not None and now > self._deadline:
            raise DownloadTooSlowError(
                f"{self._label}: download still running after SS_DOWNLOAD_DEADLINE ({self._limits.deadline:g} s) "
                f"with {format_bytes(received)} received; abandoned, tried again next cycle"
            )
        elapsed = now - self._window_start
        if self._limits.min_speed and elapsed >= self._limits.speed_window:
            speed = (received - self._window_bytes) / elapsed
            if speed < self._limits.min_speed:
                raise DownloadTooSlowError(
                    f"{self._label}: download at {format_bytes(speed)}/s for {elapsed:.1f} s, under "
                    f"SS_DOWNLOAD_MIN_SPEED ({format_bytes(self._limits.min_speed)}/s); abandoned, "
                    "tried again next cycle"
                )
            self._window_start, self._window_bytes = now, received


class _BodyDecoder:
    """The file's bytes from the raw body: gzip decoded when labelled (``Content-Encoding``) or not."""

    def __init__(self, encoding: str, limits: FileLimits, label: str) -> None:
        encoding = encoding.strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise DownloadError(f"{label}: the download host sent an unsupported Content-Encoding {encoding!r}")
        self._limits = limits
        self._label = label
        self._labelled = Inflater(limits, label, wbits=47) if encoding not in ("", "identity") else None
        self._sniffed: Inflater | None = None
        self._head = b""
        self._decided = False

    def feed(self, raw: bytes) -> Iterator[bytes]:
        for data in self._labelled.feed(raw) if self._labelled else (raw,):
            yield from self._content(data)

    def finish(self) -> Iterator[bytes]:
        if self._labelled is not None:
            for data in self._labelled.finish():
                yield from self._content(data)
        if not self._decided:  # a body shorter than the gzip magic
            self._decided = True
            if self._head:
                yield self._head
        if self._sniffed is not None:
            yield from self._sniffed.finish()

    def _content(self, data: bytes) -> Iterator[bytes]:
        if not self._decided:
            self._head += data
            if len(self._head) < len(GZIP_MAGIC):
                return
            self._decided = True
            data, self._head = self._head, b""
            if data.startswith(GZIP_MAGIC):  # gzip bytes the server did not label
                self._sniffed = Inflater(self._limits, self._label)
        if self._sniffed is not None:
            yield from self._sniffed.feed(data)
        elif data:
            yield data


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isdigit() else None


def _short(exc: BaseException) -> str:
    return redact(str(exc))[:200] or type(exc).__name__
