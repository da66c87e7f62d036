from __future__ import annotations

import numpy as np
import pytest

from churnwatch.errors import InputError
from churnwatch.models.metrics import evaluate_scores, top_decile_lift, top_decile_recall
from churnwatch.models.train import choose_threshold


def test_lift_and_recall_of_a_perfect_and_a_useless_ranking() -> None:
    y = np.array([1] * 10 + [0] * 90)
    perfect = np.linspace(1, 0, 100)
    assert top_decile_lift(y, perfect) == pytest.approx(10.0)
    assert top_decile_recall(y, perfect) == pytest.approx(1.0)
    assert top_decile_lift(y, -perfect) == pytest.approx(0.0)


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


def test_unknown_threshold_rule() -> None:
    with pytest.raises(InputError, match="threshold rule has to be one of"):
        choose_threshold(np.array([0, 1]), np.array([0.1, 0.9]), "best")


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
