"""Alerts: rules, a cool-down, and three sinks (the log, a table in the store, a webhook).

Rules (settings, `CHURNWATCH_ALERT_*`): a user's churn probability at or above p; the share
of drifted features at or above s; a realised ROC-AUC drop of d or more below the champion's
test ROC-AUC; an ingest quarantine rate at or above q. An alert with the same key (the user,
or the rule for service-wide alerts) is not raised again within the cool-down.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from churnwatch.config import Settings
from churnwatch.ingest.store import EventStore

log = logging.getLogger(__name__)
ALERTS = Path("alerts")
ALERT_KINDS = ("user_risk", "drift", "performance_drop", "quarantine_rate")


@dataclass
class Alert:
    kind: str
    key: str  # user id for user_risk; the rule otherwise (cool-down is per key)
    message: str
    value: float
    threshold: float
    severity: str = "warning"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    context: dict[str, Any] = field(default_factory=dict)


def evaluate_rules(
    settings: Settings,
    *,
    users: pd.DataFrame | None = None,  # user_id, probability
    drift_share: float | None = None,
    realised_roc_auc: float | None = None,
    reference_roc_auc: float | None = None,
    quarantine_rate: float | None = None,
    context: dict[str, Any] | None = None,
) -> list[Alert]:
    """The alerts the current state raises, before any cool-down."""
    ctx = context or {}
    out: list[Alert] = []
    p = settings.alert_probability
    if users is not None and len(users):
        risky = users[users["probability"] >= p].sort_values("probability", ascending=False)
        top = risky.head(settings.alert_max_users)
        for user, prob in zip(top["user_id"], top["probability"].astype(float), strict=True):
            out.append(Alert(
                "user_risk", str(user), f"user {user}: churn probability {prob:.2f} >= {p:.2f}",
                prob, p, "warning", context=ctx,
            ))  # fmt: skip
        if len(risky) > len(top):  # a log whose base rate is above the line: no flood
            more = len(risky) - len(top)
            out.append(Alert(
                "user_risk", "more users", f"{more:,} more users at churn probability >= {p:.2f}",
                float(more), p, "warning", context=ctx,
            ))  # fmt: skip
    s = settings.alert_drift_share
    if drift_share is not None and drift_share >= s:
        out.append(Alert(
            "drift", "drift", f"{drift_share:.0%} of monitored features drifted (>= {s:.0%})",
            drift_share, s, "critical", context=ctx,
        ))  # fmt: skip
    d = settings.alert_auc_drop
    if realised_roc_auc is not None and reference_roc_auc is not None:
        drop = reference_roc_auc - realised_roc_auc
        if drop >= d:
            out.append(Alert(
                "performance_drop", "performance_drop",
                f"realised ROC-AUC {realised_roc_auc:.3f} is {drop:.3f} below the champion's "
                f"test ROC-AUC {reference_roc_auc:.3f} (>= {d:.3f})",
                drop, d, "critical", context=ctx,
            ))  # fmt: skip
    q = settings.alert_quarantine_rate
    if quarantine_rate is not None and quarantine_rate >= q:
        out.append(Alert(
            "quarantine_rate", "quarantine_rate",
            f"{quarantine_rate:.1%} of ingested lines were quarantined (>= {q:.1%})",
            quarantine_rate, q, "warning", context=ctx,
        ))  # fmt: skip
    return out


def read_alerts(store: EventStore, *, limit: int | None = None) -> pd.DataFrame:
    folder = store.root / ALERTS
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return pd.DataFrame(columns=["kind", "key", "message", "value", "threshold",
                                     "severity", "created_at", "context"])  # fmt: skip
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    df = df.sort_values("created_at", ascending=False, kind="stable").reset_index(drop=True)
    return df.head(limit) if limit else df


def _cooled(alerts: list[Alert], recent: pd.DataFrame, cooldown: timedelta) -> list[Alert]:
    if recent.empty:
        return alerts
    last = pd.to_datetime(recent["created_at"], utc=True)
    latest = dict(zip(zip(recent["kind"], recent["key"], strict=True), last, strict=True))
    out = []
    for a in alerts:
        seen = latest.get((a.kind, a.key))
        if seen is not None and pd.Timestamp(a.created_at) - seen < cooldown:
            continue
        out.append(a)
    return out


class Webhook:
    """POST each batch of alerts as JSON; a timeout per attempt, retries with backoff."""

    def __init__(self, url: str, *, timeout: float, retries: int, backoff: float) -> None:
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff

    def send(self, alerts: list[Alert]) -> bool:
        body = {"source": "churnwatch", "alerts": [asdict(a) for a in alerts]}
        for attempt in range(self.retries + 1):
            try:
                r = httpx.post(self.url, json=body, timeout=self.timeout)
                if r.status_code < 300:
                    return True
                problem = f"status {r.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("webhook attempt %d of %d failed: %s", attempt + 1,
                        self.retries + 1, problem)  # fmt: skip
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        return False


def raise_alerts(
    alerts: Iterable[Alert], settings: Settings, store: EventStore, *, now: datetime | None = None
) -> list[Alert]:
    """Apply the cool-down, then send what is left to the log, the store's alerts table and
    the webhook (when configured). Returns the alerts raised."""
    alerts = list(alerts)
    if now is not None:
        for a in alerts:
            a.created_at = now.isoformat(timespec="seconds")
    cooldown = timedelta(hours=settings.alert_cooldown_hours)
    fresh = _cooled(alerts, read_alerts(store), cooldown)
    if not fresh:
        return []
    for a in fresh:  # the CLI prints them; a log line at warning would show each one twice
        log.info("ALERT %s [%s]: %s", a.kind, a.severity, a.message)
    folder = store.root / ALERTS
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{**asdict(a), "context": json.dumps(a.context, default=str)}
                          for a in fresh])  # fmt: skip
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}.parquet"
    tmp = folder / (name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(folder / name)
    if settings.alert_webhook_url:
        hook = Webhook(
            settings.alert_webhook_url,
            timeout=settings.alert_webhook_timeout,
            retries=settings.alert_webhook_retries,
            backoff=settings.alert_webhook_backoff,
        )
        if not hook.send(fresh):
            log.error("webhook %s unreachable after retries: alerts kept in %s",
                      settings.alert_webhook_url, folder)  # fmt: skip
    return fresh
