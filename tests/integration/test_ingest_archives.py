"""A zip archive is read as the log files it holds (Amplitude exports a zip of gzip JSON
files): each row keeps its member and line, as `archive.zip/member`; a damaged member or
archive is a problem of that source while the rest is read."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import duckdb
import pytest
from test_ingest_bad_input import good, quarantine_rows
from test_ingest_many_files import write_parts

from churnwatch.config import Settings
from churnwatch.errors import InputError
from churnwatch.ingest import EventStore, ingest
from churnwatch.schema import ColumnMapping


def zip_folder(folder: Path, archive: Path, *, prefix: str = "123/") -> list[str]:
    """Zip every file of `folder` under `prefix`, with what a real archive also holds: a
    README, macOS's resource copies and a folder entry. The log members' names."""
    names = []
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if prefix:
            zf.writestr(prefix, "")
        for path in sorted(folder.iterdir()):
            zf.write(path, prefix + path.name)
            names.append(prefix + path.name)
        zf.writestr("README.txt", "an export\n")
        zf.writestr(f"__MACOSX/{prefix}._{names[0].rsplit('/', 1)[-1]}", b"\x00\x05")
    return names


def tar_folder(folder: Path, archive: Path, *, prefix: str = "123/") -> list[str]:
    """As `zip_folder`, as a tar (compressed as the archive's suffix says)."""
    names = []
    mode = "w:gz" if archive.name.endswith(".gz") else "w"
    with tarfile.open(archive, mode) as tf:
        for path in sorted(folder.iterdir()):
            tf.add(path, prefix + path.name)
            names.append(prefix + path.name)
        for name, data in [("README.txt", b"an export\n"), (f"{prefix}._x.json", b"\x00")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return names


def read_member(archive: Path, name: str) -> bytes:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            return zf.read(name)
    with tarfile.open(archive) as tf:
        member = tf.extractfile(name)
        assert member is not None
        return member.read()


def stored(settings: Settings) -> list[tuple[str, int, str, int, str]]:
    return (
        duckdb.connect()
        .execute(
            "SELECT source_file, source_line, user_id, epoch_ms(ts), page FROM read_parquet($f) "
            "ORDER BY ALL",
            {"f": EventStore(settings.store_path).files("events")},
        )
        .fetchall()
    )


@pytest.mark.parametrize("name", ["export.zip", "export.tar.gz"])
def test_an_archive_is_read_as_its_members_with_their_lines(
    name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    want = write_parts(tmp_path / "parts", 25)
    archive = tmp_path / name
    pack = zip_folder if name.endswith(".zip") else tar_folder
    members = pack(tmp_path / "parts", archive)
    unzipped = Settings(data_dir=tmp_path / "a", chunk_bytes=1 << 16)
    zipped = Settings(data_dir=tmp_path / "b", chunk_bytes=1 << 16)
    plain = ingest([tmp_path / "parts"], settings=unzipped)
    report = ingest([archive], settings=zipped)

    assert "skipped 1 member(s)" in caplog.text and "README.txt" in caplog.text
    assert report.files == [f"{archive}/{m}" for m in members]
    assert (report.lines_read, report.stored, report.quarantined) == (
        plain.lines_read, plain.stored, plain.quarantined,
    )  # fmt: skip
    assert report.lines_read == len(want)
    rows = stored(zipped)
    member = {f"{archive}/123/{Path(f).name}": f for f, _ in want}
    assert [(member[f], *rest) for f, *rest in rows] == stored(unzipped)
    for source, line, user, ts, _ in rows:  # the row is its member's line
        member_name = source.removeprefix(f"{archive}/")
        data = read_member(archive, member_name)
        text = gzip.decompress(data) if member_name.endswith(".gz") else data
        event = json.loads(text.split(b"\n")[line - 1])
        assert (event.get("userId", event.get("user_id")), event["ts"]) == (user, ts)
    rejected = quarantine_rows(report.quarantine_file or "")
    bad = {(r["source_file"], r["line"]): r["reason"] for r in rejected if r["line"]}
    assert bad == {(f"{archive}/123/{Path(f).name}", n): o for (f, n), o in want.items()
                   if o != "ok"}  # fmt: skip
    assert not (zipped.store_path / "_staging").exists() or not any(
        (zipped.store_path / "_staging").iterdir()
    )  # the members were unpacked for the ingest only


def test_a_folder_of_archives_is_read_and_line_dedupe_knows_them_again(
    tmp_path: Path, settings: Settings
) -> None:
    """Archives in a folder are not skipped as files of an unknown suffix; their members'
    lines are the same lines when the archive is delivered again."""
    (tmp_path / "day1").mkdir()
    (tmp_path / "day1" / "a.csv").write_text("customer,day\n1,20180101\n1,20180101\n")
    (tmp_path / "in").mkdir()
    zip_folder(tmp_path / "day1", tmp_path / "in" / "day1.zip", prefix="")
    mapping = ColumnMapping.from_options(["user_id=customer", "ts=day"], ts_format="%Y%m%d",
                                         event_name="purchase", dedupe="line")  # fmt: skip
    first = ingest([tmp_path / "in"], settings=settings, mapping=mapping)
    assert (first.stored, first.duplicates) == (2, 0)
    again = ingest([tmp_path / "in" / "day1.zip"], settings=settings, mapping=mapping)
    assert (again.stored, again.duplicates) == (0, 2)


def test_damaged_archives_and_members_are_problems_and_the_rest_is_read(
    tmp_path: Path, settings: Settings
) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("good.json", b"\n".join(good(i) for i in range(3)) + b"\n")
        zf.writestr("bad.json", b"\n".join(good(10 + i) for i in range(3)) + b"\n")
    data = archive.read_bytes()
    at = data.index(b'"ts": 1538352087000')  # inside bad.json's stored bytes: its CRC fails
    archive.write_bytes(data[:at] + b'"ts": 1538352087001' + data[at + 19 :])
    cut = tmp_path / "cut.zip"  # no central directory: not readable as an archive
    cut.write_bytes(data[: len(data) // 2])

    report = ingest([archive, cut], settings=settings)
    assert report.stored == 3
    problems = {p["file"]: p for p in report.file_problems}
    assert problems[f"{archive}/bad.json"]["reason"] == "corrupt_file"
    assert "cannot be unpacked" in problems[f"{archive}/bad.json"]["detail"]
    assert problems[str(cut)]["reason"] == "corrupt_file"
    assert problems[str(cut)]["detail"].startswith(f"{cut}: ")


def test_an_archive_without_a_log_says_what_it_holds(tmp_path: Path, settings: Settings) -> None:
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.png", b"\x89PNG")
    with pytest.raises(
        InputError, match=r"photos.zip holds no .json/.* file; it holds 1 other file"
    ):
        ingest([archive], settings=settings)


def test_an_archive_saved_without_a_suffix_is_known_by_its_bytes(
    tmp_path: Path, settings: Settings
) -> None:
    archive = tmp_path / "download"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("events.jsonl", good(1) + b"\n")
    assert ingest([archive], settings=settings).stored == 1


def test_a_truncated_tar_keeps_its_complete_members(tmp_path: Path, settings: Settings) -> None:
    """A tar is one stream: where it is cut, the members before are read, and the archive is a
    `corrupt_file`; and a member named `../x` stays inside the unpack folder."""
    archive = tmp_path / "export.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for k in range(6):
            data = b"".join(good(k * 1000 + i, userId=str(k + 1)) + b"\n" for i in range(400))
            info = tarfile.TarInfo(f"../day{k}.jsonl" if k == 0 else f"day{k}.jsonl")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    whole = archive.read_bytes()
    full = ingest([archive], settings=settings)
    assert (full.stored, len(full.files)) == (2400, 6)
    assert not (settings.store_path / "_staging" / "day0.jsonl").exists()
    assert not list(tmp_path.glob("**/day0.jsonl"))  # nothing was written outside either

    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    other = Settings(data_dir=tmp_path / "other")
    report = ingest([cut], settings=other)
    assert 0 < len(report.files) < 6 and report.stored >= 400 * (len(report.files) - 1)
    problem = next(p for p in report.file_problems if p["file"] == str(cut))
    assert problem["reason"] == "corrupt_file" and "tar archive is damaged" in problem["detail"]


def test_a_tar_saved_without_a_suffix_is_known_by_its_bytes(
    tmp_path: Path, settings: Settings
) -> None:
    archive = tmp_path / "download"
    with tarfile.open(archive, "w") as tf:
        data = good(1) + b"\n"
        info = tarfile.TarInfo("events.jsonl")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    report = ingest([archive], settings=settings)
    assert (report.stored, report.files) == (1, [f"{archive}/events.jsonl"])


def test_a_workbook_is_named_as_such_and_skipped_in_a_folder(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A workbook is a zip: named, it says what to do; in a folder it is skipped with the
    other files that are not logs, not unpacked as an archive that holds no log."""
    folder = tmp_path / "export"
    folder.mkdir()
    with zipfile.ZipFile(folder / "book.xlsx", "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
    (folder / "events.jsonl").write_bytes(good(1) + b"\n")
    with pytest.raises(InputError, match=r"an Office document .*save its sheet as CSV UTF-8"):
        ingest([folder / "book.xlsx"], settings=settings)
    assert ingest([folder], settings=settings).stored == 1
    assert "skipped 1 file(s)" in caplog.text and "book.xlsx" in caplog.text
    # an Excel 97-2003 workbook is no zip: its bytes were read as lines, and the error
    # suggested --encoding
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    with pytest.raises(InputError, match=r"Got .*old.xls, an Office 97-2003 document .*CSV UTF-8"):
        ingest([tmp_path / "old.xls"], settings=settings)
