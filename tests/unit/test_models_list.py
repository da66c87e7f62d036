"""`churnwatch train --models list`: every candidate, in the choice's order, each described in
full."""

from __future__ import annotations

from rich.console import Console

from churnwatch.cli.modelling import _models_table
from churnwatch.models import estimators


def test_every_candidate_is_listed_in_order_with_its_whole_description() -> None:
    table = _models_table()
    names, kinds, defaults, whats = ([str(cell) for cell in col.cells] for col in table.columns)
    assert names == list(estimators.ALL_MODELS)
    assert all(what.strip() for what in whats), [
        n for n, w in zip(names, whats, strict=True) if not w
    ]
    for name, kind in zip(names, kinds, strict=True):
        assert kind == ("baseline" if name in estimators.BASELINES else "learnt")
    # a description that runs onto a second line of the docstring is not cut at the line end
    by_name = dict(zip(names, whats, strict=True))
    assert by_name["seed_logistic"].endswith("counts turned into rates per observed day")
    assert "transfers to logs it never saw" in by_name["activity_logistic"]
    # the reference first, then the baselines before the other learnt models, the seed's forest
    # after the linear ones
    order = estimators.ALL_MODELS
    assert order[0] == estimators.MODELS[0] == "activity_logistic"
    assert order.index("rate_rule") < order.index("seed_logistic") < order.index("logistic")
    assert order.index("logistic") < order.index("seed_rf") < order.index("lightgbm")
    # when each is compared without --models: the rule that fits the churn definition
    default = dict(zip(names, defaults, strict=True))
    assert default["activity_logistic"] == default["seed_rf"] == "yes"
    assert default["rate_rule"] == "cancellation"
    assert default["recency_rule"] == "inactivity, other logs"
    assert default["bgnbd"] == "other logs" and default["xgboost"] == "no"
    Console(width=100, record=True).print(table)  # renders
