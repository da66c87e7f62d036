"""Drift: flagged on a log with the simulated app release (adverts x2 for free users, errors
x3), not on the same log without it. The false-alarm rate over more seeds is measured by
`python -m bench.drift_alarms` (see README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnwatch.config import Settings
from churnwatch.features.catalog import feature_names
from churnwatch.monitoring.alerts import evaluate_rules
from churnwatch.monitoring.demo import drift_windows
from churnwatch.monitoring.drift import detect_drift, monitored_features, psi


def test_psi() -> None:
    rng = np.random.default_rng(0)
    a = pd.Series(rng.normal(size=5000))
    assert psi(a, pd.Series(rng.normal(size=5000))) < 0.01
    assert psi(a, pd.Series(rng.normal(0.5, 1, size=5000))) > 0.2
    cats = pd.Series(["free"] * 70 + ["paid"] * 30, dtype=object)
    assert psi(cats, cats) < 1e-9
    assert psi(cats, pd.Series(["free"] * 30 + ["paid"] * 70, dtype=object)) > 0.5


@pytest.mark.slow
def test_drift_is_flagged_on_a_shifted_log_and_not_on_an_unshifted_one(tmp_path: Path) -> None:
    settings = Settings()
    feats = monitored_features(feature_names())
    ref, cur = drift_windows(tmp_path, seed=1, drift_day=None)
    calm = detect_drift(ref, cur, feats, min_psi=settings.drift_min_psi)
    # the same seed: the same log until day 56
    ref, cur = drift_windows(tmp_path, seed=1, drift_day=56)
    shifted = detect_drift(ref, cur, feats, min_psi=settings.drift_min_psi)
    assert calm.share < settings.alert_drift_share <= shifted.share
    assert not evaluate_rules(settings, drift_share=calm.share)
    assert [a.kind for a in evaluate_rules(settings, drift_share=shifted.share)] == ["drift"]
    drifted = shifted.columns[shifted.columns["drifted"]]["column"].tolist()
    assert any(c.startswith(("adverts", "errors")) for c in drifted), drifted
    assert not any(c.startswith(("adverts", "errors")) for c in
                   calm.columns[calm.columns["drifted"]]["column"])  # fmt: skip


def test_prediction_drift_is_measured_against_the_served_models_own_scores() -> None:
    """The backtest's fold models spread their scores less than the model refitted on
    everything: against them, an unchanged population reads as prediction drift; against the
    served model's own scores on unseen rows, it does not."""
    rng = np.random.default_rng(0)
    n = 1500
    feats = ["events_per_day_7d", "thumbs_down_7d"]

    def frame(score: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"events_per_day_7d": rng.gamma(2.0, 5.0, n),
                             "thumbs_down_7d": rng.poisson(2.0, n), "score": score})  # fmt: skip

    served = rng.beta(1.0, 20.0, n)  # the served model: spread out
    backtest = frame(0.05 + 0.3 * (rng.beta(1.0, 20.0, n) - 0.05))  # the fold models: narrower
    current = frame(rng.beta(1.0, 20.0, n))
    naive = detect_drift(backtest, current, feats)
    fair = detect_drift(backtest, current, feats, score_reference=frame(served))
    assert naive.score_psi > 0.5 and fair.score_psi < 0.05
    assert naive.share == fair.share == 0.0  # the features are compared the same way
    assert set(fair.columns["column"]) == {*feats, "score"}


@pytest.mark.parametrize("rows", [300, 3000])  # Evidently's tests change past 1,000 rows
def test_each_columns_verdict_is_evidently_data_drift_presets(rows: int) -> None:
    """churnwatch runs the two metrics the preset's report shows, not the preset: every
    column's method, statistic, threshold and verdict must stay the preset's."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(rows)

    def frame(shift: float, paid: float) -> pd.DataFrame:
        return pd.DataFrame({
            "calm": rng.normal(0, 1, rows), "moved": rng.normal(shift, 1, rows),
            "count": rng.poisson(2 + shift, rows).astype(float),
            "level": rng.choice(["free", "paid"], rows, p=[1 - paid, paid]).astype(object),
            "score": rng.beta(1, 12, rows),
        })  # fmt: skip

    ref, cur = frame(0.0, 0.3), frame(0.4, 0.5)
    feats = ["calm", "moved", "count", "level"]
    ours = detect_drift(ref, cur, feats).columns.set_index("column")
    definition = DataDefinition(
        numerical_columns=["calm", "moved", "count", "score"], categorical_columns=["level"]
    )
    preset = Report([DataDriftPreset(columns=[*feats, "score"])], include_tests=True).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    found = preset.dict()
    scores = {m["id"]: m["value"] for m in found["metrics"]}
    theirs = {}
    for test in found["tests"]:
        params = test["metric_config"]["params"]
        if str(params.get("type", "")).endswith("ValueDrift"):
            score = scores[test["metric_config"]["metric_id"]]
            failed = test["status"] == "FAIL"
            theirs[params["column"]] = (params["method"], score, params["threshold"], failed)
    assert set(theirs) == set(ours.index) == {*feats, "score"}
    for column, (method, score, threshold, failed) in theirs.items():
        row = ours.loc[column]
        assert (row["method"], row["threshold"], row["test_failed"]) == (method, threshold, failed)
        assert row["score"] == pytest.approx(score, rel=1e-12, abs=1e-15), column
    assert ours.loc["moved", "test_failed"] and not ours.loc["calm", "test_failed"]
    small = rows <= 1000
    assert ours.loc["moved", "method"] == (
        "K-S p_value" if small else "Wasserstein distance (normed)"
    )
    assert ours.loc["level", "method"] == ("Z-test p_value" if small else "Jensen-Shannon distance")
