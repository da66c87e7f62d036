"""A log piped in: `zcat export.gz | churnwatch ingest -`, or a stream from another tool. Its
rows are named by a hash of its bytes, so the same log piped again is known, and its problems
say that name, not the temporary file it was copied to (nor do an archive member's)."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from rich.progress import Progress
from test_ingest_bad_input import good, stored_rows
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.cli.common import BytesProgress
from churnwatch.config import Settings
from churnwatch.errors import InputError
from churnwatch.ingest import EventStore, ingest
from churnwatch.ingest.pipeline import PIPED

CLI = Path(sys.executable).parent / "churnwatch"


def lines(*numbers: int) -> bytes:
    return b"".join(good(i) + b"\n" for i in numbers)


def test_a_piped_gzip_log_is_read_beside_files_and_known_when_piped_again(
    settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "a.jsonl").write_bytes(lines(1, 2))
    piped = gzip.compress(lines(3, 4, 5), mtime=0)
    store = settings.store_path

    def run(data: bytes) -> subprocess.CompletedProcess[str]:
        cmd = [str(CLI), "ingest", str(tmp_path / "a.jsonl"), "-", "--store", str(store),
               "--dedupe", "line"]  # fmt: skip
        return subprocess.run(cmd, input=data, capture_output=True, timeout=300, check=False,
                              cwd=tmp_path,
                              env={"COLUMNS": "200", "PATH": ""}, text=False)  # fmt: skip

    first = run(piped)
    assert first.returncode == 0, first.stderr.decode()
    name = f"stdin-{hashlib.sha256(piped).hexdigest()[:32]}"
    rows = stored_rows(Settings(store_dir=store), "source_file, source_line")
    assert sorted(rows) == sorted(
        [(str(tmp_path / "a.jsonl"), 1), (str(tmp_path / "a.jsonl"), 2)]
        + [(name, n) for n in (1, 2, 3)]
    )
    again = run(piped)  # the same bytes: the same lines of the same source
    assert again.returncode == 0 and EventStore(store).manifest().ingests[-1]["stored"] == 0
    other = run(gzip.compress(lines(3, 4, 6), mtime=0))  # another log: read as new lines
    assert other.returncode == 0 and EventStore(store).manifest().ingests[-1]["stored"] == 3


def test_nothing_piped_is_an_error_and_writes_nothing(settings: Settings) -> None:
    result = CliRunner().invoke(
        app, ["ingest", "-", "--store", str(settings.store_path)], input=b""
    )
    assert result.exit_code == 1
    assert "expected a log on standard input for path '-'. Got 0 bytes." in " ".join(
        result.output.split()
    )
    assert not EventStore(settings.store_path).exists()


def test_a_terminal_is_not_read_as_a_log(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`churnwatch ingest -` typed at a prompt would wait for a log that never comes."""

    class Terminal(io.BytesIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    with pytest.raises(InputError, match="expected a log piped or redirected .* Got a terminal"):
        ingest(["-"], settings=settings)
    assert not EventStore(settings.store_path).exists()


def test_problems_name_the_source_not_the_copy_read(settings: Settings, tmp_path: Path) -> None:
    """A cut gzip piped in, or inside a zip, said the path of its copy in the store's staging
    folder, a folder removed when the ingest ends."""
    cut = gzip.compress(lines(*range(1, 400)), mtime=0)[:-200]
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as zf:
        zf.writestr("day1/events.jsonl.gz", cut)
    report = ingest([tmp_path / "export.zip", "-"], settings=settings, stdin=io.BytesIO(cut))
    name = f"stdin-{hashlib.sha256(cut).hexdigest()[:32]}"
    assert [(p["file"], p["reason"]) for p in report.file_problems] == [
        (f"{tmp_path / 'export.zip'}/day1/events.jsonl.gz", "truncated_file"),
        (name, "truncated_file"),
    ]
    for problem in report.file_problems:
        assert problem["detail"].startswith(f"{problem['file']}: "), problem["detail"]
        assert "staging" not in problem["detail"]


def test_a_piped_archive_is_read_as_its_members(settings: Settings, tmp_path: Path) -> None:
    """`curl .../export.zip | churnwatch ingest -`: known by its bytes, as a named file is."""
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as zf:
        zf.writestr("123/day1.jsonl.gz", gzip.compress(lines(1, 2), mtime=0))
        zf.writestr("123/day2.jsonl", lines(3))
    data = (tmp_path / "export.zip").read_bytes()
    report = ingest(["-"], settings=settings, stdin=io.BytesIO(data))
    name = f"stdin-{hashlib.sha256(data).hexdigest()[:32]}"
    assert report.files == [f"{name}/123/day1.jsonl.gz", f"{name}/123/day2.jsonl"]
    assert (report.valid, report.quarantined) == (3, 0)


def test_a_piped_workbook_or_archive_without_logs_is_called_standard_input(
    settings: Settings, tmp_path: Path
) -> None:
    """The error named `stdin-<hash>`, a name the user never gave."""
    book = tmp_path / "book.xlsx"
    with zipfile.ZipFile(book, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
    photos = tmp_path / "photos.zip"
    with zipfile.ZipFile(photos, "w") as zf:
        zf.writestr("a.jpg", b"jpeg")
    for piped, said in [(book, "Got standard input ('-'), an Office document"),
                        (photos, "zip archive standard input ('-') holds no")]:  # fmt: skip
        with pytest.raises(InputError) as err:
            ingest(["-"], settings=settings, stdin=io.BytesIO(piped.read_bytes()))
        assert said in str(err.value) and "stdin-" not in str(err.value)


def test_the_copy_of_a_piped_log_is_shown_as_it_goes(settings: Settings) -> None:
    """A large pipe is copied to disk before it is read: that copy told nobody, so
    `zcat big.gz | churnwatch ingest -` showed nothing until it was done. Its bytes are told as
    they are copied, of a size not known until the end; the bar then finishes, with its speed."""
    data = lines(*range(1, 30_000))  # about 3 MB: several blocks of the copy
    told: list[tuple[str, int, int]] = []
    ingest(["-"], settings=settings, stdin=io.BytesIO(data),
           progress=lambda *call: told.append(call))  # fmt: skip
    piped = [(done, size) for name, done, size in told if name == PIPED]
    assert len(piped) > 2 and sum(done for done, _ in piped) == len(data)
    assert [size for _, size in piped] == [0] * (len(piped) - 1) + [len(data)]
    read = f"stdin-{hashlib.sha256(data).hexdigest()[:32]}"
    assert sum(done for name, done, _ in told if name == read) == len(data)

    with Progress() as bar:
        shown = BytesProgress(bar, "reading")
        for done, size in piped:
            shown(PIPED, done, size)
        (task,) = bar.tasks
    assert (task.total, task.completed, task.finished) == (len(data), len(data), True)
    assert task.finished_speed is not None
