from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.config import Settings
from churnwatch.features.catalog import NEVER_FEATURES, catalog, markdown
from churnwatch.features.sql import snapshots_sql
from churnwatch.ingest import ingest
from churnwatch.labels import ChurnDefinition
from churnwatch.monitoring.drift import monitored_features
from churnwatch.serving.reasons import describe

ROOT = Path(__file__).resolve().parents[2]


def test_docs_features_md_is_the_generated_catalog() -> None:
    assert (ROOT / "docs" / "features.md").read_text() == markdown()


def test_catalog_names_are_unique_and_never_name_the_churn_act() -> None:
    names = [f.name for f in catalog()]
    assert len(names) == len(set(names))
    assert sum(f.seed for f in catalog()) == 7
    assert not any("cancel" in n or "auth" in n for n in names)
    assert "Cancellation Confirmation" in NEVER_FEATURES


def test_every_catalog_entry_carries_its_sql_phrase_and_drift_flag() -> None:
    """The catalog is the one definition: the snapshot SQL selects each entry's expression,
    reasons read each entry's phrase and drift watches exactly the flagged entries."""
    sql = snapshots_sql(ChurnDefinition())
    for f in catalog():
        assert f.sql and f"{f.sql} AS {f.name}" in sql
        assert f.phrase is not None, f.name
        value = "x" if f.kind == "category" else 3.0
        text = describe(f.name, value, {})
        assert text and not text.startswith(f.description), (f.name, text)
    names = [f.name for f in catalog()]
    watched = monitored_features(names)
    assert watched == [f.name for f in catalog() if f.drift]
    # all-history totals and tenure grow with time: never watched; windowed rates are
    assert not any(n.endswith("_all") or n.startswith("observed_days") for n in watched)
    assert "tenure_days" not in watched and "thumbs_down_per_day_7d" in watched


def test_cli_snapshots_and_features(small_sim: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest([small_sim], settings=Settings(store_dir=store))
    out = tmp_path / "snap.parquet"
    runner = CliRunner()
    result = runner.invoke(
        app, ["snapshots", "--store", str(store), "--out", str(out), "--horizon", "7"]
    )
    assert result.exit_code == 0, result.output
    assert "positives" in result.output and "225 features" in result.output
    table = pq.read_table(out)
    assert table.column_names[:2] == ["user_id", "cutoff"] and table.column_names[-1] == "label"

    result = runner.invoke(app, ["features", "--list"])
    assert result.exit_code == 0 and "distinct_artists *" in result.output
    result = runner.invoke(app, ["features"])
    assert result.exit_code == 0 and "225 features by family and window" in result.output
    assert "distinct_artists" not in result.output and "exposure" in result.output

    result = runner.invoke(app, ["snapshots", "--store", str(tmp_path / "none"), "--out", str(out)])
    assert result.exit_code == 1 and "run `churnwatch ingest` first" in result.output
    result = runner.invoke(
        app, ["snapshots", "--store", str(store), "--definition", "gone", "--out", str(out)]
    )
    assert result.exit_code == 1 and "definition has to be one of" in result.output
    # Parquet only, and said before any engine starts (it used to write Parquet to a .csv)
    csv = tmp_path / "snap.csv"
    result = runner.invoke(app, ["snapshots", "--store", str(store), "--out", str(csv),
                                 "--engine", "spark"])  # fmt: skip
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "expected --out ending in .parquet" in said, said
    assert "Got 'snap.csv'" in said and not csv.exists()
