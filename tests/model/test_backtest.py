"""The rolling-origin backtest: folds that never see their own period, and a choice rule that
prefers the simpler candidate unless a more complex one wins by more than the noise."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnwatch.errors import InputError
from churnwatch.models.backtest import Backtest, Fold, auc, one_standard_error, rolling_folds

DAYS = [date(2018, 10, 15) + timedelta(days=i) for i in range(50)]
WEEKLY = DAYS[::7]


def _labelled(seed: int = 0, users: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(u, d, int(rng.random() < 0.1)) for d in DAYS for u in range(users)]
    return pd.DataFrame(rows, columns=["user_id", "cutoff_date", "label"])


def test_folds_fit_only_on_cutoffs_whose_horizon_has_ended() -> None:
    folds = rolling_folds(_labelled(), WEEKLY, 14, last=4)
    assert len(folds) == 4
    assert [f.cutoff for f in folds] == WEEKLY[-4:]
    for f in folds:
        assert f.fit and max(f.fit) + timedelta(days=14) <= f.cutoff
        assert set(f.fit) == {d for d in DAYS if d + timedelta(days=14) <= f.cutoff}


def test_folds_need_enough_churners_to_learn_from() -> None:
    data = _labelled()
    first = rolling_folds(data, WEEKLY, 14, last=99, min_positives=1)[0]
    assert first.cutoff == WEEKLY[2]  # WEEKLY[0..1] have no cutoff 14 days before them
    strict = rolling_folds(data, WEEKLY, 14, last=99, min_positives=200)
    assert all(len(f.fit) >= 30 for f in strict)
    with pytest.raises(InputError, match="at least 10000 churners"):
        rolling_folds(data, WEEKLY, 14, min_positives=10_000)


def test_rank_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    s = rng.integers(0, 20, 500).astype(float)  # many ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(auc(np.zeros(5), np.arange(5.0)))


def _backtest(signal: dict[str, float], seed: int = 0, users: int = 400) -> Backtest:
    """Three folds; each candidate scores label * strength + noise."""
    rng = np.random.default_rng(seed)
    rows, scores = [], {n: [] for n in signal}  # type: ignore[var-annotated]
    for f in range(3):
        y = (rng.random(users) < 0.2).astype(int)
        rows.append(pd.DataFrame({"user_id": np.arange(users), "cutoff_date": WEEKLY[f + 3],
                                  "label": y, "fold": f}))  # fmt: skip
        for n, strength in signal.items():
            scores[n].append(y * strength + rng.normal(size=users))
    folds = [Fold(WEEKLY[f + 3], (DAYS[0],)) for f in range(3)]
    return Backtest(folds, pd.concat(rows, ignore_index=True),
                    {n: np.concatenate(v) for n, v in scores.items()})  # fmt: skip


def test_one_standard_error_rule_keeps_the_simpler_of_two_equals() -> None:
    bt = _backtest({"simple": 1.0, "complex": 1.02}, seed=2)
    # the complex one is nominally better here, but by less than the noise
    assert bt.mean_auc("complex") > bt.mean_auc("simple")
    choice = one_standard_error(bt, ["simple", "complex"], n_boot=100)
    assert choice.name == "simple"
    row = {r["model"]: r for r in choice.table}
    assert row["simple"]["within_1se"] and row["simple"]["se_of_gap"] > 0


def test_one_standard_error_rule_takes_a_clearly_better_complex_model() -> None:
    bt = _backtest({"simple": 0.3, "complex": 2.0})
    choice = one_standard_error(bt, ["simple", "complex"], n_boot=100)
    assert choice.name == "complex"
    assert "complex" in choice.rule
