"""Alert rules, the cool-down, and webhook delivery to a receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from churnwatch.config import Settings
from churnwatch.ingest.store import EventStore
from churnwatch.monitoring.alerts import evaluate_rules, raise_alerts, read_alerts


@pytest.fixture()
def store(tmp_path: Path) -> EventStore:
    return EventStore(tmp_path / "store")


def test_rules_fire_at_their_thresholds() -> None:
    s = Settings(alert_probability=0.3, alert_drift_share=0.2, alert_auc_drop=0.05,
                 alert_quarantine_rate=0.01)  # fmt: skip
    users = pd.DataFrame({"user_id": ["a", "b", "c"], "probability": [0.31, 0.3, 0.29]})
    got = evaluate_rules(s, users=users, drift_share=0.2, realised_roc_auc=0.70,
                         reference_roc_auc=0.75, quarantine_rate=0.01)  # fmt: skip
    assert sorted((a.kind, a.key) for a in got) == [
        ("drift", "drift"), ("performance_drop", "performance_drop"),
        ("quarantine_rate", "quarantine_rate"), ("user_risk", "a"), ("user_risk", "b"),
    ]  # fmt: skip
    quiet = evaluate_rules(s, users=users.assign(probability=0.1), drift_share=0.19,
                           realised_roc_auc=0.71, reference_roc_auc=0.75,
                           quarantine_rate=0.009)  # fmt: skip
    assert quiet == []


def test_a_log_above_the_line_raises_the_riskiest_users_and_one_count() -> None:
    """A log whose base rate is above the alert line (a retailer's inactivity churn) must not
    flood the channel: the riskiest users, then one alert that counts the rest."""
    s = Settings(alert_probability=0.25, alert_max_users=3)
    users = pd.DataFrame({"user_id": [f"u{i}" for i in range(10)],
                          "probability": [0.5 + i / 100 for i in range(10)]})  # fmt: skip
    got = [a for a in evaluate_rules(s, users=users) if a.kind == "user_risk"]
    assert [a.key for a in got] == ["u9", "u8", "u7", "more users"]
    assert got[-1].message == "7 more users at churn probability >= 0.25" and got[-1].value == 7


def test_a_user_is_not_alerted_again_within_the_cool_down(store: EventStore) -> None:
    s = Settings(alert_probability=0.5, alert_cooldown_hours=72)
    users = pd.DataFrame({"user_id": ["u1"], "probability": [0.9]})
    t0 = datetime(2018, 11, 1, tzinfo=UTC)
    assert len(raise_alerts(evaluate_rules(s, users=users), s, store, now=t0)) == 1
    again = raise_alerts(evaluate_rules(s, users=users), s, store, now=t0 + timedelta(hours=71))
    assert again == []
    other = pd.DataFrame({"user_id": ["u2"], "probability": [0.9]})
    assert len(raise_alerts(evaluate_rules(s, users=other), s, store, now=t0)) == 1
    later = raise_alerts(evaluate_rules(s, users=users), s, store, now=t0 + timedelta(hours=73))
    assert [a.key for a in later] == ["u1"]
    table = read_alerts(store)
    assert sorted(table["key"]) == ["u1", "u1", "u2"]


class _Receiver(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []
    fail_first = 1

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(body)
        status = 500 if len(type(self).calls) <= type(self).fail_first else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhook_retries_after_a_failed_first_attempt(store: EventStore) -> None:
    _Receiver.calls = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        s = Settings(alert_webhook_url=url, alert_webhook_backoff=0.05, alert_drift_share=0.1)
        raised = raise_alerts(evaluate_rules(s, drift_share=0.5), s, store)
        assert [a.kind for a in raised] == ["drift"]
        assert len(_Receiver.calls) == 2  # a 500, then the retry delivered
        assert _Receiver.calls[1]["alerts"][0]["kind"] == "drift"
        assert _Receiver.calls[0] == _Receiver.calls[1]
    finally:
        server.shutdown()


def test_an_unreachable_webhook_loses_no_alert(store: EventStore) -> None:
    s = Settings(alert_webhook_url="http://127.0.0.1:9/none", alert_webhook_retries=1,
                 alert_webhook_backoff=0.01, alert_webhook_timeout=0.5)  # fmt: skip
    raised = raise_alerts(evaluate_rules(s, quarantine_rate=0.5), s, store)
    assert len(raised) == 1 and read_alerts(store)["kind"].tolist() == ["quarantine_rate"]


def test_alerts_list_cli(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from churnwatch.cli import app

    monkeypatch.setenv("CHURNWATCH_STORE_DIR", str(store.root))
    empty = CliRunner().invoke(app, ["alerts", "list"])
    assert empty.exit_code == 0 and "no alerts" in empty.output
    s = Settings(store_dir=store.root)
    raise_alerts(evaluate_rules(s, drift_share=0.5), s, store)
    listed = CliRunner().invoke(app, ["alerts", "list"])
    assert listed.exit_code == 0 and "drift" in listed.output
    bad = CliRunner().invoke(app, ["monitor", "--as-of", "soon"])
    assert bad.exit_code == 1 and "ISO 8601" in bad.output


def test_alerts_list_takes_the_store_as_ingest_does(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alerts of a store made with `ingest --store X` could be listed only through
    CHURNWATCH_STORE_DIR: `--store` was no option (nor of monitor and retrain: test_retrain)."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    monkeypatch.delenv("CHURNWATCH_STORE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data/store to fall back on
    s = Settings(store_dir=store.root)
    raise_alerts(evaluate_rules(s, drift_share=0.5), s, store)
    listed = CliRunner().invoke(app, ["alerts", "list", "--store", str(store.root)])
    assert listed.exit_code == 0 and "drift" in listed.output, listed.output


def test_the_cli_says_each_alert_once_with_its_severity(
    store: EventStore, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor` printed every alert twice: as a warning log line and in its summary. The log
    line is now at info (shown with -v); the summary line carries the severity."""
    import logging

    from churnwatch.cli.operations import _print_monitoring
    from churnwatch.monitoring.monitor import MonitorReport

    s = Settings(store_dir=store.root)
    with caplog.at_level(logging.INFO):
        raised = raise_alerts(evaluate_rules(s, drift_share=0.5), s, store)
    levels = [r.levelno for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert len(raised) == 1 and levels == [logging.INFO]
    a = raised[0]
    report = MonitorReport(
        as_of="2018-11-27T00:00:00+00:00", cutoff="2018-11-26", model_version="1",
        drift={"share_drifted": 0.5, "features_monitored": 148, "prediction_psi": 0.02},
        cohorts=[], quarantine_rate=None, out_dir=".", html="report.html", horizon_days=14,
        alerts=[{"kind": a.kind, "key": a.key, "message": a.message, "severity": a.severity}],
    )  # fmt: skip
    _print_monitoring(report)
    out = capsys.readouterr().out
    assert out.count(a.message) == 1
    assert f"ALERT drift [{a.severity}]: {a.message}" in " ".join(out.split())
