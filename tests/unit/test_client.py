"""The API client against an in-process fake server (httpx.MockTransport): signing, errors, retries."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import threading
from collections.abc import Callable, Iterator
from datetime import date

import httpx
import pytest

from ingestor.api.client import DownloadLimits, ReportItem, RetryPolicy, ShadowserverClient, parse_report_items
from ingestor.api.signing import verify_signature
from ingestor.errors import (
    ApiAuthError,
    ApiMethodError,
    ApiResponseError,
    ApiUnavailableError,
    DownloadError,
    DownloadNotFoundError,
    EmptyDownloadError,
    FileTooLargeError,
    StopRequested,
    TruncatedDownloadError,
)
from ingestor.limits import FileLimits

REPORT_ID = "xNDSuwXrKnrLrDopU926rR75CAESMWesVCKsuyI8b8ncTv7GCX"


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    retries: int = 3,
    stop: threading.Event | None = None,
    limits: DownloadLimits | None = None,
) -> ShadowserverClient:
    policy = RetryPolicy(retries=retries, base_delay=0.0, stop=stop or threading.Event())
    return ShadowserverClient(
        "http://api.test/api2",
        "the-key",
        "the-secret",
        "http://dl.test/",
        retry=policy,
        limits=limits,
        transport=httpx.MockTransport(handler),
    )


def item() -> ReportItem:
    return ReportItem(REPORT_ID, "scan_ssl", date(2026, 11, 20), "2026-11-20-scan_ssl-org-geo.csv", "org")


class _Body(httpx.SyncByteStream):
    """A response body that arrives as a stream (in pieces), as from a real server."""

    def __init__(self, *pieces: bytes) -> None:
        self._pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self._pieces


def body_response(body: bytes, headers: dict[str, str] | None = None, *, pieces: int = 1) -> httpx.Response:
    """200 with ``body`` streamed in ``pieces`` parts; Content-Length is the body's unless given."""
    size = -(-len(body) // pieces) if body else 1
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return httpx.Response(200, stream=_Body(*parts), headers={"Content-Length": str(len(body)), **(headers or {})})


def test_calls_are_signed_over_the_bytes_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"pong": "2026-11-26 10:00:00Z"})

    assert make_client(handler).ping() == {"pong": "2026-11-26 10:00:00Z"}
    request = seen[0]
    assert request.url == "http://api.test/api2/test/ping"
    assert request.method == "POST"
    assert json.loads(request.content) == {"apikey": "the-key"}
    assert verify_signature("the-secret", request.content, request.headers["HMAC2"])


def test_list_reports_sends_the_window_and_filters() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(
            200,
            json=[
                {
                    "id": REPORT_ID,
                    "type": "scan_ssl",
                    "file": "f.csv",
                    "report": "org",
                    "timestamp": "2026-11-20",
                }
            ],
        )

    items, invalid = make_client(handler).list_reports(
        date(2026, 11, 18), date(2026, 11, 20), subscriptions=["org"], types=["scan_ssl"], limit=10
    )
    assert bodies == [
        {
            "apikey": "the-key",
            "date": "2026-11-18:2026-11-20",
            "reports": ["org"],
            "types": ["scan_ssl"],
            "limit": 10,
        }
    ]
    assert invalid == 0 and items[0].date == date(2026, 11, 20) and items[0].type == "scan_ssl"
    assert REPORT_ID not in repr(items[0])


