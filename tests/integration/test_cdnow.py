"""The public CDNOW purchase log, raw, through the command line of the README's "Your own log":
every one of its 69,659 purchases stored, and nothing more on a second run.

CDNOW ships with `lifetimes` (a dependency, for the BG/NBD baseline) as whitespace-separated
text; the test writes it as the CSV a retention team would export (CRLF line ends) into a
temporary folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.ingest import EventStore

COMMAND = ["--map", "user_id=customer_id", "--map", "ts=date", "--ts-format", "%Y%m%d",
           "--ts-min", "1990-01-01", "--event-name", "purchase", "--map", "value=dollar_value",
           "--dedupe", "line"]  # fmt: skip


@pytest.fixture(scope="module")
def cdnow_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = resources.files("lifetimes.datasets").joinpath("CDNOW_master.txt").read_text()
    rows = [line.split() for line in text.splitlines() if line.strip()]
    assert rows[0] == ["customer_id", "date", "number_of_cds", "dollar_value"]
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.csv"
    path.write_bytes(("\r\n".join(",".join(r) for r in rows) + "\r\n").encode())
    return path


def test_cdnow_ingests_raw_every_purchase_once(cdnow_csv: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", str(cdnow_csv), *COMMAND, "--store", str(store)])
    assert first.exit_code == 0, first.output
    ingests = EventStore(store).manifest().ingests
    assert ingests[-1]["stored"] == 69_659 and ingests[-1]["quarantined"] == 0
    assert ingests[-1]["users"] == 23_570
    again = runner.invoke(app, ["ingest", str(cdnow_csv), *COMMAND, "--store", str(store)])
    assert again.exit_code == 0, again.output
    assert EventStore(store).manifest().ingests[-1]["stored"] == 0
    # under the default content rule, identical purchases on a day would have been one
    content = tmp_path / "content"
    rule = [a for a in COMMAND if a not in ("--dedupe", "line")]
    runner.invoke(app, ["ingest", str(cdnow_csv), *rule, "--store", str(content)])
    last = EventStore(content).manifest().ingests[-1]
    assert last["stored"] < 69_659 and last["repeated"] == 69_659 - last["stored"]
