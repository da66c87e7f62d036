"""Behavioural tests of a model trained on simulator logs, where the true directions are known
by construction: adverts, thumbs down and errors lower satisfaction, which raises the hazard."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnwatch.config import Settings
from churnwatch.features.catalog import WINDOWS, wname
from churnwatch.runs import RunSummary


def scorer(trained: tuple[RunSummary, Settings]) -> tuple[pd.DataFrame, object]:
    summary, _ = trained
    snaps = summary.result.snapshots
    rows = snaps[snaps["label"].notna()].reset_index(drop=True)
    return rows, summary.result.chosen.estimator


def with_more(rows: pd.DataFrame, slug: str, per_day: float) -> pd.DataFrame:
    """The same users with `per_day` more `slug` events every observed day, in every window,
    counts, rates and the shares derived from them kept consistent."""
    out = rows.copy()
    for w in WINDOWS:
        wn = wname(w)
        extra = np.round(per_day * out[f"observed_days_{wn}"]).astype("int64")
        out[f"{slug}_{wn}"] += extra
        out[f"events_{wn}"] += extra
        out[f"{slug}_per_day_{wn}"] = out[f"{slug}_{wn}"] / out[f"observed_days_{wn}"]
        out[f"events_per_day_{wn}"] = out[f"events_{wn}"] / out[f"observed_days_{wn}"]
        out[f"thumbs_down_share_{wn}"] = (out[f"thumbs_down_{wn}"] + 1) / (
            out[f"thumbs_down_{wn}"] + out[f"thumbs_up_{wn}"] + 2
        )
        out[f"adverts_per_song_{wn}"] = out[f"adverts_{wn}"] / (out[f"songs_{wn}"] + 1)
    return out


@pytest.mark.parametrize(
    ("slug", "per_day"), [("thumbs_down", 3.0), ("adverts", 8.0), ("errors", 1.0)]
)
def test_more_bad_experience_does_not_lower_the_risk(
    trained: tuple[RunSummary, Settings], slug: str, per_day: float
) -> None:
    rows, model = scorer(trained)
    before = model.predict_proba(rows)[:, 1]  # type: ignore[attr-defined]
    after = model.predict_proba(with_more(rows, slug, per_day))[:, 1]  # type: ignore[attr-defined]
    assert after.mean() >= before.mean() - 1e-9
    dropped = np.mean(after < before - 0.02)
    assert dropped <= 0.10, f"{dropped:.0%} of users look safer with more {slug}"


def test_identical_histories_get_identical_scores(trained: tuple[RunSummary, Settings]) -> None:
    rows, model = scorer(trained)
    twin = rows.head(50).copy()
    twin["user_id"] = "twin-" + twin["user_id"]
    a = model.predict_proba(rows.head(50))[:, 1]  # type: ignore[attr-defined]
    b = model.predict_proba(twin)[:, 1]  # type: ignore[attr-defined]
    assert np.array_equal(a, b)


def test_collapsed_satisfaction_scores_above_content_users(
    trained: tuple[RunSummary, Settings], trained_truth: Path
) -> None:
    rows, model = scorer(trained)
    truth = pd.read_parquet(trained_truth)
    rows = rows.assign(state_day=(rows["cutoff"] - timedelta(days=1)).dt.date)
    truth = truth[["user_id", "date", "satisfaction"]]
    merged = rows.merge(truth, left_on=["user_id", "state_day"], right_on=["user_id", "date"])
    assert len(merged) > 0.9 * len(rows)
    p = model.predict_proba(merged)[:, 1]  # type: ignore[attr-defined]
    low, high = np.quantile(merged["satisfaction"], [0.1, 0.9])
    collapsed = p[merged["satisfaction"].to_numpy() <= low].mean()
    content = p[merged["satisfaction"].to_numpy() >= high].mean()
    assert collapsed > 1.5 * content