def test_parse_report_items_tolerates_odd_entries() -> None:
    items, invalid = parse_report_items(
        [
            {"id": "a" * 50, "file": "2024-01-04-blocklist-company-ip.csv", "timestamp": "2024-01-04"},
            {"id": "b" * 50, "type": "scan_ssl", "timestamp": "not-a-date"},
            {"type": "scan_ssl", "timestamp": "2024-01-04"},
            "garbage",
        ]
    )
    assert [(i.type, i.date) for i in items] == [("blocklist", date(2024, 1, 4))]
    assert invalid == 3
    assert parse_report_items({}) == ([], 0)
    with pytest.raises(ApiResponseError):
        parse_report_items({"unexpected": True})


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": "Invalid API key"}, ApiAuthError),
        (403, {"error": "Forbidden"}, ApiAuthError),
        (404, {"error": "Not found"}, ApiMethodError),
        (400, {"error": "Invalid JSON"}, ApiResponseError),
        (200, {"error": "No supported report filters found"}, ApiResponseError),
    ],
)
def test_errors_are_typed_and_not_retried(status: int, body: dict[str, str], error: type[Exception]) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, json=body)

    with pytest.raises(error) as info:
        make_client(handler).call("reports/list")
    assert len(calls) == 1
    assert body["error"] in str(info.value)


def test_5xx_and_connection_errors_are_retried_then_succeed() -> None:
    answers = iter(
        [
            httpx.ConnectError("refused"),
            httpx.Response(503),
            httpx.Response(502),
            httpx.Response(200, json=["united-states"]),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert make_client(handler).subscribed() == ["united-states"]


def test_retries_give_up_with_api_unavailable() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"error": "busy"})

    with pytest.raises(ApiUnavailableError, match="gave up after 3 attempts"):
        make_client(handler, retries=2).call("reports/list")
    assert len(calls) == 3


def test_retry_after_is_honoured() -> None:
    waits: list[float] = []

    class Recording(RetryPolicy):
        def wait(self, seconds: float) -> None:
            waits.append(seconds)

    answers = iter([httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json={"pong": "x"})])
    client = ShadowserverClient(
        "http://api.test/api2/",
        "k",
        "s",
        retry=Recording(retries=2),
        transport=httpx.MockTransport(lambda request: next(answers)),
    )
    client.ping()
    assert waits == [7.0]


def test_stop_interrupts_a_retry_wait() -> None:
    stop = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        stop.set()
        return httpx.Response(503)

    client = make_client(handler, stop=stop)
    client.retry = RetryPolicy(retries=3, base_delay=30.0, stop=stop)
    with pytest.raises(StopRequested):
        client.call("reports/list")


def test_download_streams_to_the_sink_with_digest() -> None:
    body = b'"ip"\n"192.0.2.1"\n'

    def handler(request: httpx.Request) -> httpx.Response:
        assert "HMAC2" not in request.headers
        assert str(request.url) == f"http://dl.test/{REPORT_ID}"
        return body_response(body)

    sink = io.BytesIO()
    result = make_client(handler).download(item(), sink)
    assert sink.getvalue() == body and result.size == len(body)
    assert result.sha256 == hashlib.sha256(body).hexdigest()


def test_download_retries_empty_and_short_bodies_then_reports_them() -> None:
    answers = iter(
        [
            body_response(b""),
            body_response(b"abc\n", {"Content-Length": "10"}),
            body_response(b"complete\n"),
        ]
    )
    sink = io.BytesIO(b"stale bytes from an earlier attempt")
    make_client(lambda request: next(answers)).download(item(), sink)
    assert sink.getvalue() == b"complete\n"

    with pytest.raises(EmptyDownloadError):
        make_client(lambda request: body_response(b""), retries=1).download(item(), io.BytesIO())
    with pytest.raises(TruncatedDownloadError) as info:
        make_client(lambda request: body_response(b"abc\n", {"Content-Length": "10"}), retries=0).download(
            item(), io.BytesIO()
        )
    assert REPORT_ID not in str(info.value)
    assert "2026-11-20-scan_ssl-org-geo.csv" in str(info.value)


def test_download_404_is_not_retried_and_names_no_id() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404)

    with pytest.raises(DownloadNotFoundError) as info:
        make_client(handler).download(item(), io.BytesIO())
    assert len(calls) == 1 and REPORT_ID not in str(info.value)


