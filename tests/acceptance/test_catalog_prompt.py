"""``catalog refresh`` on a terminal: the diff, then a question; only "y" writes."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "schema" / "reports.json"


def on_a_terminal(args: list[str], answer: str, env: dict[str, str], timeout: float = 60.0) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin and stdout; answer the first question; (exit code, screen)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestor", *args], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    screen, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
            if not answered and b"[y/N]" in screen:
                os.write(leader, answer.encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    return code, screen.decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.parametrize(("answer", "code", "written"), [("y", 0, True), ("n", 1, False)])
def test_the_terminal_user_sees_the_diff_and_is_asked(tmp_path: Path, answer: str, code: int, written: bool) -> None:
    reports = json.loads(SCHEMA.read_text())
    reports["scan_brandnew"] = {"name": "Brand-New", "fields": ["timestamp", "ip", "port"]}
    source = tmp_path / "reports.json"
    source.write_text(json.dumps(reports))
    data_dir = tmp_path / "data"
    env = {**os.environ, "SS_DATA_DIR": str(data_dir), "LOG_FORMAT": "text", "TERM": "dumb"}
    exit_code, screen = on_a_terminal(["catalog", "refresh", "--from", str(source)], answer, env)
    assert exit_code == code, screen
    assert "+ scan_brandnew (3 columns; subject ip, port)" in screen
    assert f"write {data_dir / 'catalog.json'}? [y/N]" in screen
    assert (data_dir / "catalog.json").exists() is written
    assert ("nothing written" in screen) is not written
