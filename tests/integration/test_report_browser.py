"""``report --html`` in a real browser: Debian's Chromium, headless, opens the file, draws every chart, and
no request leaves the page.

Chromium comes from Debian's package (``./run test`` installs it when run as root on Debian, as CI is).
Where it cannot be installed (an unprivileged user without it) the browser checks are skipped with that
reason; the checks of the file itself run everywhere.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.ops.imports import plan_import
from ingestor.pipeline import Ingestor
from ingestor.simulator.history import standard_history

from fixtures.browser import find_chromium, render, screenshot
from fixtures.cli import invoke

HISTORY = standard_history(date(2026, 5, 3), days=35)
CHARTS = {"open-findings", "new-and-resolved", "top-types", "top-asns", "time-to-fix", "feed-health"}
ENV = {"SS_DELTA_TYPES": "scan_ssl"}


@pytest.fixture
def report(migrated_db_url: str, tmp_path: Path) -> Path:
    paths = HISTORY.write(tmp_path / "history")
    settings = load_settings({"DATABASE_URL": migrated_db_url, **ENV}, env_file=None)
    with Database(migrated_db_url) as db:
        assert Ingestor(settings, db, None).run_files("import", plan_import(paths).reports).status == "success"
    target = tmp_path / "report.html"
    window = ("--since", HISTORY.start.isoformat(), "--until", HISTORY.end.isoformat())
    result = invoke(migrated_db_url, "report", "--html", str(target), *window, env=ENV)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"written: {target} (")
    return target


def test_the_report_is_one_file_that_loads_nothing(report: Path) -> None:
    document = report.read_text(encoding="utf-8")
    assert "<script" not in document.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", document, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", document, re.IGNORECASE)
    assert "@import" not in document and "<link" not in document.lower()
    assert set(re.findall(r'data-chart="([^"]+)"', document)) == CHARTS
    assert "scan_telnet arrived on" in document, "the feed's alarm is in the report"


def test_chromium_draws_every_chart_and_requests_nothing_but_the_file(report: Path, tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; ./run test does it as root)")
    page = render(chromium, report, tmp_path)
    assert set(re.findall(r'data-chart="([^"]+)"', page.dom)) == CHARTS
    assert page.dom.count("<path") > 100, "the charts' shapes are in the rendered document"
    assert page.page_requests == []
    # The same check sees what a page that does load things asks for (a style sheet, an image):
    control = tmp_path / "control.html"
    control.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="https://fonts.example.invalid/css"></head>'
        '<body><img src="http://127.0.0.1:9/logo.png"></body></html>'
    )
    (tmp_path / "control").mkdir()
    loads = render(chromium, control, tmp_path / "control")
    assert sorted(loads.page_requests) == ["http://127.0.0.1:9/logo.png", "https://fonts.example.invalid/css"]
    png = screenshot(chromium, report, tmp_path / "report.png", height=2400)
    with Image.open(png) as image:
        assert image.size == (1100, 2400)
        colours: list[tuple[int, tuple[int, int, int]]] = image.convert("RGB").getcolors(maxcolors=1 << 16) or []  # pyright: ignore[reportAssignmentType]
    chart_blue = sum(count for count, (r, _g, b) in colours if b > 150 and r < 80)  # the charts' first colour
    assert chart_blue > 2_000, "the screenshot shows the charts, not a blank page"
