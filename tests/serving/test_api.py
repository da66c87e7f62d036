"""The API in process: answers, error statuses with messages, access, and a fuzz of bad
requests that must never get a 500."""

from __future__ import annotations

import gc
import itertools
import json
import weakref
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnwatch.config import Settings
from churnwatch.db import connect
from churnwatch.features.catalog import feature_names
from churnwatch.ingest.store import EventStore
from churnwatch.serving.app import create_app
from churnwatch.serving.service import ChurnService

KEY = {"X-API-Key": "s3cret"}
JSON = {"content-type": "application/json"}


def _a_user(client: TestClient) -> str:
    return str(client.get("/users/at-risk", params={"limit": 1}).json()["users"][0]["user_id"])


def test_predict_by_user_and_by_features_agree(client: TestClient) -> None:
    user = _a_user(client)
    by_user = client.post("/predict", json={"user_id": user})
    assert by_user.status_code == 200, by_user.text
    body = by_user.json()
    assert 0 <= body["probability"] <= 1 and body["band"] in ("low", "medium", "high")
    assert body["reasons"] and all(r["text"] for r in body["reasons"])
    # the same user's features, sent as a payload, give the same probability
    model = client.get("/model").json()
    assert model["explains"] and len(model["features"]) > 100
    batch = client.post("/predict/batch", json={"user_ids": [user, "no-such-user"]}).json()
    assert batch["items"][0]["prediction"]["probability"] == pytest.approx(body["probability"])
    assert "no-such-user" in batch["items"][1]["error"]


def test_feature_payload_with_missing_features_is_imputed(client: TestClient) -> None:
    r = client.post("/predict", json={"features": {"thumbs_down_7d": 9, "level": "free"}})
    assert r.status_code == 200, r.text
    assert "recency_days" in r.json()["imputed"] and "level" not in r.json()["imputed"]
    # nothing known: the typical user, and every feature is said to be imputed
    r = client.post("/predict", json={"features": {}})
    served = client.get("/model").json()["features"]
    assert r.status_code == 200 and sorted(r.json()["imputed"]) == sorted(served)


def test_a_payloads_reasons_cite_only_the_features_it_gave(client: TestClient) -> None:
    """The rest are imputed as typical: they say nothing about the user, so no reason cites
    them (the answer's `imputed` names them)."""
    risky = client.post("/predict", json={"user_id": _a_user(client)}).json()
    given = {r["feature"]: r["value"] for r in risky["reasons"][:2]}
    r = client.post("/predict", json={"features": given})
    assert r.status_code == 200, r.text
    cited = [reason["feature"] for reason in r.json()["reasons"]]
    assert cited and set(cited) <= set(given), (cited, given)
    assert not any("not known" in reason["text"] for reason in r.json()["reasons"])
    assert not set(given) & set(r.json()["imputed"])


def test_a_payload_within_the_features_limits_is_scored(client: TestClient) -> None:
    """The limits refuse only what the snapshots cannot give: a falling trend (a log ratio)
    and a zero count are numbers like any other; a huge rate is scored, and its reason does
    not spell out digits a float does not hold."""
    ok = {"trend_songs": -2.5, "trend_thumbs_down": -1.0, "thumbs_down_7d": 0, "is_paid": 1}
    r = client.post("/predict", json={"features": ok})
    assert r.status_code == 200, r.text
    huge = client.post("/predict", json={"features": {"events_per_exposure_day": 1e300}})
    assert huge.status_code == 200, huge.text
    texts = [reason["text"] for reason in huge.json()["reasons"]]
    assert any(text.startswith("1e+300 events a day") for text in texts), texts