def test_key_info_subscribed_and_report_types_unwrap_their_answers() -> None:
    answers = {
        "key/info": [{"query_limit": "0", "status": "active", "access": ["reports"]}],
        "reports/subscribed": ["united-states", "california"],
        "reports/types": ["scan_ssl", "device_id"],
    }
    bodies: dict[str, dict[str, object]] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        method = request.url.path.removeprefix("/api2/")
        bodies[method] = json.loads(request.content)
        return httpx.Response(200, json=answers[method])

    client = make_client(handler)
    assert client.key_info()["status"] == "active"
    assert client.subscribed() == ["united-states", "california"]
    assert client.report_types("-30:now") == ["scan_ssl", "device_id"]
    assert bodies["reports/types"] == {"apikey": "the-key", "date": "-30:now", "detail": False}


# ---- what a complete download is, and its bounds ------------------------------------------------


def test_retries_are_classified_by_kind_not_by_words_in_the_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection reset: empty reply from server, reply truncated")

    with pytest.raises(DownloadError) as info:
        make_client(handler, retries=0).download(item(), io.BytesIO())
    assert type(info.value) is DownloadError  # a connection error, neither "empty" nor "truncated"

    with pytest.raises(TruncatedDownloadError):  # the kind decides, whatever the words
        make_client(lambda request: body_response(b"no line break at the end"), retries=0).download(
            item(), io.BytesIO()
        )


def test_a_file_without_its_final_line_break_is_truncated_and_retried() -> None:
    answers = iter([body_response(b'"ip"\n"192.0.2.1"\n"192.0'), body_response(b'"ip"\n"192.0.2.1"\n"192.0.2.2"\n')])
    sink = io.BytesIO()
    result = make_client(lambda request: next(answers)).download(item(), sink)
    assert sink.getvalue().endswith(b'"192.0.2.2"\n') and result.size == len(sink.getvalue())


def test_gzip_bodies_are_decompressed_labelled_or_not_and_sized_by_what_was_received() -> None:
    body = b'"ip"\n' + b'"192.0.2.1"\n' * 500
    packed = gzip.compress(body)
    seen: list[httpx.Request] = []
    for headers in ({"Content-Encoding": "gzip"}, {}):

        def handler(request: httpx.Request, headers: dict[str, str] = headers) -> httpx.Response:
            seen.append(request)
            return body_response(packed, headers, pieces=7)

        sink = io.BytesIO()
        result = make_client(handler).download(item(), sink)
        assert sink.getvalue() == body and result.size == len(body)
        assert result.sha256 == hashlib.sha256(body).hexdigest()
        assert seen[-1].headers["Accept-Encoding"] == "gzip"

    cut = body_response(packed[: len(packed) // 2], {"Content-Encoding": "gzip", "Content-Length": str(len(packed))})
    with pytest.raises(TruncatedDownloadError, match=rf"\({len(packed) // 2} of {len(packed)} bytes\)"):
        make_client(lambda request: cut, retries=0).download(item(), io.BytesIO())
    ended = body_response(packed[:-8])  # Content-Length matches, but the gzip stream stops early
    with pytest.raises(TruncatedDownloadError, match="gzip"):
        make_client(lambda request: ended, retries=0).download(item(), io.BytesIO())


def test_bounded_downloads_fail_at_once_without_retrying() -> None:
    calls: list[int] = []

    def big(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, stream=_Body(*([b"x" * 65536] * 1000)))  # 64 MiB, no Content-Length

    sink = io.BytesIO()
    limited = make_client(big, limits=DownloadLimits(FileLimits(max_bytes=1 << 20)))
    with pytest.raises(FileTooLargeError, match="SS_MAX_FILE_SIZE"):
        limited.download(item(), sink)
    assert len(sink.getvalue()) <= 1 << 20 and calls == [1]

    bomb = gzip.compress(b"\0" * (64 << 20))
    with pytest.raises(FileTooLargeError, match="SS_MAX_COMPRESSION_RATIO"):
        make_client(lambda request: body_response(bomb, {"Content-Encoding": "gzip"}, pieces=64)).download(
            item(), io.BytesIO()
        )
    with pytest.raises(DownloadError, match="unsupported Content-Encoding 'br'"):
        make_client(lambda request: body_response(b"x\n", {"Content-Encoding": "br"})).download(item(), io.BytesIO())
