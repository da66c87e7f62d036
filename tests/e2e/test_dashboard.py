"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the real
server with a model trained on a simulated log, after monitoring and a retrain have run.

Every panel must render with data; the table filters; a user opens with the keyboard; no
request leaves 127.0.0.1. On a fresh install (no monitor run yet), the empty charts say what
would fill them. Screenshots go to the test's folder, and to docs/ with
CHURNWATCH_SCREENSHOTS=docs.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from churnwatch.config import Settings
from churnwatch.ingest.store import EventStore
from tests.e2e.server import ROOT, running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser_and_data(trained: Any, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A copy of the trained model's data folder for a browser test (skipped without one)."""
    if CHROMIUM is None:
        pytest.skip("needs Chromium: apt-get install chromium (.ci/run does)")
    pytest.importorskip("playwright", reason="needs playwright (a dev dependency)")
    _, trained_settings = trained
    data = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(trained_settings.data_dir, data)
    return data


@pytest.fixture(scope="module")
def dashboard_server(
    trained: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    from churnwatch.monitoring.monitor import monitor
    from churnwatch.monitoring.retrain import retrain

    data = _browser_and_data(trained, tmp_path_factory, "dash")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(data_dir=data, alert_probability=0.05)
    end = EventStore(settings.store_path).last_event()
    monitor(settings, as_of=end - timedelta(days=21))
    monitor(settings)
    retrain(settings, n_boot=20)  # a decision to show: nothing new to judge a challenger on
    try:
        with running_server(data) as url:
            yield url, data
    finally:
        mp.undo()


def test_dashboard_in_chromium(dashboard_server: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _ = dashboard_server
    shots = [tmp_path]
    if os.environ.get("CHURNWATCH_SCREENSHOTS"):
        shots.append(ROOT / os.environ["CHURNWATCH_SCREENSHOTS"])
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-sync",
                  "--disable-component-update", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/dashboard")
        rows = page.locator("#at-risk-table tbody tr")
        expect(rows.first).to_be_visible(timeout=30_000)
        expect(page.locator("#updated")).to_contain_text("updated", timeout=30_000)

        # every panel with data
        assert int(page.inner_text("#kpi-active").replace(",", "")) > 100
        for chart in ("#risk-hist", "#weekly-chart", "#drift-chart", "#perf-chart"):
            expect(page.locator(f"{chart} .main-svg").first).to_be_attached()
        weeks = page.locator("#weekly-chart .bars .point").count()
        assert weeks >= 2  # two cohorts
        assert page.locator("#drift-chart .bars .point").count() == 20
        # each bar is named (Plotly showed every other feature's name in 230 px)
        assert len(page.locator("#drift-chart .ytick text").all_text_contents()) == 20
        expect(page.locator("#model-body")).to_contain_text("Champion v")
        expect(page.locator("#last-retrain")).to_contain_text("not retrained: champion v")
        expect(page.locator("#mon-summary")).to_contain_text("features drifted")
        assert page.locator("#alerts-list li.alert-warning").count() > 0
        total = rows.count()
        assert total > 100
        at_risk = [float(v) for v in page.locator(
            "#at-risk-table tbody tr td:nth-child(8)").all_inner_texts()]  # fmt: skip
        assert len(at_risk) == total and min(at_risk) >= 0 and max(at_risk) > 0
        assert not _tick_labels_overlapping(page)
        weekly_ticks = "#weekly-chart .xtick text"
        assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{2}", t)
                   for t in page.locator(weekly_ticks).all_text_contents())  # fmt: skip
        for s in shots:
            page.screenshot(path=str(s / "dashboard.png"), full_page=True)

        # a single logged week, or monitored cohort: Plotly's own date range was a millisecond
        # wide around it, and the ticks read "23:59:59.9996"; they name the day
        def only_last(key: str) -> Any:
            def handle(route: Any) -> None:
                response = route.fetch()
                body = response.json()
                body[key] = body[key][-1:]
                route.fulfill(response=response, json=body)

            return handle

        page.route("**/dashboard/api/overview", only_last("weekly"))
        page.route("**/dashboard/api/monitoring", only_last("cohorts"))
        page.click("#refresh")
        expect(page.locator("#weekly-chart .bars .point")).to_have_count(1)
        expect(page.locator("#perf-chart .scatterlayer .point")).not_to_have_count(0)
        for ticks in (weekly_ticks, "#perf-chart .xtick text"):
            texts = page.locator(ticks).all_text_contents()
            assert texts and all(re.fullmatch(r"[A-Z][a-z]{2} \d{2}", t) for t in texts), texts
        page.unroute("**/dashboard/api/overview")
        page.unroute("**/dashboard/api/monitoring")
        page.click("#refresh")
        expect(page.locator("#weekly-chart .bars .point")).to_have_count(weeks, timeout=30_000)

        # filters
        page.select_option("#filter-band", "high")
        bands = page.locator("#at-risk-table tbody tr td:nth-child(3)").all_inner_texts()
        assert bands and set(bands) == {"high"} and len(bands) < total
        page.select_option("#filter-band", "")
        page.fill("#filter-region", "CA")
        regions = page.locator("#at-risk-table tbody tr td:nth-child(6)").all_inner_texts()
        assert regions and all("CA" in r for r in regions)
        page.fill("#filter-region", "")
        active = page.inner_text("#kpi-active")
        expect(page.locator("#row-count")).to_have_text(f"{total:,} of {total:,} users")

        # more active users than the table holds: it says it shows the most at risk of them
        # (a 13M-event log's 6,831 active users read "1000 of 1000 users")
        def first_five(route: Any) -> None:
            response = route.fetch()
            body = response.json()
            body["users"] = body["users"][:5]
            route.fulfill(response=response, json=body)

        page.route("**/users/at-risk?*", first_five)
        page.click("#refresh")
        expect(page.locator("#row-count")).to_have_text(
            f"5 of the 5 most at risk of {active} active users", timeout=30_000
        )
        page.unroute("**/users/at-risk?*")
        page.click("#refresh")
        expect(rows).to_have_count(total, timeout=30_000)
        page.click("th button[data-sort='tenure_days']")
        tenures = [int(t.split()[0]) for t in
                   page.locator("#at-risk-table tbody tr td:nth-child(5)").all_inner_texts()[:20]
                   if t != "–"]  # fmt: skip
        assert tenures == sorted(tenures, reverse=True)

        # open a user with the keyboard
        first = rows.first
        user = first.get_attribute("data-user")
        first.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#user-detail")).to_be_visible()
        expect(page.locator("#user-id")).to_have_text(f"User {user}")
        # in days, as the overview says it ("in the next horizon" told a user nothing)
        expect(page.locator("#user-prob")).to_have_text(
            re.compile(r"churn probability 0\.\d{3} in the next 14 days")
        )
        assert page.locator("#user-reasons li").count() > 0
        assert page.locator("#user-activity li").count() > 0
        expect(page.locator("#user-history .main-svg").first).to_be_attached()
        expect(page.locator("#user-survival .main-svg").first).to_be_attached()
        expect(page.locator("#user-median")).to_contain_text("churn")
        for s in shots:
            page.locator("#user-panel").screenshot(path=str(s / "dashboard_user.png"))

        # the retention plan: terms in, a plan, its profit curve and the users to contact
        page.fill("#plan-budget", "20")
        page.click("#plan-run")
        expect(page.locator("#plan-summary")).to_contain_text(
            re.compile(r"Contact \d+ of \d+ users"), timeout=30_000
        )
        contacts = int(page.inner_text("#plan-summary").split()[1])
        assert 0 < contacts <= 20 and page.locator("#plan-users li").count() == min(contacts, 10)
        expect(page.locator("#profit-chart .main-svg").first).to_be_attached()
        before = page.inner_text("#plan-summary")
        page.fill("#plan-save", "1.5")  # a save rate above 1: the form refuses to send it
        page.click("#plan-run")
        assert page.eval_on_selector("#plan-save", "e => e.validity.valid") is False
        assert page.inner_text("#plan-summary") == before
        page.fill("#plan-save", "0.3")
        page.fill("#plan-budget", "5000")
        page.fill("#plan-cost", "1000")  # dearer than anyone's saving: the page says so
        page.click("#plan-run")
        expect(page.locator("#plan-summary")).to_contain_text("Nobody to contact", timeout=30_000)
        assert "against 1,000.00" in page.inner_text("#plan-summary")
        page.fill("#plan-budget", "20")
        page.fill("#plan-cost", "1")
        page.click("#plan-run")
        expect(page.locator("#plan-summary")).to_contain_text(before.split(":")[0])
        for s in shots:
            page.locator("#plan-panel").screenshot(path=str(s / "dashboard_plan.png"))

        # retention curves by risk band, then by level
        expect(page.locator("#retention-chart .main-svg").first).to_be_attached()
        assert page.locator("#retention-chart .scatterlayer .trace").count() >= 2
        dates = page.locator("#retention-date option")
        assert dates.count() >= 3  # the default and the two logged days
        page.select_option("#retention-date", index=dates.count() - 1)
        expect(page.locator("#retention-chart .legendtext").first).to_contain_text(
            dates.nth(dates.count() - 1).inner_text()
        )
        # the legend of the three bands (two rows) sits below the axis title, not over it
        title = page.locator("#retention-chart .g-xtitle").bounding_box()
        legend = page.locator("#retention-chart .legend").bounding_box()
        assert title and legend and legend["y"] >= title["y"] + title["height"], (title, legend)
        page.select_option("#retention-by", "by_level")
        expect(page.locator("#retention-chart .legendtext").first).to_contain_text("free")
        for s in shots:
            page.locator("#retention-panel").screenshot(path=str(s / "dashboard_retention.png"))
        assert not _tick_labels_overlapping(page)  # the user's, plan's and retention charts too
        browser.close()
    assert not errors, errors
    outside = [u for u in requests if not u.startswith((url, "data:"))]
    assert not outside, outside
    assert any(u.endswith("/dashboard/static/plotly.min.js") for u in requests)


# in every chart on the page, the y axis's tick labels that overlap an x axis's ones
_OVERLAPS = """() => {
    const hit = (a, b) => a.left < b.right && b.left < a.right
                          && a.top < b.bottom && b.top < a.bottom;
    const out = [];
    for (const plot of document.querySelectorAll(".js-plotly-plot")) {
        const boxes = sel => [...plot.querySelectorAll(sel)]
            .filter(t => t.textContent.trim())
            .map(t => [t.textContent, t.getBoundingClientRect()]);
        const xs = boxes(".xtick text"), ys = boxes(".ytick text");
        for (const [yt, yb] of ys) for (const [xt, xb] of xs)
            if (hit(yb, xb)) out.push(`${plot.id}: ${yt} over ${xt}`);
    }
    return out;
}"""


def _tick_labels_overlapping(page: Any) -> list[str]:
    """Tick labels that collide (as the lowest y label did the first date's when both sat at
    the plot's corner), as "chart: y label over x label"."""
    return list(page.evaluate(_OVERLAPS))


def test_a_fresh_install_shows_what_fills_each_empty_chart(
    trained: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Before any monitor run there are no weekly scores, drift, cohorts or risk-band curves:
    each of those charts says so and how to fill it, with no empty axes drawn."""
    data = _browser_and_data(trained, tmp_path_factory, "fresh")
    from playwright.sync_api import expect, sync_playwright

    shutil.rmtree(data / "monitoring", ignore_errors=True)  # as right after `churnwatch train`
    errors: list[str] = []
    with running_server(data) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/dashboard")
        expect(page.locator("#updated")).to_contain_text("updated", timeout=30_000)
        said = {
            "#weekly-chart": "No weekly scores logged yet: run churnwatch monitor each week.",
            "#drift-chart": "No drift measured yet: run churnwatch monitor.",
            "#perf-chart": "No cohort scored yet: run churnwatch monitor.",
            "#retention-chart": "Risk bands come from the scores churnwatch monitor logs",
        }
        for chart, text in said.items():
            expect(page.locator(f"{chart} .annotation-text")).to_contain_text(text)
            assert page.locator(f"{chart} .xtick").count() == 0, chart  # no empty axes
        # the charts with data still draw them
        assert page.locator("#risk-hist .xtick").count() > 0
        page.select_option("#retention-by", "by_level")  # levels need no monitor run
        expect(page.locator("#retention-chart .legendtext").first).to_contain_text("free")
        browser.close()
    assert not errors, errors
