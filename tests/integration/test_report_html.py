"""The HTML report, rendered in headless Chromium: it loads without a console message and every
chart is drawn. Plotly draws a chart as SVG (``class="main-svg"``) inside its div only when its
inline JavaScript ran, so the DOM after scripts is the proof; a page without that JavaScript is
rendered too, and must fail the same check (the check can tell).

The screenshot stays in ``.run/artefacts/report-html.png`` for a human to look at. Chromium is
a test requirement (``make up`` installs it): missing, the test skips on a developer's machine
and fails under CI or ``PROMO_REQUIRE_SERVERS=1``.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from clickhouse_driver import Client

from promo.clickhouse import insert
from promo.report import format_report
from promo.report_figures import read_evaluation
from promo.report_html import write_html
from promo.settings import REPO_ROOT
from schemas.suppressions import Suppression
from streams.sink_rows import SUPPRESSION_COLUMNS, suppression_row
from tests.integration.test_report import (
    MARGIN,
    TS,
    _load,
    _load_predictions,
    _load_simulator_truth,
)

ARTEFACTS = REPO_ROOT / ".run" / "artefacts"
# Headline (2), over time per user and per decision, offer, segment, rule segment, policy
# version, fairness, budget, suppressions, off-policy, model quality.
CHARTS = 13
_CHART_DIV = re.compile(r'<div id="(chart-\d+)"')


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    message = "no chromium on PATH: `make up` installs it (deploy/local/servers.sh)"
    required = ("CI", "PROMO_REQUIRE_SERVERS")
    if any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes"} for v in required):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _render(page: Path, *extra: str) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the console messages Chromium logged."""
    run = subprocess.run(
        [
            _chromium(),
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",  # CI runs as root
            "--hide-scrollbars",
            "--virtual-time-budget=15000",  # let scripts finish before the dump
            "--enable-logging=stderr",
            "--v=0",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return run.stdout, console


def drawn_charts(dom: str) -> dict[str, bool]:
    """Each chart div of the page, and whether Plotly drew its SVG in it."""
    starts = [(m.start(), m.group(1)) for m in _CHART_DIV.finditer(dom)]
    ends = [start for start, _ in starts[1:]] + [len(dom)]
    return {
        name: 'class="main-svg"' in dom[start:end]
        for (start, name), end in zip(starts, ends, strict=True)
    }


def _load_suppressions(client: Client) -> None:
    rows = [
        Suppression(f"su-{n:024x}", f"u{n}", TS, f"s{n}", "view", reason, "v1", expected_cost=cost)
        for n, (reason, cost) in enumerate([("daily_cap", 0.0), ("budget", 4.5), ("budget", 2.0)])
    ]
    insert(client, "suppressions", SUPPRESSION_COLUMNS, [suppression_row(s) for s in rows])


def test_html_report_renders_in_chromium(migrated: Client, tmp_path: Path) -> None:
    _load(migrated)
    _load_simulator_truth(migrated)
    _load_suppressions(migrated)
    _load_predictions(migrated)
    evaluation = read_evaluation(migrated, gross_margin=MARGIN, daily_budget=10.0)
    page = write_html(evaluation, tmp_path / "report.html")
    source = page.read_text()
    assert "<script src=" not in source  # nothing to fetch: it opens offline
    assert html.escape(format_report(evaluation)) in source  # the text report, verbatim

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / "report-html.png"
    dom, console = _render(page, f"--screenshot={screenshot}", "--window-size=1200,5200")
    assert console == [], console
    print(f"screenshot: {screenshot}")
    dom, console = _render(page, "--dump-dom")
    assert console == [], console
    charts = drawn_charts(dom)
    assert len(charts) == CHARTS, charts
    assert all(charts.values()), charts
    assert screenshot.stat().st_size > 10_000

    # The check can fail: without Plotly's inline JavaScript no chart is drawn.
    broken = tmp_path / "no-plotly.html"
    broken.write_text(re.sub(r"/\*\*\n\* plotly\.js.*?</script>", "</script>", source, flags=re.S))
    dom, console = _render(broken, "--dump-dom")
    assert not any(drawn_charts(dom).values())
    assert any("Plotly is not defined" in line for line in console), console