def test_a_payloads_level_sets_is_paid_as_the_snapshots_do(client: TestClient) -> None:
    """level 'free' means is_paid 0, as in the snapshot SQL: not an imputed typical value."""
    base = {"thumbs_down_per_exposure_day": 2.0, "settings_per_exposure_day": 0.5}

    def predict(**extra: Any) -> dict[str, Any]:
        r = client.post("/predict", json={"features": {**base, **extra}})
        assert r.status_code == 200, r.text
        return dict(r.json())

    free, paid = predict(level="free"), predict(level="paid")
    assert "is_paid" not in free["imputed"] and "is_paid" in predict()["imputed"]
    assert free["probability"] == pytest.approx(predict(level="free", is_paid=0)["probability"])
    assert paid["probability"] == pytest.approx(predict(level="paid", is_paid=1)["probability"])
    assert free["probability"] != pytest.approx(paid["probability"])
    both = client.post("/predict", json={"features": {"level": "free", "is_paid": 1}})
    assert both.status_code == 422 and "'is_paid' expected 0 with level 'free'" in both.text


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"features": {"thumbs_down_7d": "many"}}, 422, "'thumbs_down_7d' expected a finite"),
        # numbers no user can have: a negative count, a share above 1, an indicator of 2
        ({"features": {"thumbs_down_7d": -1}}, 422, "'thumbs_down_7d' expected a number >= 0"),
        (
            {"features": {"active_share_7d": 1.5}},
            422,
            "'active_share_7d' expected a number from 0 to 1",
        ),
        ({"features": {"is_paid": 2}}, 422, "'is_paid' expected a number from 0 to 1"),
        ({"features": {"level": 3}}, 422, "level"),
        ({"features": {"not_a_feature": 1}}, 422, "not_a_feature"),
        ({"features": {"level": True}}, 422, "level"),  # strict: true is not a string
        ({"user_id": None}, 422, "user_id"),  # absent is fine, null is not
        ({"user_id": "1", "features": {"level": "free"}}, 422, "exactly one"),
        ({"user_id": "no-such-user"}, 404, "no-such-user"),
        ({"user_id": 5}, 422, "user_id"),
        ({"user_id": "1", "as_of": "yesterday"}, 422, "as_of"),
        ({"features": {"level": "free"}, "as_of": "2018-11-01T00:00:00Z"}, 422, "as_of"),
        ({"userid": "1"}, 422, "userid"),
    ],
)
def test_bad_requests_name_the_field(
    client: TestClient, body: dict[str, Any], status: int, names: str
) -> None:
    r = client.post("/predict", json=body)
    assert r.status_code == status, r.text
    assert names in r.json()["message"], r.json()


def test_a_body_that_is_not_json_is_told_where_it_breaks(client: TestClient) -> None:
    """Not a field's fault: the answer says a JSON document was expected and where the text
    stopped parsing (pydantic's own message names the position as if it were a field)."""
    r = client.post("/predict", content=b'{"user_id": "1",}', headers=JSON)
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert message.startswith("body: expected a JSON document.") and "at character 16" in message
    assert r.json()["detail"][0]["field"] == "body"


def test_as_of_scores_the_past(client: TestClient, served_data: Path) -> None:
    user = _a_user(client)
    now = client.post("/predict", json={"user_id": user}).json()
    past = client.post("/predict", json={"user_id": user, "as_of": "2000-01-01T00:00:00Z"})
    assert past.status_code == 404 and "2000-01-01" in past.json()["message"]
    assert past.json()["message"].count("expected") == 1  # said once, not the store's words too
    cut = now["as_of"][:10]
    earlier = client.post("/predict", json={"user_id": user, "as_of": f"{cut}T00:00:00Z"})
    assert earlier.status_code == 200, earlier.text
    assert earlier.json()["as_of"] == now["as_of"]  # the same events: the same score
    assert earlier.json()["probability"] == pytest.approx(now["probability"])
    assert "warning" not in now and "warning" not in earlier.json()
    # long after the data every user reads as gone quiet: the answer says so (it did not)
    late = pd.Timestamp(cut) + pd.Timedelta(days=400)
    later = client.post("/predict", json={"user_id": user, "as_of": late.isoformat() + "Z"})
    assert later.status_code == 200, later.text
    warning = later.json()["warning"]
    assert "days after the store's last event" in warning and "gone quiet" in warning
    day_before = pd.Timestamp(cut) - pd.Timedelta(hours=30)
    older = client.post("/predict", json={"user_id": user, "as_of": day_before.isoformat() + "Z"})
    # known then if they had an event before that day's midnight (complete days only)
    con = connect(Settings(data_dir=served_data))
    EventStore(served_data / "store").register(con)
    first = con.execute("SELECT MIN(ts) FROM events WHERE user_id = ?", [user]).fetchone()[0]
    con.close()
    known = pd.Timestamp(first).tz_convert(None) < day_before.floor("D")
    assert older.status_code == (200 if known else 404), older.text
    if known:
        assert older.json()["as_of"] < now["as_of"]


