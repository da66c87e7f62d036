"""The dashboard: one page at /dashboard and the JSON it reads, served by the API itself.

Plotly's JavaScript comes from the installed plotly package, so the page needs no CDN and no
second server. Every number comes from the live service (scores, reasons), the event store
(activity, logged scores, alerts), the latest `monitor` run and the MLflow registry.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import plotly
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse, Response

from churnwatch import tracking
from churnwatch.config import Settings
from churnwatch.db import connect
from churnwatch.ingest.store import EventStore
from churnwatch.labels import US_PER_DAY, ChurnDefinition
from churnwatch.models.survival import kaplan_meier, risk_set
from churnwatch.monitoring.monitor import results as monitoring_results
from churnwatch.schema import CHURN_PAGE
from churnwatch.serving.batch import band
from churnwatch.serving.deps import Key, Service
from churnwatch.serving.http_errors import errors
from churnwatch.serving.service import ChurnService, UnknownDayError

log = logging.getLogger(__name__)


def _plotly_js() -> Path:
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():  # pragma: no cover - depends on the plotly build
        raise FileNotFoundError(f"plotly.min.js not found in {path.parent}")
    return path


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(df.to_json(orient="records", date_format="iso"))
    return out


# The page and its data API. The key check protects all of it: it shows every user's risk,
# reasons and activity. Handlers are sync: FastAPI runs them in its threadpool, so their
# DuckDB and registry reads never block the event loop.
router = APIRouter(tags=["dashboard"], dependencies=[Key], responses=errors(401, 503))
PAGE = resources.files("churnwatch.serving").joinpath("static/dashboard.html")


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


@router.get("/dashboard/static/plotly.min.js", include_in_schema=False)
async def plotly_js() -> Response:
    return FileResponse(_plotly_js(), media_type="application/javascript",
                        headers={"Cache-Control": "max-age=86400"})  # fmt: skip


@router.get("/dashboard/api/overview")
def overview(service: Service) -> dict[str, Any]:
    """Active users, expected churners in the horizon, risk distribution, and per week
    the churners predicted (sum of probabilities) against those realised."""
    live, pop = service.population()
    p = pop.probability
    counts, edges = np.histogram(p, bins=20, range=(0.0, max(float(p.max()), 1e-6)))
    weekly: list[dict[str, Any]] = []
    c = monitoring_results(service.settings, service.store).cohorts
    if not c.empty:
        c["predicted"] = c["mean_probability"] * c["users"]
        keep = [k for k in ("cutoff", "model_version", "users", "predicted", "churners")
                if k in c.columns]  # fmt: skip
        weekly = _records(c[keep])
    return {
        "as_of": pop.cutoff.isoformat(),
        "active_users": len(p),
        "expected_churners": float(p.sum()),
        "high_band": int((p >= live.info.threshold).sum()),
        "threshold": live.info.threshold,
        "horizon_days": live.info.recipe.definition.horizon_days,
        "churn": churn_words(live.info.recipe.definition),
        "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
        "weekly": weekly,
    }


@router.get("/dashboard/api/model")
def model(service: Service) -> dict[str, Any]:
    """The champion, its test metrics, and the last retrain decision with its reason."""
    live = service.current()
    info = live.info
    metrics = {k: v for k, v in info.metrics.items()
               if k.startswith("test_") and not k.endswith(("_low", "_high"))}  # fmt: skip
    return {
        "version": info.version,
        "aliases": list(info.aliases),
        "kind": info.params.get("model", info.kind),
        "trained_at": info.trained_at,
        "loaded_at": info.loaded_at,
        "threshold": info.threshold,
        "metrics": metrics,
        "last_retrain": _last_retrain(service),
    }


@router.get("/dashboard/api/monitoring")
def monitoring(service: Service) -> dict[str, Any]:
    """Drift per feature and realised performance from the latest monitor run; alerts."""
    found = monitoring_results(service.settings, service.store, alerts=20)
    drift = found.drift
    alerts = found.alerts[["created_at", "kind", "severity", "key", "message"]]
    return {
        "summary": found.summary,
        "drift": []
        if drift.empty
        else _records(drift.nlargest(20, "psi")[["column", "psi", "drifted"]]),
        "cohorts": _records(found.cohorts),
        "alerts": _records(alerts),
    }


@router.get(
    "/dashboard/api/users/{user_id}",
    responses=errors(404, 409),
)
def user(
    user_id: str, service: Service, events: Annotated[int, Query(ge=1, le=500)] = 40
) -> dict[str, Any]:
    """A user's current score and reasons, their scores over time and recent activity."""
    now = service.predict_user(user_id)  # unknown: 404, churned: 409 (the app's handler)

    history = monitoring_results(service.settings, service.store, user_id=user_id).scores
    return {
        "user_id": user_id,
        "now": now,
        "history": _records(history[["cutoff", "probability", "model_version"]]),
        "activity": _activity(service, user_id, events),
    }


