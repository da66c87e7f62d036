"""What the API serves, without HTTP: the champion, every active user's current features and
scores, and the operations on them. Routes validate and delegate here.

State is one immutable `Live` object (model plus the population scored with it) held in one
attribute; a reload or a refresh builds a new `Live` off to the side and swaps the reference,
so a request always sees a model and scores that belong together and never a half-built one.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnwatch import tracking
from churnwatch.config import Settings
from churnwatch.db import connect
from churnwatch.errors import (
    ChurnwatchError,
    InputError,
    NoValidRowsError,
    RegistryError,
    StoreError,
)
from churnwatch.features.build import build_snapshots
from churnwatch.features.catalog import catalog
from churnwatch.ingest.pipeline import ingest
from churnwatch.ingest.store import EventStore
from churnwatch.labels import CutoffSchedule, cutoff_for
from churnwatch.models.scorer import Scorer
from churnwatch.models.survival import survival_view
from churnwatch.recipe import Recipe, feature_mismatch
from churnwatch.schema import CHURN_PAGE, DOWNGRADE_PAGE
from churnwatch.serving.batch import band, past_the_data
from churnwatch.serving.feature_check import FeatureCheck, with_indicators
from churnwatch.serving.reasons import top_reasons

log = logging.getLogger(__name__)


class NoModelError(ChurnwatchError):
    """No model is loaded (none registered, or it failed to load)."""


class UnknownModelError(NoModelError):
    """A model reference the registry cannot load (no such alias, version, run or file)."""


class UnknownUserError(ChurnwatchError):
    """The user is not in the event store."""


class UnknownDayError(ChurnwatchError):
    """No scores were logged on the day asked for."""


class NotActiveError(ChurnwatchError):
    """The user has already churned under the model's definition (cancelled, or inactive for
    an inactivity model) and is not scored."""


@dataclass(frozen=True)
class ModelInfo:
    ref: str
    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    kind: str
    trained_at: str
    loaded_at: str
    threshold: float
    metrics: dict[str, float]
    params: dict[str, str]
    features: list[str]
    explains: bool
    recipe: Recipe = field(default_factory=Recipe)  # the definition populations follow
    feature_warning: str | None = None  # trained on features defined otherwise than now


@dataclass(frozen=True)
class Population:
    """Every active user's features at one cutoff, scored by one model."""

    cutoff: datetime
    frame: pd.DataFrame  # indexed by user_id, the model's features
    probability: np.ndarray
    contributions: np.ndarray | None
    users: pd.DataFrame  # every known user: last event, cancelled
    computed_at: str
    seconds: float
    store_version: int = 0
    position: dict[str, int] = field(default_factory=dict)
    # user -> their answer as JSON bytes, filled on first request (the population is fixed)
    answers: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Live:
    scorer: Scorer
    info: ModelInfo
    population: Population | None
    check: FeatureCheck  # the payload check for the model's features

    @classmethod
    def of(cls, scorer: Scorer, info: ModelInfo, population: Population | None) -> Live:
        features = catalog(info.recipe.spec)
        limits = {f.name: f.limits for f in features}
        return cls(scorer, info, population, FeatureCheck(info.features, features.kinds, limits))