def test_batch_limit_and_body_limit(client: TestClient) -> None:
    r = client.post("/predict/batch", json={"user_ids": ["1"] * 1001})
    assert r.status_code == 422 and "1000" in r.json()["message"]
    big = json.dumps({"user_ids": ["x" * 100] * 1000})
    r = client.post("/predict/batch", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "65536" in r.json()["message"]

    def chunks() -> Any:  # no Content-Length: the limit is counted while reading
        yield big.encode()

    r = client.post(
        "/predict/batch", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_write_endpoints_need_the_key(client: TestClient, anon: TestClient) -> None:
    event = {"ts": 1543622400000, "userId": "1", "page": "Home", "sessionId": 1}
    assert anon.post("/events", json={"events": [event]}).status_code == 401
    wrong = client.post("/events", json={"events": [event]}, headers={"X-API-Key": "no"})
    assert wrong.status_code == 401
    assert anon.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers=KEY).status_code == 200


def test_user_data_needs_the_key(client: TestClient, anon: TestClient) -> None:
    """With a key configured, every endpoint that shows users' risk, reasons or activity
    answers 401 without it, the dashboard included; ops endpoints stay open."""
    user = _a_user(client)
    calls = [
        ("POST", "/predict", {"user_id": user}),
        ("POST", "/predict", {"features": {"recency_days": 3.0}}),
        ("POST", "/predict/batch", {"user_ids": [user]}),
        ("GET", "/users/at-risk", None),
        ("GET", "/dashboard", None),
        ("GET", "/dashboard/api/overview", None),
        ("GET", "/dashboard/api/model", None),
        ("GET", "/dashboard/api/monitoring", None),
        ("GET", f"/dashboard/api/users/{user}", None),
    ]
    for method, path, body in calls:
        r = anon.request(method, path, json=body)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"].startswith("Basic")  # a browser asks for it
        assert "X-API-Key" in r.json()["message"]
        assert client.request(method, path, json=body).status_code == 200, path
    # a browser: HTTP basic auth with the key as password (any user name)
    page = anon.get("/dashboard", auth=("anyone", "s3cret"))
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert anon.get("/dashboard", auth=("anyone", "guess")).status_code == 401
    for path in ("/health", "/ready", "/metrics", "/openapi.json"):
        assert anon.get(path).status_code == 200, path


def test_405_says_what_is_allowed_and_a_bad_ref_keeps_the_model(client: TestClient) -> None:
    r = client.delete("/predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    before = client.get("/model").json()["version"]
    bad = client.post("/admin/reload", params={"ref": "not a reference"})
    assert bad.status_code == 422 and "ref" in bad.json()["message"]
    gone = client.post("/admin/reload", params={"ref": "models:/churnwatch/999"})
    assert gone.status_code == 404 and "models:/churnwatch/999" in gone.json()["message"]
    assert client.get("/model").json()["version"] == before  # still serving
    assert client.post("/predict", json={"features": {"recency_days": 3.0}}).status_code == 200


def test_the_schema_lists_the_served_models_features(client: TestClient) -> None:
    docs = client.get("/openapi.json").json()
    features = docs["components"]["schemas"]["Features"]
    served = client.get("/model").json()["features"]
    assert sorted(features["properties"]) == sorted(served)
    assert features["additionalProperties"] is False
    request = docs["components"]["schemas"]["PredictRequest"]
    assert request["properties"]["features"] == {"$ref": "#/components/schemas/Features"}
    assert len(request["oneOf"]) == 2  # user_id or features, never both


def test_events_are_validated_and_rejected_rows_come_back(
    client: TestClient, served_data: Path
) -> None:
    user = _a_user(client)
    before = client.post("/predict", json={"user_id": user}).json()
    last = client.get("/model").json()["population"]["as_of"]
    # a new day: scores cover complete days, so they move once an event of a later day arrives
    ts = int(__import__("pandas").Timestamp(last).timestamp() * 1000) + 25 * 3_600_000
    good = [
        {"ts": ts + i * 1000, "userId": user, "sessionId": 999_999, "page": "Thumbs Down",
         "auth": "Logged In", "level": "free", "itemInSession": i}
        for i in range(30)
    ]  # fmt: skip
    bad = [{"ts": "soon", "userId": user, "page": "Home"}, "not an object", {"page": "Home"}]
    r = client.post("/events", json={"events": good + bad}, headers=KEY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] == 30 and body["quarantined"] == 3 and body["scores_refreshed"]
    assert {q["reason"] for q in body["rejected"]} >= {"not_an_object", "missing_field"}
    assert all(q["message"] for q in body["rejected"])
    after = client.post("/predict", json={"user_id": user}).json()
    assert after["as_of"] > before["as_of"]  # the fresh day moved the cutoff
    again = client.post("/events", json={"events": good}, headers=KEY).json()
    assert again["stored"] == 0 and again["duplicates"] == 30
    # posted events are in Sparkify names, not the feed's format: `retrain --data` keeps
    # reading new files as the feed's last ingest did
    posted = [r for r in EventStore(served_data / "store").manifest().ingests if r["stored"] == 30]
    assert posted and posted[-1]["mapping"] is None


def test_ops_endpoints(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "alive"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["store"] is True
    assert client.post("/predict", json={"user_id": _a_user(client)}).status_code == 200
    text = client.get("/metrics").text
    assert 'churnwatch_requests_total{method="POST",route="/predict"' in text
    assert "churnwatch_prediction_probability_bucket" in text
    docs = client.get("/openapi.json").json()
    assert docs["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert "examples" in json.dumps(docs["components"]["schemas"]["PredictRequest"])
    # the retention plan and the risk at other horizons are part of the contract
    plan = docs["paths"]["/plan"]["post"]
    assert plan["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PlanRequest"
    )
    assert "/PlanResponse" in json.dumps(plan["responses"]["200"])
    assert "horizons" in docs["components"]["schemas"]["Prediction"]["properties"]


def test_no_model_answers_503(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with TestClient(create_app(Settings(data_dir=tmp_path)), raise_server_exceptions=False) as c:
        r = c.post("/predict", json={"features": {"level": "free"}})
        assert r.status_code == 503 and "churnwatch train" in r.json()["message"]
        message = r.json()["message"]  # said once, in one sentence each
        assert message.count("churnwatch train") == 1 and ".." not in message, message
        assert c.get("/ready").status_code == 503
        assert c.get("/health").status_code == 200


# -- fuzz: bad requests of every shape; none may get a 500 ---------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
feature_dicts = st.dictionaries(
    st.sampled_from(feature_names()) | st.text(max_size=12), json_values, max_size=6
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"features": feature_dicts}),
    st.fixed_dictionaries({"user_id": json_values}, optional={"as_of": json_values}),
    st.fixed_dictionaries({"user_ids": json_values}),
    st.fixed_dictionaries({"rows": st.lists(feature_dicts, max_size=3)}),
    st.fixed_dictionaries({"events": st.lists(json_values, max_size=3)}),
)
# the routes that read a body; /admin/reload reads none (its `ref` query is fuzzed by the
# Schemathesis contract test), and each call loads the model again, so it is sent the junk
# bodies once below instead of in every example
routes = st.sampled_from(["/predict", "/predict/batch", "/events"])


def test_a_body_sent_to_reload_is_ignored(client: TestClient) -> None:
    headers = {"content-type": "application/json", **KEY}
    for content in (b"\xff\x00{", b'{"ref": 1}', b"[1, 2", b"null"):
        r = client.post("/admin/reload", content=content, headers=headers)
        assert r.status_code == 200 and r.json()["version"] == r.json()["previous_version"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=routes, body=bodies, raw=st.booleans(), junk=st.binary(max_size=40))
def test_fuzzed_requests_never_get_a_500(
    client: TestClient, route: str, body: Any, raw: bool, junk: bytes
) -> None:
    headers = {"content-type": "application/json", **KEY}
    if raw:
        r = client.post(route, content=junk, headers=headers)
    else:
        r = client.post(route, content=json.dumps(body, allow_nan=True), headers=headers)
    assert r.status_code != 500, (route, body, r.text)
    assert r.status_code < 500 or r.status_code == 503, r.text
    assert "message" in r.json() or r.status_code == 200


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(st.sampled_from(["limit", "min_probability", "x"]), st.text(max_size=8))
)
def test_fuzzed_queries_never_get_a_500(client: TestClient, params: dict[str, str]) -> None:
    r = client.get("/users/at-risk", params=params)
    assert r.status_code in (200, 422), r.text


def test_at_risk_sorts_by_expected_loss_and_shows_value(client: TestClient) -> None:
    body = client.get("/users/at-risk", params={"limit": 30, "sort": "expected_loss"}).json()
    users = body["users"]
    losses = [u["expected_loss"] for u in users]
    assert losses == sorted(losses, reverse=True) and len(users) == 30
    for u in users:
        assert u["expected_loss"] == pytest.approx(u["probability"] * u["value"])
        # eventsim: a paid user is worth 9.99 per 30 days over 90 days, a free one nothing
        assert u["value"] == pytest.approx(29.97 if u["level"] == "paid" else 0.0)
    by_p = client.get("/users/at-risk", params={"limit": 30}).json()["users"]
    assert [u["probability"] for u in by_p] == sorted((u["probability"] for u in by_p),
                                                      reverse=True)  # fmt: skip
    bad = client.get("/users/at-risk", params={"sort": "value"})
    assert bad.status_code == 422 and "sort" in bad.json()["message"]


def test_plan_contacts_by_expected_net_gain_within_the_budget(client: TestClient) -> None:
    terms = {"budget": 5, "offer_cost": 0.5, "save_rate": 0.5, "limit": 50}
    r = client.post("/plan", json=terms)
    assert r.status_code == 200, r.text
    plan = r.json()
    users = plan["users"]
    assert 0 < plan["users_contacted"] <= 10 and len(users) == plan["users_contacted"]
    gains = [u["expected_net_gain"] for u in users]
    assert gains == sorted(gains, reverse=True) and min(gains) > 0
    for u in users:
        assert u["expected_net_gain"] == pytest.approx(u["probability"] * u["value"] * 0.5 - 0.5)
        assert u["reasons"]
    assert plan["cost"] == pytest.approx(0.5 * plan["users_contacted"])
    assert plan["expected_net"] == pytest.approx(sum(gains))
    curve = plan["curve"]
    assert curve[0] == {"contacted": 0, "expected_net": 0.0}
    assert max(p["expected_net"] for p in curve) == pytest.approx(plan["expected_net"])
    assert plan["why_nobody"] is None
    dear = client.post("/plan", json={**terms, "offer_cost": 100, "budget": 1000}).json()
    assert dear["users_contacted"] == 0 and "against 100.00" in dear["why_nobody"]
    for bad, field in (({**terms, "save_rate": 1.5}, "save_rate"),
                       ({**terms, "offer_cost": 0}, "offer_cost"),
                       ({**terms, "discount": 3}, "discount")):  # fmt: skip
        r = client.post("/plan", json=bad)
        assert r.status_code == 422 and field in r.json()["message"], r.text


def test_predict_gives_the_risk_at_every_horizon(client: TestClient) -> None:
    body = client.post("/predict", json={"user_id": _a_user(client)}).json()
    h = body["horizons"]
    assert list(h) == ["7", "14", "30", "60"]
    assert h["7"] < h["14"] < h["30"] < h["60"] <= 1
    assert h["14"] == pytest.approx(body["probability"])  # the served model's own horizon
    m = body["median_days_to_churn"]
    assert (m is None or m > 14) if body["probability"] < 0.5 else m <= 14


def test_retention_curves_start_at_one_and_never_rise(client: TestClient) -> None:
    r = client.get("/dashboard/api/retention")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["title"] == "Share not yet cancelled"  # the served model's definition
    assert client.get("/dashboard/api/overview").json()["churn"] == "cancel"
    assert body["by_level"] and body["by_cohort"]
    for curve in body["by_level"] + body["by_cohort"]:
        kept = curve["retained"]
        assert kept[0] == 1.0 and all(b <= a for a, b in itertools.pairwise(kept))
        assert curve["days"][0] >= 0 and curve["users"] >= 10
        # each point says how many users it rests on: from the first, someone is followed
        assert len(curve["at_risk"]) == len(kept) and all(n >= 1 for n in curve["at_risk"])
    bad = client.get("/dashboard/api/retention", params={"date": "1999-01-01"})
    assert bad.status_code == 404 and "scored day" in bad.json()["message"]


def test_a_model_trained_on_other_feature_definitions_is_flagged(
    client: TestClient, served_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The served model matches this churnwatch's features; had a definition changed since it
    was trained, /model would say so."""
    assert client.get("/model").json()["feature_warning"] is None
    import churnwatch.recipe as recipe_module

    monkeypatch.setattr(recipe_module, "feature_version", lambda spec=None: "0123456789ab")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with TestClient(create_app(Settings(data_dir=served_data))) as other:
        warning = other.get("/model").json()["feature_warning"]
    assert warning and "this churnwatch computes version 0123456789ab" in warning


class _Cycle:
    """Garbage only the cyclic collector can free: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


def test_a_load_freezes_the_heap_and_the_next_load_frees_what_it_froze(
    served_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full collection of a loaded service's heap holds the GIL about 200 ms, so the service
    freezes what is alive after a load: later collections skip it. A reload must still free
    what was frozen and has become garbage since (the previous model, its population)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    service = ChurnService(Settings(data_dir=served_data))
    garbage = _Cycle()
    gone = weakref.ref(garbage)
    try:
        service.load()
        assert gc.get_freeze_count() > 10_000  # the libraries and the model, left alone
        del garbage
        gc.collect()
        assert gone() is not None  # frozen: no collection walks it any more
        service.load()  # a reload: what was frozen and is now garbage goes
        assert gone() is None
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
