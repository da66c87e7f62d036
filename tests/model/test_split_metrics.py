from __future__ import annotations

import re

import numpy as np
import pytest

from churnwatch.errors import InputError
from churnwatch.models.metrics import (
    SCORE_METRICS,
    evaluate_scores,
    threshold_metrics,
    top_decile_lift,
    top_decile_recall,
)
from churnwatch.models.train import TrainConfig, choose_threshold, threshold_rule


def test_lift_and_recall_of_a_perfect_and_a_useless_ranking() -> None:
    y = np.array([1] * 10 + [0] * 90)
    perfect = np.linspace(1, 0, 100)
    assert top_decile_lift(y, perfect) == pytest.approx(10.0)
    assert top_decile_recall(y, perfect) == pytest.approx(1.0)
    assert top_decile_lift(y, -perfect) == pytest.approx(0.0)


@pytest.mark.parametrize("seed", range(5))
def test_the_metrics_equal_scikit_learns_with_ties_and_one_class(seed: int) -> None:
    """The NumPy metrics (one sort, no input checks: fast in a bootstrap) are scikit-learn's."""
    from sklearn import metrics as sk

    rng = np.random.default_rng(seed)
    for _ in range(200):
        n = int(rng.integers(1, 80))
        y = (rng.random(n) < rng.random()).astype(int)
        p = np.round(rng.random(n), int(rng.integers(0, 3)))  # few decimals: many ties
        expected = {
            "brier": sk.brier_score_loss(y, p, labels=[0, 1]),
            "log_loss": sk.log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]),
            "accuracy": sk.accuracy_score(y, p >= 0.5),
            "f1": sk.f1_score(y, p >= 0.5, zero_division=0),
        }
        if 0 < y.sum() < n:
            expected["roc_auc"] = sk.roc_auc_score(y, p)
            expected["pr_auc"] = sk.average_precision_score(y, p)
        else:
            assert np.isnan(SCORE_METRICS["roc_auc"](y, p))
            assert np.isnan(SCORE_METRICS["pr_auc"](y, p))
        got = {**{k: SCORE_METRICS[k](y, p) for k in SCORE_METRICS}, **threshold_metrics(y, p, 0.5)}
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, abs=1e-12), (name, y, p)


def test_bootstrap_intervals_contain_the_point_estimate() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.15).astype(int)
    p = np.clip(0.15 + 0.3 * (y - 0.15) + rng.normal(0, 0.15, 400), 0.001, 0.999)
    users = np.repeat(np.arange(100), 4)
    out = evaluate_scores(y, p, users, threshold=0.3, n_boot=200, seed=1)
    for name, est in out.items():
        assert est.low <= est.value <= est.high, name
    assert out["roc_auc"].value > 0.8
    assert out["roc_auc"].high - out["roc_auc"].low < 0.2


@pytest.mark.parametrize(
    ("rule", "check"),
    [
        ("capacity:0.1", lambda p, t: np.isclose(np.mean(p >= t), 0.1, atol=0.02)),
        ("f1", lambda p, t: 0 < t < 1),
        ("cost:5", lambda p, t: 0 < t < 1),
    ],
)
def test_threshold_rules(rule: str, check: object) -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(500) < 0.2).astype(int)
    p = np.clip(0.2 + 0.4 * (y - 0.2) + rng.normal(0, 0.2, 500), 0.001, 0.999)
    t = choose_threshold(y, p, rule)
    assert check(p, t)  # type: ignore[operator]


@pytest.mark.parametrize(
    "rule", ["best", "capacity:2", "capacity:0", "capacity:-0.1", "cost:x", "cost:0", "cost:inf",
             "cost:nan", "f1:3"],
)  # fmt: skip
def test_a_threshold_rule_out_of_its_range_is_refused_before_training(rule: str) -> None:
    """'capacity:2' trained for minutes, then ended in NumPy's traceback ('Quantiles must be in
    the range [0, 1]'); 'cost:x' in float()'s. Both are refused when the run is configured."""
    said = re.escape("threshold rule has to be 'f1', 'capacity:SHARE' (0 < SHARE <= 1) or "
                     f"'cost:RATIO' (RATIO > 0). Got {rule!r}.")  # fmt: skip
    with pytest.raises(InputError, match=said):
        choose_threshold(np.array([0, 1]), np.array([0.1, 0.9]), rule)
    with pytest.raises(InputError, match=said):
        TrainConfig(threshold_rule=rule)


@pytest.mark.parametrize(
    ("rule", "read"),
    [("f1", ("f1", 0.0)), ("capacity:1", ("capacity", 1.0)), ("capacity", ("capacity", 0.05)),
     ("cost:0.5", ("cost", 0.5)), ("cost:", ("cost", 5.0))],
)  # fmt: skip
def test_threshold_rules_read_their_number(rule: str, read: tuple[str, float]) -> None:
    assert threshold_rule(rule) == read


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_rules_match_a_brute_force_search(seed: int) -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.2).astype(int)
    p = np.round(np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.2, 300), 0, 1), 2)  # ties
    best_f1 = max(f1_score(y, (p >= t).astype(int)) for t in np.unique(p))
    t = choose_threshold(y, p, "f1")
    assert f1_score(y, (p >= t).astype(int)) == pytest.approx(best_f1)

    def cost(t: float) -> int:
        return int(5 * np.sum((p < t) & (y == 1)) + np.sum((p >= t) & (y == 0)))

    assert cost(choose_threshold(y, p, "cost:5")) == min(cost(t) for t in np.unique(p))
