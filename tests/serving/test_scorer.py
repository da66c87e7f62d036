"""The compiled scorer against the pipelines it compiles, and the reasons it gives."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnwatch.features.base import FeatureSpec
from churnwatch.features.catalog import by_name
from churnwatch.models.effects import fold_effects
from churnwatch.models.scorer import Scorer
from churnwatch.models.train import fit_calibrated
from churnwatch.serving.reasons import describe, top_reasons
from churnwatch.tracking import ChurnModel

SERVED = ("rate_rule", "activity_logistic", "logistic", "random_forest", "xgboost", "lightgbm")


# each candidate fitted once for the whole module (a calibrated forest on every labelled
# daily cutoff took 29 s); every test still gets a Scorer of its own, compiled afresh
_FITTED: dict[str, Any] = {}


def _scorer(trained: Any, name: str) -> tuple[Scorer, pd.DataFrame]:
    """The training run's chosen model, or another candidate fitted and calibrated the way
    training fits the chosen one, on every third of the run's labelled cutoffs (what is
    checked is that each way of scoring a fitted model agrees, not what it learnt)."""
    summary, _ = trained
    result = summary.result
    if name == result.chosen.name:
        estimator = result.chosen.estimator
    else:
        if (name, id(result)) not in _FITTED:
            lab = result.snapshots[result.snapshots["label"].notna()]
            lab = lab[lab["cutoff"].isin(sorted(lab["cutoff"].unique())[::3])]
            y = lab["label"].astype(int).to_numpy()
            _FITTED[name, id(result)], _ = fit_calibrated(name, {}, lab, y, np.ones(len(lab)),
                                                          seed=0)  # fmt: skip
        estimator = _FITTED[name, id(result)]
    model = ChurnModel(estimator, result.features, result.threshold)
    rows = result.snapshots.sample(300, random_state=0)
    return Scorer(model), rows


@pytest.mark.parametrize("name", SERVED)
def test_compiled_scores_equal_the_pipeline(trained: Any, name: str) -> None:
    scorer, rows = _scorer(trained, name)
    assert scorer.explains, f"{name} should have a compiled path"
    slow = scorer.model.predict(None, rows)
    # the margin-only path (batch scoring, monitoring) on every row; the explained path
    # (/predict), whose probability comes with the SHAP values, on the first 40
    np.testing.assert_allclose(scorer.score_frame(rows, explain=False).probability, slow,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(scorer.score_frame(rows.head(40)).probability, slow[:40],
                               atol=1e-6)  # fmt: skip
    # the same rows as JSON-like records (what /predict receives) give the same scores
    records = [{k: (None if pd.isna(v) else v) for k, v in r.items()}
               for r in rows[scorer.features].head(20).to_dict("records")]  # fmt: skip
    np.testing.assert_allclose(scorer.score_records(records).probability, slow[:20], atol=1e-6)


@pytest.mark.parametrize("name", SERVED)
def test_shap_additivity_against_the_models_own_margin(trained: Any, name: str) -> None:
    """base value + contributions == the model's margin, where the margin is read from the
    fitted pipeline itself (log-odds of its raw probability; the probability for forests)."""
    scorer, rows = _scorer(trained, name)
    scores = scorer.score_frame(rows.head(50))
    assert scores.contributions is not None and scores.base is not None
    assert scores.contributions.shape == (50, len(scorer.features))
    raw = scorer.pipeline.predict_proba(rows.head(50))[:, 1]
    q = np.clip(raw, 1e-12, 1 - 1e-12)
    margin = raw if name == "random_forest" else np.log(q / (1 - q))
    explained = scores.base + scores.contributions.sum(axis=1)
    np.testing.assert_allclose(explained, margin, atol=1e-4 if name == "xgboost" else 1e-8)


def test_a_model_without_a_compiled_path_is_served_through_its_pipeline(trained: Any) -> None:
    scorer, rows = _scorer(trained, "ensemble")
    assert not scorer.explains and scorer.kind == "pipeline"
    p = scorer.score_frame(rows.head(10)).probability
    np.testing.assert_allclose(p, scorer.model.predict(None, rows.head(10)))


def test_verify_falls_back_when_the_compiled_path_disagrees(trained: Any) -> None:
    scorer, rows = _scorer(trained, "lightgbm")
    assert scorer._fast is not None
    scorer._fast[0].medians = scorer._fast[0].medians + 1e3  # corrupt the compiled imputer
    rows = rows.copy()
    floats = [c for c in scorer.features if rows[c].dtype == np.float64][:50]
    rows[floats] = np.nan  # so the imputer matters
    assert scorer.verify(rows) > 1e-6
    assert not scorer.explains
    np.testing.assert_allclose(
        scorer.score_frame(rows).probability, scorer.model.predict(None, rows)
    )


def test_reasons_in_words() -> None:
    row = {"thumbs_down_7d": 9, "thumbs_down_per_day_7d": 9 / 7, "thumbs_down_per_day_all": 0.4286}
    assert describe("thumbs_down_7d", 9, row) == (
        "9 thumbs down in the last 7 days, 3.0x your usual rate"
    )
    assert describe("recency_days", 5.0, row) == "last active 5 days ago"
    assert describe("downgrade_views_7d", 1, row).startswith("1 visit to the downgrade page in")
    assert describe("thumbs_down_7d", 1, row).startswith("1 thumbs down in")
    assert describe("level", "free", row) == "on the free level"
    assert describe("trend_songs", float(np.log(0.5)), row).startswith("songs down 50%")
    assert describe("songs_per_day_7d", 0.0, {"songs_per_day_all": 20.0}) == (
        "0 songs played a day in the last 7 days, against your usual 20 a day"
    )
    assert describe("trend_thumbs_down", -0.33, row).startswith("0.33 fewer thumbs down")
    assert describe("tenure_days", None, row).endswith(": not known, taken as typical")


def test_top_reasons_put_what_raises_risk_first() -> None:
    feats = ["a_7d", "thumbs_down_7d", "recency_days"]
    row = {"a_7d": 1.0, "thumbs_down_7d": 4, "recency_days": 2.0}
    got = top_reasons(feats, row, np.array([-0.9, 0.3, 0.1]), k=2)
    assert [r["feature"] for r in got] == ["thumbs_down_7d", "recency_days"]
    got = top_reasons(feats, row, np.array([-0.9, 0.3, 0.0]), k=3)
    assert [r["direction"] for r in got] == ["raises risk", "lowers risk"]


def test_a_whole_history_rate_is_set_against_the_typical_user() -> None:
    feats = ["home_per_exposure_day", "thumbs_down_7d", "is_paid"]
    row = {"home_per_exposure_day": 6.1, "thumbs_down_7d": 4, "is_paid": 1}
    typical = {"home_per_exposure_day": 0.44, "thumbs_down_7d": 1.0, "is_paid": 0.0}
    got = top_reasons(feats, row, np.array([0.9, 0.5, 0.2]), k=3, typical=typical)
    texts = [r["text"] for r in got]
    assert texts[0] == (
        "6.10 visits to the home page a day since they could first be seen; typical user 0.44"
    )
    # a windowed count has the user's own usual rate to compare with; a level is no rate
    assert "typical" not in texts[1] and texts[2] == "on the paid level"
    plain = top_reasons(feats, row, np.array([0.9, 0.5, 0.2]), k=1)  # no typical given
    assert plain[0]["text"].endswith("since they could first be seen")


def test_a_hand_built_risky_user_gets_stable_behaviour_reasons(trained: Any) -> None:
    """A typical user, then the same user with every stable feature pushed to its risky
    extreme: the risk rises, and the reasons are those features, in words, raising risk."""
    summary, _ = trained
    result = summary.result
    model = ChurnModel(result.chosen.estimator, result.features, result.threshold,
                       result.reason_features)  # fmt: skip
    scorer = Scorer(model)
    stable = scorer.reason_features
    assert stable, "the simulated log's chosen model has features stable across folds"
    assert set(stable) <= set(result.features)
    lab = result.snapshots[result.snapshots["label"].notna()]
    typical = lab[result.features].median(numeric_only=True)
    base = lab.iloc[[0]][result.features].copy()
    for c in typical.index:
        base[c] = typical[c]
    effects = fold_effects(result.chosen.estimator, lab.sample(2000, random_state=0), seed=0)
    risky = base.copy()
    for c in stable:
        risky[c] = lab[c].quantile(0.99 if effects[c] > 0 else 0.01)
    p_base, p_risky = scorer.score_frame(base).probability[0], scorer.score_frame(risky)
    assert p_risky.probability[0] > p_base
    if p_risky.contributions is None:  # a model served through its pipeline gives no reasons
        return
    row = {str(k): v for k, v in risky.iloc[0].items()}
    reasons = top_reasons(scorer.features, row, p_risky.contributions[0], k=3, allowed=stable,
                          typical=scorer.typical)  # fmt: skip
    assert reasons and {r["feature"] for r in reasons} <= set(stable)
    # the typical user: the medians the model learnt from, within each feature's range
    for c, v in scorer.typical.items():
        assert lab[c].min() <= v <= lab[c].max(), c
    rates = [r for r in reasons if r["feature"].endswith("_per_exposure_day")]
    assert all("; typical user " in r["text"] for r in rates), rates
    assert reasons[0]["direction"] == "raises risk"
    for r in reasons:
        assert "_" not in r["text"] and not r["text"].startswith("-"), r["text"]
    # a feature outside the stable list is never given, however large its contribution
    contrib = p_risky.contributions[0].copy()
    outsider = next(i for i, f in enumerate(scorer.features) if f not in stable)
    contrib[outsider] = 1e3
    got = top_reasons(scorer.features, row, contrib, k=3, allowed=stable)
    assert scorer.features[outsider] not in {r["feature"] for r in got}


def test_the_typical_user_is_the_median_the_model_learnt_from_whatever_it_imputes(
    trained: Any,
) -> None:
    """The rate rule imputes 0 for a missing rate; its typical user is still the median of
    the rows it learnt from (it was "typical user 0" for adverts heard a day). A model logged
    before the medians were kept falls back on its imputer's medians, and on none when its
    imputer fills zeros."""
    from churnwatch.runs import typical_values

    summary, _ = trained
    result = summary.result
    lab = result.snapshots[result.snapshots["label"].notna()]
    y = lab["label"].astype(int).to_numpy()
    rule, _ = fit_calibrated("rate_rule", {}, lab, y, np.ones(len(lab)), seed=0)
    typical = typical_values(lab, result.features)
    assert set(typical) <= set(result.features) and "is_paid" in typical
    scorer = Scorer(ChurnModel(rule, result.features, result.threshold, typical=typical))
    rates = [f for f in scorer.features if f.endswith("_per_day_all")]
    assert rates
    for f in rates:
        assert scorer.typical[f] == pytest.approx(lab[f].median())
    assert any(scorer.typical[f] > 0 for f in rates)
    row = lab.iloc[[int(np.argmax(lab["adverts_per_day_all"].to_numpy()))]][result.features]
    scores = scorer.score_frame(row)
    assert scores.contributions is not None
    record = {str(k): v for k, v in row.iloc[0].items()}
    reasons = top_reasons(scorer.features, record, scores.contributions[0], k=len(rates),
                          typical=scorer.typical)  # fmt: skip
    advert = next(r for r in reasons if r["feature"] == "adverts_per_day_all")
    usual = lab["adverts_per_day_all"].median()
    assert advert["text"].endswith(f"; typical user {usual:.2f}"), advert["text"]
    # logged before the medians were kept: none for the zero-imputing rule, the imputer's
    # medians for a model that imputes medians
    assert Scorer(ChurnModel(rule, result.features, result.threshold)).typical == {}
    old, _ = _scorer(trained, "logistic")
    assert old.typical and all(np.isfinite(v) for v in old.typical.values())


@pytest.mark.parametrize(
    "spec",
    [FeatureSpec(), FeatureSpec("events", events=("support", "purchase"), value=True)],
    ids=["sparkify", "events"],
)
def test_every_reason_says_one_of_a_thing_in_the_singular(spec: FeatureSpec) -> None:
    """'1 visits to settings a day', 'last active 1 days ago': the rates per exposure day and
    the day counts set a number before a plural whatever the number. Every feature of both
    catalogs at 1 (with and without the user's usual rates beside it) says one thing."""
    one = re.compile(r"(?<![\d.,])1 (?:'[^']*' )?(?:new )?([a-z-]+)")
    typical = dict.fromkeys(by_name(spec), 0.5)
    plural = []
    for name, feature in by_name(spec).items():
        if feature.kind == "category":
            continue
        for row in ({}, typical):
            text = describe(name, 1.0, row, spec)
            words = one.findall(text)
            plural += [text for w in words if w.endswith("s") and w not in ("thumbs",)]
    assert not plural, plural
