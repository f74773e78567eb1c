"""The simulator over real HTTP on loopback: signing, downloads, faults, control endpoints, CLI."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ingestor.api.signing import sign_body
from ingestor.simulator import ApiKey
from ingestor.simulator.server import IDLE_TIMEOUT

from fixtures.sim import SIM_ROWS, SIM_TODAY, RunningSimulator

MakeSimulator = Callable[..., RunningSimulator]

VECTOR_KEY = ApiKey(key="123456798", secret="MySecret", subscriptions=("example-org",))
VECTORS = [  # API doc §1.3: body bytes exactly as sent, HMAC2
    (b'{"apikey": "123456798"}', "ddd569fcb5ca011e58a045945d9450700f46797560fa6eb384f485c1cb8124d4"),
    (b'{"apikey":"123456798"}', "997b6d9abc1f85dde3f66d84da9cf2e76c02d7032fe51ce496456a6e921d6761"),
    (
        b'{"date": "2024-01-01:2024-01-07", "reports": ["example-org"], "limit": 3, "apikey": "123456798"}',
        "dbe61f197bfe25a77b7a07430d1feb9220f853c18b73be6f3ac97e0ded84de0b",
    ),
    (
        b'{ "apikey": "123456798" ,"date": "2024-01-05:2024-01-07" }',
        "02ce5de7b3f30b77cb398fd48cce0f396a0cd4cf30e852962aa23c60a2a820b6",
    ),
]


@pytest.mark.parametrize(("body", "signature"), VECTORS)
def test_documented_hmac_vectors_are_accepted_over_the_raw_bytes(
    make_simulator: MakeSimulator, body: bytes, signature: str
) -> None:
    running = make_simulator(keys=(VECTOR_KEY,))
    method = "test/ping" if b"date" not in body else "reports/list"
    response = running.post(method, body, signature)
    assert response.status_code == 200, response.text
    assert sign_body("MySecret", body) == signature


def test_a_signature_of_other_bytes_for_the_same_object_is_rejected(make_simulator: MakeSimulator) -> None:
    running = make_simulator(keys=(VECTOR_KEY,))
    spaced, compact = VECTORS[0], VECTORS[1]
    rejected = running.post("test/ping", compact[0], spaced[1])
    assert rejected.status_code == 401 and rejected.json() == {"error": "Invalid HMAC"}
    assert running.post("test/ping", compact[0], None).json() == {"error": "Invalid API key"}


def test_content_type_is_ignored_and_get_is_405(simulator: RunningSimulator) -> None:
    body = json.dumps({"apikey": simulator.api_key}).encode()
    form = httpx.post(
        simulator.api_url + "test/ping",
        content=body,
        headers={"HMAC2": sign_body(simulator.api_secret, body), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 200 and "pong" in form.json()
    assert httpx.get(simulator.api_url + "test/ping").status_code == 405
    assert simulator.call("reports/download", id="x").status_code == 404
    assert simulator.call("no/such-method").json() == {"error": "Not found"}


def test_listing_and_downloading_over_http(simulator: RunningSimulator) -> None:
    items = simulator.call("reports/list").json()
    assert {i["timestamp"] for i in items} == {"2026-11-19", "2026-11-20"}
    item = next(i for i in items if i["type"] == "scan_ssl")
    response = simulator.download(item["id"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{item["file"]}"'
    assert int(response.headers["content-length"]) == len(response.content)
    report = simulator.sim.report(item["id"])
    assert report is not None and response.content == simulator.sim.content(report)
    assert response.content.count(b"\n") == SIM_ROWS + 1
    assert simulator.download(item["id"]).content == response.content, "same bytes on every download"
    assert simulator.counters.downloads_started(item["id"]) == 2
    assert simulator.counters.downloads_completed() == 2


def test_head_describes_the_file_without_counting(simulator: RunningSimulator) -> None:
    report = simulator.reports(type="device_id")[0]
    head = httpx.head(simulator.download_url + report.id)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(simulator.sim.content(report))
    assert simulator.counters.downloads_started() == 0


def test_unknown_and_expired_ids_are_404(simulator: RunningSimulator) -> None:
    assert simulator.download("A" * 50).status_code == 404
    report = simulator.reports()[0]
    simulator.faults.expire(report.id)
    assert report.id in {i["id"] for i in simulator.call("reports/list", date="-5:now").json()}
    assert simulator.download(report.id).status_code == 404


def test_truncated_download_raises_and_the_retry_succeeds(simulator: RunningSimulator) -> None:
    report = simulator.reports(type="scan_ssl")[0]
    simulator.faults.update(truncate_next=1)
    with pytest.raises(httpx.RemoteProtocolError):
        simulator.download(report.id)
    assert simulator.download(report.id).content == simulator.sim.content(report)
    assert simulator.counters.downloads_started(report.id) == 2
    assert simulator.counters.downloads_completed(report.id) == 1


def test_truncation_by_type_and_by_rate(simulator: RunningSimulator) -> None:
    ssl, device = simulator.reports(type="scan_ssl")[0], simulator.reports(type="device_id")[0]
    simulator.faults.update(truncate_types=["scan_ssl"])
    with pytest.raises(httpx.RemoteProtocolError):
        simulator.download(ssl.id)
    assert simulator.download(device.id).status_code == 200
    simulator.faults.update(truncate_types=[], truncate_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        simulator.download(device.id)


def test_empty_download_is_zero_bytes(simulator: RunningSimulator) -> None:
    report = simulator.reports(type="scan_http")[0]
    simulator.faults.update(empty_next=1)
    empty = simulator.download(report.id)
    assert empty.status_code == 200 and empty.content == b"" and empty.headers["content-length"] == "0"
    assert len(simulator.download(report.id).content) > 0
    simulator.faults.update(empty_types=["scan_http"])
    assert simulator.download(report.id).content == b""
    assert simulator.counters.downloads_completed(report.id) == 1


def test_api_fault_switches(simulator: RunningSimulator) -> None:
    simulator.faults.update(api_errors_next=2)
    assert [simulator.call("test/ping").status_code for _ in range(3)] == [503, 503, 200]
    simulator.faults.update(rate_limit_next=1, retry_after=3)
    limited = simulator.call("reports/list")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    simulator.faults.update(force_status=401)
    assert {simulator.call("reports/list").status_code for _ in range(3)} == {401}
    simulator.faults.clear()
    simulator.faults.update(api_error_rate=1.0)
    assert simulator.call("test/ping").status_code == 503
    simulator.faults.update(api_error_rate=0.0, error_200_next=1)
    answer = simulator.call("reports/list")
    assert answer.status_code == 200 and "error" in answer.json()


def test_latency_and_slow_streaming(simulator: RunningSimulator) -> None:
    simulator.faults.update(api_latency=0.3)
    started = time.monotonic()
    simulator.call("test/ping")
    assert time.monotonic() - started >= 0.3
    report = simulator.reports(type="device_id")[0]
    size = len(simulator.sim.content(report))
    simulator.faults.update(api_latency=0.0, stream_rate=size * 2, download_latency=0.2)
    started = time.monotonic()
    assert len(simulator.download(report.id).content) == size
    assert time.monotonic() - started >= 0.6  # lower bounds: the faults sleep at least this long
    assert simulator.counters.downloads_requested(report.id) == 1


def test_charset_can_be_dropped_from_the_content_type(simulator: RunningSimulator) -> None:
    simulator.faults.update(csv_charset=False)
    response = simulator.download(simulator.reports()[0].id)
    assert response.headers["content-type"] == "text/csv"


def test_control_endpoints(simulator: RunningSimulator) -> None:
    control = simulator.server.control_url
    changed = httpx.post(control + "faults", json={"api_errors_next": 1, "empty_types": ["scan_ssl"]})
    assert changed.status_code == 200 and changed.json()["empty_types"] == ["scan_ssl"]
    assert simulator.call("test/ping").status_code == 503
    assert simulator.call("test/ping").status_code == 200
    stats = httpx.get(control + "stats").json()
    assert stats["api"]["test/ping"] == {"200": 1, "503": 1}
    assert httpx.post(control + "faults", json={"bogus": 1}).status_code == 400
    assert httpx.post(control + "faults", json={"api_error_rate": "often"}).status_code == 400
    assert httpx.post(control + "faults", json={"clear": True}).json()["empty_types"] == []
    assert httpx.post(control + "reset").json() == {"ok": True}
    assert httpx.get(control + "stats").json() == {"api": {}, "downloads": {}}


def test_connections_are_kept_alive(simulator: RunningSimulator) -> None:
    conn = http.client.HTTPConnection(simulator.server.host, simulator.server.port, timeout=10)
    try:
        for report in simulator.reports()[:3]:
            conn.request("GET", f"/dl/{report.id}")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == simulator.sim.content(report)
            assert response.getheader("Connection") != "close"
    finally:
        conn.close()


def test_concurrent_first_downloads_get_the_same_bytes(make_simulator: MakeSimulator) -> None:
    running = make_simulator(rows=3000, types=("scan_ssl",))
    report = running.reports()[0]
    results: list[bytes] = []

    def fetch() -> None:
        results.append(httpx.get(running.download_url + report.id, timeout=30).content)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1 and results[0].count(b"\n") == 3001


def test_reports_dir_files_are_served_byte_for_byte(make_simulator: MakeSimulator, tmp_path: Path) -> None:
    known = b'"timestamp","ip","port"\r\n"2026-11-18 01:02:03","192.0.2.1",443\r\n"x","caf\xff",1\r\n'
    unknown = b'"timestamp","src_ip","weird"\n"2026-11-19 00:00:00Z","192.0.2.9","a"\n'
    (tmp_path / "2026-11-18-scan_ssl-acme-asn.csv").write_bytes(known)
    (tmp_path / "2026-11-19-scan_newthing-acme-geo-delayed.csv").write_bytes(unknown)
    (tmp_path / "notes.csv").write_bytes(b"ignored")
    (tmp_path / "2026-11-30-scan_ssl-acme-asn.csv").write_bytes(known + b'"y","z",2\n')
    running = make_simulator(reports_dir=tmp_path)
    items = running.call("reports/list", date="2026-11-01:now").json()
    assert sorted((i["timestamp"], i["type"], i["file"]) for i in items) == [
        ("2026-11-18", "scan_ssl", "2026-11-18-scan_ssl-acme-asn.csv"),
        ("2026-11-19", "scan_newthing", "2026-11-19-scan_newthing-acme-geo-delayed.csv"),
    ], "the file dated after today is not listed yet"
    by_type = {i["type"]: i for i in items}
    assert running.download(by_type["scan_ssl"]["id"]).content == known
    assert running.download(by_type["scan_newthing"]["id"]).content == unknown
    report = running.sim.report(by_type["scan_ssl"]["id"])
    assert report is not None and report.row_count == 2 and report.injected == {}
    stats = running.call("reports/stats", date="2026-11-18").json()
    assert stats == [["date", "type", "events"], ["2026-11-18", "scan_ssl", 2]]


def test_stop_returns_promptly_with_idle_keep_alive_clients(make_simulator: MakeSimulator) -> None:
    running = make_simulator()
    with httpx.Client() as client:
        assert client.post(running.api_url + "test/ping", content=b"{}").status_code == 401
        stopper = threading.Thread(target=running.server.stop)
        stopper.start()
        stopper.join(IDLE_TIMEOUT / 2)  # what this guards against: waiting out the idle client's timeout
        assert not stopper.is_alive()
        with pytest.raises(httpx.TransportError):  # its connection was dropped, and nothing listens any more
            client.post(running.api_url + "test/ping", content=b"{}")


def test_fixture_defaults(simulator: RunningSimulator) -> None:
    assert simulator.sim.today() == SIM_TODAY
    assert simulator.env["SS_API_URL"] == simulator.api_url.rstrip("/") + "/"
    assert simulator.download_url.endswith("/dl/") and simulator.api_url.endswith("/api2/")
    assert all(r.row_count == SIM_ROWS for r in simulator.reports())


def test_cli_prints_the_settings_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = "from ingestor.cli.simulate import simulate; simulate()"
    args = [
        sys.executable,
        "-c",
        code,
        "--port",
        "0",
        "--today",
        "2026-11-20",
        "--rows",
        "4",
        "--api-key",
        "cli-key",
        "--api-secret",
        "cli-secret",
        "--bom",
        "--error-rate",
        "0",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SS_")}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(4)]
        assert lines[0].startswith("SS_API_URL=http://127.0.0.1:") and lines[0].endswith("/api2/")
        assert lines[1].startswith("SS_DOWNLOAD_URL=http://127.0.0.1:") and lines[1].endswith("/dl/")
        assert lines[2:] == ["SS_API_KEY=cli-key", "SS_API_SECRET=cli-secret"]
        assert proc.stdout.readline().strip().endswith("/simulator/pgdata")  # never the default database
        api_url, download_url = lines[0].split("=", 1)[1], lines[1].split("=", 1)[1]
        body = b'{"apikey": "cli-key", "date": "2026-11-20", "type": "device_id"}'
        [item] = httpx.post(
            api_url + "reports/list", content=body, headers={"HMAC2": sign_body("cli-secret", body)}
        ).json()
        data = httpx.get(download_url + item["id"]).content
        assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\n") == 5
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
