"""evaluate's breakdown by how long users had been observed at the cutoff."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnwatch.models.evaluate import history_bands


def test_bands_count_rows_and_compare_predicted_with_observed_rates() -> None:
    rng = np.random.default_rng(3)
    n = 600
    days = rng.integers(0, 90, n)
    # new users churn more than the model says; older ones as it says
    p = np.full(n, 0.05)
    y = (rng.random(n) < np.where(days < 14, 0.30, 0.05)).astype(int)
    y[:2] = [1, 0]  # both classes for sure in the first band ...
    days[:2] = [3, 5]
    lab = pd.DataFrame({"user_id": np.arange(n) % 200, "exposure_days": days})
    bands = history_bands(lab, y, p, 0.5, n_boot=50)
    assert [b["days observed"] for b in bands] == ["0-13", "14-27", "28-55", "56+"]
    assert sum(b["rows"] for b in bands) == n
    first = bands[0]
    in_first = days < 14
    assert first["rows"] == in_first.sum() and first["churners"] == y[in_first].sum()
    assert first["observed rate"] == pytest.approx(y[in_first].mean())
    assert first["mean predicted"] == pytest.approx(0.05)
    assert first["observed rate"] > 3 * first["mean predicted"]  # the under-prediction shows
    # a constant score ranks no one: ROC-AUC one half, within its interval
    assert first["roc_auc"] == pytest.approx(0.5)
    assert first["roc_auc low"] <= 0.5 <= first["roc_auc high"]


def test_a_band_with_one_class_has_no_roc_auc_and_empty_bands_are_left_out() -> None:
    lab = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "exposure_days": [1, 2, 30, 40]})
    y = np.array([0, 0, 1, 0])
    p = np.array([0.1, 0.2, 0.9, 0.1])
    bands = history_bands(lab, y, p, 0.5, n_boot=20)
    assert [b["days observed"] for b in bands] == ["0-13", "28-55"]
    assert "roc_auc" not in bands[0] and bands[1]["roc_auc"] == 1.0
    assert history_bands(lab.drop(columns="exposure_days"), y, p, 0.5, n_boot=20) == []