def _activity(service: ChurnService, user_id: str, n: int) -> list[dict[str, Any]]:
    con = connect(service.settings)
    try:
        service.store.register(con)
        df = con.execute(
            "SELECT ts, page, level, session_id, song, artist FROM events WHERE user_id = ? "
            "ORDER BY ts DESC LIMIT ?",
            [user_id, n],
        ).df()
    finally:
        con.close()
    return _records(df)


def _last_retrain(service: ChurnService) -> dict[str, Any] | None:
    try:
        return tracking.last_run_of_kind("retrain")
    except Exception as exc:  # the registry may be unreachable; the page still renders
        log.warning("no retrain decision: %s", exc)
        return None


@router.get("/dashboard/api/retention", responses=errors(404, 422))
def retention(
    service: Service,
    date: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
) -> dict[str, Any]:
    """Kaplan-Meier retention (share not yet churned by the served model's definition, by
    days) by signup month, by level at signup, and by the risk band users had on a scored day
    (`date`, one of `dates`; default the earliest): does the high band leave sooner?"""
    live = service.current()
    definition = live.info.recipe.definition
    users = lifetimes(service.settings, service.store, definition)
    # a downgrade counted as churn by the label leaves the user in: only a cancellation ends
    title = "Share not yet " + (
        f"gone quiet for {definition.inactivity_days} days" if definition.kind == "inactivity"
        else "cancelled")  # fmt: skip
    out: dict[str, Any] = {"by_cohort": [], "by_level": [], "by_band": [], "dates": [],
                           "title": title}  # fmt: skip
    if users.empty:
        return out
    # a user who has not churned is known not to have up to `seen_until`: the store's last
    # event for a cancellation, the user's own last event for inactivity (a longer quiet
    # spell from there on would only show in data to come)
    end = users["seen_until"]
    since_signup = (users["churn_ts"].fillna(end) - users["signup_ts"]).dt.days + 1
    cancelled = users["churn_ts"].notna().to_numpy()
    # at risk from the day the log starts: signups from before it who churned earlier are not
    # in it, and counting the rest from their signup would overstate retention
    entry = (users["log_start"] - users["signup_ts"]).dt.days.clip(lower=0).to_numpy()
    cohort = users["signup_ts"].dt.strftime("%Y-%m")
    for key, groups in (("by_cohort", cohort), ("by_level", users["first_level"])):
        for name, idx in users.groupby(groups.to_numpy()).indices.items():
            if len(idx) >= 10:
                out[key].append(_curve(str(name), since_signup.to_numpy()[idx], cancelled[idx],
                                       entry[idx]))  # fmt: skip
    scores = monitoring_results(service.settings, service.store, all_scores=True).scores
    days = sorted({str(c)[:10] for c in scores["cutoff"]})
    out["dates"] = days
    if date is not None and date not in days:
        raise UnknownDayError(f"date has to be a scored day, one of {days}. Got {date!r}.")
    if len(scores):
        first = scores["cutoff"][scores["cutoff"].astype(str).str[:10] == (date or days[0])].min()
        # churn from the scored day on: a user who went quiet before it and came back is
        # counted at their next quiet spell
        after = lifetimes(service.settings, service.store, definition, since=first)
        at = scores[scores["cutoff"] == first].merge(after, on="user_id")
        bands = np.array([band(float(p), live.info.threshold) for p in at["probability"]])
        gone = at["churn_ts"].notna()
        # a quiet spell already under way on the scored day ends the user on its first day, as
        # the label counts it
        days = ((at["churn_ts"].where(gone, at["seen_until"]) - pd.Timestamp(first)).dt.days + 1
                ).clip(lower=1)  # fmt: skip
        for name in ("high", "medium", "low"):
            pick = bands == name
            if pick.sum() >= 5:
                out["by_band"].append(_curve(f"{name} on {str(first)[:10]}", days.to_numpy()[pick],
                                             gone.to_numpy()[pick]))  # fmt: skip
    return out