def settle_heap() -> None:
    """Collect once, then leave what is alive out of Python's later collections.

    A loaded service holds about 450,000 objects the cyclic garbage collector tracks (MLflow,
    pandas, the model, the population), and a full collection walks them all: about 200 ms
    with the GIL held, so every request waiting meanwhile is late. A payload of 225 features
    allocates enough for such a collection every few seconds under load: p99 of `/predict`
    by features was 180-200 ms at 16 connections, its p50 10 ms. Frozen (`gc.freeze`), those
    objects are skipped. Called after every load and rescore, it first unfreezes, so what the
    previous model or population left in reference cycles is still collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ChurnService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = EventStore(settings.store_path)
        self.live: Live | None = None
        self.load_error: str | None = None
        self._write = threading.Lock()  # one reload / ingest at a time

    # -- loading -------------------------------------------------------------------------
    def load(self, ref: str | None = None) -> ModelInfo:
        """Load `ref` (default the configured champion), score the population, then swap."""
        with self._write:
            try:
                scorer, info = self._load_model(ref or self.settings.model_ref)
            except ChurnwatchError as exc:
                if self.live is None:  # a failed reload keeps serving the model it has
                    self.load_error = str(exc)
                raise
            population = self._population(scorer, info) if self.store.exists() else None
            self.live = Live.of(scorer, info, population)
            self.load_error = None
        settle_heap()
        return info

    def champion_changed(self) -> bool:
        """Whether the configured reference now names another model version."""
        tracking.setup(self.settings)
        meta = tracking.describe(self.settings.model_ref)
        live = self.live
        return live is None or (bool(meta["version"]) and meta["version"] != live.info.version)

    def _load_model(self, ref: str) -> tuple[Scorer, ModelInfo]:
        tracking.setup(self.settings)
        try:
            meta = tracking.describe(ref)
            pyfunc = tracking.load(ref)
        except RegistryError as exc:  # it names the reference, the tracking URI and the cause
            raise UnknownModelError(str(exc)) from exc  # it also says how to register one
        except Exception as exc:  # a registered model that cannot be read: a file, a pickle
            raise UnknownModelError(
                f"expected a registered model at {ref} (tracking URI "
                f"{tracking.tracking_uri(self.settings)}). Got: {_first_line(exc)}. "
                "Train one with `churnwatch train`."
            ) from exc
        scorer = Scorer(pyfunc.unwrap_python_model())
        recipe = tracking.read_recipe(meta)
        warning = feature_mismatch(recipe, f"the model at {ref} (version {meta['version']})")
        if warning:
            log.warning(warning)
        info = ModelInfo(
            ref=ref,
            kind=scorer.kind,
            loaded_at=_now(),
            threshold=scorer.threshold,
            features=scorer.features,
            explains=scorer.explains,
            recipe=recipe,
            feature_warning=warning,
            **meta,
        )
        return scorer, info

    def _population(self, scorer: Scorer, info: ModelInfo) -> Population:
        started = time.perf_counter()
        users = self._users()
        cutoff, _ = cutoff_for(users["last_ts"].max(), None)
        frame = self.features_at(cutoff, info)
        gap = scorer.verify(frame.head(256))
        if gap > 0:
            log.info("compiled scorer agrees with the pipeline within %.2g", gap)
        scores = scorer.score_frame(frame)
        order = {u: i for i, u in enumerate(frame.index)}
        return Population(
            cutoff=cutoff,
            frame=frame,
            probability=scores.probability,
            contributions=scores.contributions,
            users=users,
            computed_at=_now(),
            seconds=time.perf_counter() - started,
            store_version=self.store.manifest().version,
            position=order,
        )

    def _users(self) -> pd.DataFrame:
        con = connect(self.settings)
        try:
            self.store.register(con)
            users: pd.DataFrame = con.sql(
                f"""SELECT user_id, MAX(ts) AS last_ts, MIN(ts) AS first_ts,
                BOOL_OR(page = '{CHURN_PAGE}') AS cancelled,
                BOOL_OR(page = '{DOWNGRADE_PAGE}') AS downgraded,
                ARG_MAX(level, ts) AS level, COUNT(*) AS events
                FROM events GROUP BY user_id"""
            ).df()
            return users.set_index("user_id")
        finally:
            con.close()

    def features_at(
        self, cutoff: datetime, info: ModelInfo, until: datetime | None = None
    ) -> pd.DataFrame:
        """Every active user's features at `cutoff` (a midnight), from events before `until`."""

        self.store.require()
        table, _ = build_snapshots(
            self.store,
            definition=info.recipe.definition,
            schedule=CutoffSchedule(explicit=(cutoff.date(),)),
            settings=self.settings,
            spec=info.recipe.spec,
            until=until,
        )
        df: pd.DataFrame = table.to_pandas().set_index("user_id")
        return df[info.features]

    # -- reading -------------------------------------------------------------------------
    def current(self) -> Live:
        live = self.live
        if live is None:
            raise NoModelError(
                self.load_error or "expected a loaded model. Got none: the service is starting."
            )
        return live

    def population(self) -> tuple[Live, Population]:
        live = self.current()
        if live.population is None:
            raise StoreError(
                f"expected an event store at {self.store.root}. Got none: scores by user need "
                "one (run `churnwatch ingest`, or POST /events)."
            )
        return live, live.population

    def explain_row(
        self,
        live: Live,
        row: dict[str, Any],
        probability: float,
        contributions: Any,
        unknown: Collection[str] = (),
    ) -> dict[str, Any]:
        """The answer for one scored row; its reasons never cite the `unknown` features (of a
        payload that did not give them: imputed as typical, they say nothing about the user)."""
        reasons = (
            top_reasons(
                live.info.features,
                row,
                contributions,
                k=self.settings.reasons,
                allowed=[f for f in live.scorer.reason_features if f not in unknown],
                spec=live.info.recipe.spec,
                typical=live.scorer.typical,
            )  # fmt: skip
            if contributions is not None
            else []
        )
        view = survival_view(float(probability), live.info.recipe.definition.horizon_days)
        median = view.pop("median_days_to_churn")
        return {
            "probability": float(probability),
            "band": band(float(probability), live.info.threshold),
            "threshold": live.info.threshold,
            "model_version": live.info.version,
            "reasons": reasons,
            "horizons": {k.removesuffix("d"): v for k, v in view.items()},
            "median_days_to_churn": median,
        }

    def predict_features(
        self, rows: list[dict[str, Any]], *, explain: bool = True
    ) -> list[dict[str, Any]]:
        live = self.current()
        for i, row in enumerate(rows):
            live.check(row, index=i if len(rows) > 1 else None)
        rows = [
            with_indicators(row, live.info.features, index=i if len(rows) > 1 else None)
            for i, row in enumerate(rows)
        ]
        scores = live.scorer.score_records(rows, explain=explain)
        out = []
        for i, row in enumerate(rows):
            c = scores.contributions[i] if scores.contributions is not None else None
            imputed = [f for f in live.info.features if row.get(f) is None]
            item = self.explain_row(live, row, scores.probability[i], c, unknown=set(imputed))
            item["imputed"] = imputed
            out.append(item)
        return out

    def answer_user(self, user_id: str) -> bytes:
        """The /predict answer for a user as of now, as JSON; cached per population, so a
        refresh or a reload (a new population) starts afresh."""
        live, pop = self.population()
        cached = pop.answers.get(user_id)
        if cached is None:
            item = self.predict_user(user_id)
            item["as_of"] = pop.cutoff.isoformat().replace("+00:00", "Z")
            cached = json.dumps(item, default=_json_value).encode()
            pop.answers[user_id] = cached
        return cached

    def last_probability(self, user_id: str) -> float:
        _, pop = self.population()
        i = pop.position.get(user_id)
        return float(pop.probability[i]) if i is not None else float("nan")

    def predict_user(self, user_id: str, as_of: datetime | None = None) -> dict[str, Any]:
        live, pop = self.population()
        if as_of is not None:
            return self._predict_as_of(live, user_id, as_of)
        i = pop.position.get(user_id)
        if i is None:
            raise self._missing(live, user_id, pop.cutoff)
        row = row_at(pop.frame, i)
        c = pop.contributions[i] if pop.contributions is not None else None
        item = self.explain_row(live, row, pop.probability[i], c)
        return {"user_id": user_id, "as_of": pop.cutoff, **item}

    def _missing(self, live: Live, user_id: str, cutoff: datetime) -> ChurnwatchError:
        """Why `user_id` is not among the users scored at `cutoff`, by the model's definition:
        409 only when that definition says the user has churned."""
        pop = live.population
        state: dict[str, Any] | None
        if pop is not None and cutoff == pop.cutoff:  # now: the population's own user table
            known = user_id in pop.users.index
            state = {str(k): v for k, v in pop.users.loc[user_id].items()} if known else None
        else:
            state = self._user_state(user_id, cutoff)
        day = f"{cutoff:%Y-%m-%d}"
        if state is None:
            return UnknownUserError(
                f"expected a user_id with events before the scoring cutoff {day}. Got "
                f"{user_id!r}: no such events in the store."
            )
        d = live.info.recipe.definition
        last = pd.Timestamp(state["last_ts"])
        if d.kind == "cancellation" and state["cancelled"]:
            return NotActiveError(f"user {user_id!r} cancelled before {day} (last event {last})"
                                  ": churned under the model's definition, not scored")  # fmt: skip
        if d.kind == "cancellation" and d.include_downgrade and state["downgraded"]:
            return NotActiveError(f"user {user_id!r} downgraded before {day}, which the model's "
                                  "definition counts as churn: not scored")  # fmt: skip
        quiet = (pd.Timestamp(cutoff) - last).days
        if d.kind == "inactivity" and quiet >= d.inactivity_days:
            return NotActiveError(
                f"user {user_id!r} has had no events for {quiet} days before {day} (last event "
                f"{last}): churned by the model's definition ({d.inactivity_days} days of "
                "inactivity), not scored"
            )
        return UnknownUserError(
            f"user {user_id!r} is not in the population scored at {day}: registered or first "
            "seen too late, or without a usable registration"
        )

    def _user_state(self, user_id: str, before: datetime) -> dict[str, Any] | None:
        """One user's first and last event, and whether they cancelled or downgraded, from
        the events before `before`; None when there are none."""
        con = connect(self.settings)
        try:
            self.store.register(con)
            row = con.execute(
                f"""SELECT MIN(ts), MAX(ts), BOOL_OR(page = '{CHURN_PAGE}'),
                BOOL_OR(page = '{DOWNGRADE_PAGE}') FROM events
                WHERE CAST(user_id AS VARCHAR) = ? AND ts < ?""",
                [user_id, pd.Timestamp(before).to_pydatetime()],
            ).fetchone()
        finally:
            con.close()
        if row is None or row[0] is None:
            return None
        return {"first_ts": row[0], "last_ts": row[1], "cancelled": bool(row[2]),
                "downgraded": bool(row[3])}  # fmt: skip

    def _predict_as_of(self, live: Live, user_id: str, as_of: datetime) -> dict[str, Any]:
        cutoff, _ = cutoff_for(datetime.now(UTC), as_of)
        until = cutoff  # as of a time: complete days only, as `cutoff_for` says
        try:
            frame = self.features_at(cutoff, live.info, until=until)
        except InputError as exc:  # nothing at all before as_of: no user was known then
            raise UnknownUserError(
                f"expected a user_id with events before as_of {as_of.isoformat()} (complete "
                f"days: before {cutoff:%Y-%m-%d}). Got {user_id!r}, and the store has no events "
                "before then"
            ) from exc
        if user_id not in frame.index:
            raise self._missing(live, user_id, cutoff)
        row = frame.loc[[user_id]]
        scores = live.scorer.score_frame(row)
        c = scores.contributions[0] if scores.contributions is not None else None
        item = self.explain_row(live, row_at(row, 0), scores.probability[0], c)
        warning = past_the_data(cutoff, self.store.last_event())
        return {"user_id": user_id, "as_of": cutoff, **item,
                **({"warning": warning} if warning else {})}  # fmt: skip

    # -- writing -------------------------------------------------------------------------

    def append_events(self, events: list[Any], *, columns: str = "sparkify") -> dict[str, Any]:
        """Ingest raw events exactly like `churnwatch ingest`, then rescore the population so
        scores reflect them. `columns`: `sparkify` field names, or the store's `feed` mapping
        (how its latest ingest read the log's own files)."""
        mapping = None
        if columns == "feed":
            mapping = self.store.mapping()
            if mapping is None:
                raise InputError(
                    "columns 'feed' reads events as the store's own ingests read its log; "
                    "expected a store whose ingest recorded that. Got none: post the events "
                    "with eventsim's field names (columns 'sparkify'), or ingest the log with "
                    "`churnwatch ingest` first."
                )
            mapping = replace(mapping, encoding=None)  # the posted file is written as UTF-8
        incoming = self.settings.data_dir / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in events)
        # named by what it holds, in a folder of its own: under `dedupe line` an event is its
        # file's name and line, so a post sent again (a client's retry) is a duplicate
        body = text.encode()
        with self._write:
            folder = Path(tempfile.mkdtemp(prefix="api-", dir=incoming))
            path = folder / f"api-{hashlib.sha256(body).hexdigest()[:32]}.jsonl"
            path.write_bytes(body)
            try:
                report = ingest(
                    [path],
                    settings=self.settings,
                    store_dir=self.store.root,
                    mapping=mapping,
                    feed=False,
                )
            except NoValidRowsError as exc:  # a well-formed request whose events all failed
                rejected = _quarantine_rows(exc.quarantine_file)
                by_reason: dict[str, int] = {}
                for r in rejected:
                    by_reason[str(r["reason"])] = by_reason.get(str(r["reason"]), 0) + 1
                return {"received": len(events), "stored": 0, "duplicates": 0, "guests": 0,
                        "quarantined": len(events), "quarantined_by_reason": by_reason,
                        "rejected": rejected, "scores_refreshed": False}  # fmt: skip
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            quarantined = _quarantine_rows(report.quarantine_file)
            live = self.live
            refreshed = False
            if live is not None and report.stored + report.guests_stored > 0:
                self.live = replace(live, population=self._population(live.scorer, live.info))
                refreshed = True
        if refreshed:
            settle_heap()
        return {
            "received": len(events),
            "stored": report.stored,
            "duplicates": report.duplicates,
            "guests": report.guests,
            "quarantined": report.quarantined,
            "quarantined_by_reason": report.quarantined_by_reason,
            "rejected": quarantined,
            "scores_refreshed": refreshed,
        }


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, datetime):
        return v.isoformat()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def row_at(frame: pd.DataFrame, i: int) -> dict[str, Any]:
    return {str(k): v for k, v in frame.iloc[i].items()}


def clean(v: Any) -> Any:
    if isinstance(v, float) and np.isnan(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _quarantine_rows(path: str | None) -> list[dict[str, object]]:
    if not path or not Path(path).is_file():
        return []
    rows = []
    # split on newlines only: str.splitlines() also breaks at U+0085 and U+2028 inside values
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        if not line:
            continue
        q = json.loads(line)
        rows.append(
            {"line": q.get("line"), "reason": q.get("reason"), "message": q.get("detail"),
             "raw": q.get("raw")}
        )  # fmt: skip
    return rows
