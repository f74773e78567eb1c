"""HTTP client of the Shadowserver Reports API and of the report download host.

One ``httpx.Client`` (connection reuse) serves both hosts. API calls are POSTs of one JSON object signed
with HMAC2 over the exact bytes sent; downloads are plain GETs streamed to a file. Connection errors,
timeouts, 5xx and 429 are retried with exponential backoff and full jitter (honouring ``Retry-After``);
401/403, 404 and error bodies raise at once. No message built here contains a download id or URL.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from email.utils import parsedate_to_datetime
from typing import IO, Any

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
    EmptyDownloadError,
    StopRequested,
    TruncatedDownloadError,
)
from ingestor.redaction import REDACTOR, redact

log = logging.getLogger(__name__)

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


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


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
        REDACTOR.add(report_id)
        items.append(ReportItem(report_id, report_type, day, file_name, str(entry.get("report") or "")))
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.download_url = download_url if download_url.endswith("/") else download_url + "/"
        self._api_key = api_key
        self._auth = Hmac2Auth(api_secret)
        self.retry = retry or RetryPolicy()
        self._api_timeout = httpx.Timeout(api_timeout, connect=min(api_timeout, 15.0))
        self._download_timeout = httpx.Timeout(download_timeout, connect=min(download_timeout, 15.0))
        REDACTOR.add(api_key, api_secret)
        self._http = httpx.Client(
            transport=transport,
            headers={"User-Agent": f"shadowserver-ingestor/{__version__}"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

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
            fields["type"] = list(types)
        if limit:
            fields["limit"] = limit
        return parse_report_items(self.call("reports/list", fields))

    # ---- downloads ------------------------------------------------------------------------------

    def download(self, item: ReportItem, sink: IO[bytes]) -> DownloadResult:
        """Stream a report file into ``sink`` (rewound on each retry); reject empty or short bodies."""
        url = self.download_url + item.id
        started = time.monotonic()

        def attempt() -> tuple[int, str]:
            sink.seek(0)
            sink.truncate()
            return self._download_once(url, item.label, sink)

        size, digest = self._with_retries(f"download of {item.label}", attempt, download=True)
        return DownloadResult(size=size, sha256=digest, seconds=time.monotonic() - started)

    def _download_once(self, url: str, label: str, sink: IO[bytes]) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        try:
            with self._http.stream("GET", url, timeout=self._download_timeout) as response:
                if response.status_code == 404:
                    raise DownloadNotFoundError(f"{label}: the download host does not know this report (404)")
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
                if response.status_code != 200:
                    raise DownloadError(f"{label}: download refused with HTTP {response.status_code}")
                encoded = bool(response.headers.get("Content-Encoding"))
                expected = None if encoded else response.headers.get("Content-Length")
                # As the bytes arrive (no re-chunking): a stop request is seen within one network read.
                for chunk in response.iter_bytes():
                    if self.retry.stop.is_set():
                        raise StopRequested(f"{label}: download abandoned, stop requested")
                    sink.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    metrics.DOWNLOADED_BYTES.inc(len(chunk))
        except httpx.RemoteProtocolError as exc:
            raise _Retryable(f"truncated download ({_short(exc)})") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {_short(exc)}") from None
        if size == 0:
            raise _Retryable("empty download (0 bytes)")
        if expected is not None and expected.isdigit() and int(expected) != size:
            raise _Retryable(f"truncated download ({size} of {expected} bytes)")
        sink.flush()
        return size, digest.hexdigest()

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
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {_short(exc)}") from None
        finally:
            metrics.API_REQUESTS.labels(method, status).inc()
            metrics.API_SECONDS.labels(method).observe(time.monotonic() - started)
        code = response.status_code
        if code == 429 or code >= 500:
            raise _Retryable(f"HTTP {code}: {_error_text(response)}", _retry_after(response))
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

    def _with_retries(self, what: str, action: Callable[[], Any], *, download: bool = False) -> Any:
        attempt = 0
        while True:
            try:
                return action()
            except _Retryable as exc:
                if attempt >= self.retry.retries:
                    message = f"{what}: gave up after {attempt + 1} attempts: {exc.reason}"
                    if download:
                        if "empty" in exc.reason:
                            raise EmptyDownloadError(message) from None
                        if "truncated" in exc.reason:
                            raise TruncatedDownloadError(message) from None
                        raise DownloadError(message) from None
                    raise ApiUnavailableError(message, method=what) from None
                pause = self.retry.delay(attempt, exc.retry_after)
                log.warning("%s: %s; retry %d/%d in %.1f s", what, exc.reason, attempt + 1, self.retry.retries, pause)
                self.retry.wait(pause)
                attempt += 1


def _short(exc: BaseException) -> str:
    return redact(str(exc))[:200] or type(exc).__name__
