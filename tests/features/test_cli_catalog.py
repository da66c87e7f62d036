from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.config import Settings
from churnwatch.features.catalog import NEVER_FEATURES, catalog, markdown
from churnwatch.ingest import ingest

ROOT = Path(__file__).resolve().parents[2]


def test_docs_features_md_is_the_generated_catalog() -> None:
    assert (ROOT / "docs" / "features.md").read_text() == markdown()


def test_catalog_names_are_unique_and_never_name_the_churn_act() -> None:
    names = [f.name for f in catalog()]
    assert len(names) == len(set(names))
    assert sum(f.seed for f in catalog()) == 7
    assert not any("cancel" in n or "auth" in n for n in names)
    assert "Cancellation Confirmation" in NEVER_FEATURES


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

    result = runner.invoke(app, ["snapshots", "--store", str(tmp_path / "none"), "--out", str(out)])
    assert result.exit_code == 1 and "run `churnwatch ingest` first" in result.output
    result = runner.invoke(
        app, ["snapshots", "--store", str(store), "--definition", "gone", "--out", str(out)]
    )
    assert result.exit_code == 1 and "definition has to be one of" in result.output