def _curve(
    name: str, durations: np.ndarray, events: np.ndarray, entry: np.ndarray | None = None
) -> dict[str, Any]:
    times, surv = kaplan_meier(durations, events, entry)
    # the curve starts on the first day anyone is followed: for signups from before the log,
    # the days before it hold nobody at risk, and a flat 1 there would read as no churn
    start = 0 if entry is None or not len(entry) else max(int(np.min(entry)), 0)
    # how many users each step rests on (first: those followed from the start); with
    # delayed entry the first days may rest on few
    return {"name": name, "users": int(len(durations)), "days": [start, *times.tolist()],
            "retained": [1.0, *surv.tolist()],
            "at_risk": risk_set(durations, [start + 0.5, *times], entry).tolist()}  # fmt: skip


def churn_words(definition: ChurnDefinition) -> str:
    """What churning is under `definition`, as a verb phrase: "cancel", "go quiet for 30 days"."""
    if definition.kind == "inactivity":
        return f"go quiet for {definition.inactivity_days} days"
    return "cancel or downgrade" if definition.include_downgrade else "cancel"


def lifetimes(
    settings: Settings, store: EventStore, definition: ChurnDefinition, since: Any = None
) -> pd.DataFrame:
    """Per user: signup (registration, or the first event), first level, when they churned by
    `definition` (the first cancellation; or the last event before the first quiet spell of
    its inactivity days, a spell running to the store's end included, as the labels count it;
    with `since`, the first cancellation or quiet spell not over before it), and up to when a
    user who has not churned is known not to have (`seen_until`); and the store's first event
    (`log_start`): a user who signed up before it is in the log only because they had not
    churned by then (left truncation)."""
    con = connect(settings)
    try:
        store.register(con)
        span = con.execute("SELECT MIN(ts), MAX(ts) FROM events").fetchone()
        first, last = span if span else (None, None)
        if definition.kind == "inactivity":
            churn = """(SELECT user_id, MAX(l) AS seen_until, MIN(l) FILTER (
                          WHERE epoch_us(COALESCE(nxt, $end)) - epoch_us(l) >= $k
                            AND COALESCE(nxt, $end) > COALESCE(CAST($since AS TIMESTAMPTZ), l))
                        AS churn_ts
                      FROM (SELECT user_id, l,
                                   LEAD(f) OVER (PARTITION BY user_id ORDER BY f) AS nxt
                            FROM (SELECT user_id, MIN(ts) AS f, MAX(ts) AS l FROM events
                                  GROUP BY user_id, CAST(ts AS DATE)))
                      GROUP BY user_id)"""
            params = {"end": last, "k": definition.inactivity_days * US_PER_DAY}
        else:
            churn = """(SELECT user_id, MIN(ts) FILTER (WHERE page = $p
                          AND ts >= COALESCE(CAST($since AS TIMESTAMPTZ), ts)) AS churn_ts,
                        CAST($end AS TIMESTAMPTZ) AS seen_until
                      FROM events GROUP BY user_id)"""
            params = {"end": last, "p": CHURN_PAGE}
        params |= {"since": since, "first": first}
        df = con.execute(
            "SELECT u.user_id, COALESCE(u.registration, u.first_ts) AS signup_ts, u.first_level,"
            " c.churn_ts, c.seen_until, CAST($first AS TIMESTAMPTZ) AS log_start"
            " FROM (SELECT user_id, MIN(registration) AS registration, MIN(ts) AS first_ts,"
            "       ARG_MIN(level, ts) AS first_level FROM events GROUP BY user_id) u"
            f" JOIN {churn} c USING (user_id)", params
        ).df()  # fmt: skip
    finally:
        con.close()
    return df
