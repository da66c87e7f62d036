"""Logs compressed with gzip, bzip2, xz or zstd (Kafka sinks and warehouse unloads write the
last) are read as they stream, known by their first bytes; joined streams are one log, and a
truncated stream keeps every complete line before the cut."""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from test_ingest_bad_input import good, stored_rows

from churnwatch.config import Settings
from churnwatch.ingest import ingest, readers

CODECS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": (".gz", lambda b: gzip.compress(b, mtime=0)),
    "bzip2": (".bz2", bz2.compress),
    "xz": (".xz", lzma.compress),
    "zstd": (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
}


def lines(first: int, n: int) -> bytes:
    return b"".join(good(i, userId=str(i % 9 + 1)) + b"\n" for i in range(first, first + n))


@pytest.mark.parametrize("codec", CODECS)
def test_a_compressed_log_is_read_whole_and_joined_streams_as_one(
    codec: str, settings: Settings, tmp_path: Path
) -> None:
    suffix, compress = CODECS[codec]
    log = tmp_path / f"events.jsonl{suffix}"
    log.write_bytes(compress(lines(0, 3000)) + compress(lines(3000, 2000)))  # `cat a b`
    report = ingest([log], settings=settings)
    assert (report.lines_read, report.stored, report.quarantined) == (5000, 5000, 0)
    assert [line for (line,) in stored_rows(settings, "source_line")] == list(range(1, 5001))


@pytest.mark.parametrize("codec", CODECS)
def test_a_truncated_stream_keeps_the_lines_before_the_cut(
    codec: str, settings: Settings, tmp_path: Path
) -> None:
    suffix, compress = CODECS[codec]
    whole = compress(lines(0, 20_000))
    log = tmp_path / f"cut{suffix}"
    log.write_bytes(whole[: len(whole) * 3 // 4])
    report = ingest([log], settings=settings)
    kept = [line for (line,) in stored_rows(settings, "source_line")]
    assert 0 < len(kept) < 20_000
    assert kept == list(range(1, len(kept) + 1))  # every line before the cut, in order
    problem = next(p for p in report.file_problems if p["reason"] == "truncated_file")
    assert f"the {codec} stream ends early" in problem["detail"]


def test_damaged_zstd_data_is_a_corrupt_file(settings: Settings, tmp_path: Path) -> None:
    rng = random.Random(3)  # songs that do not compress: the damage lies past the first piece
    text = b"".join(good(i, song=rng.randbytes(24).hex()) + b"\n" for i in range(20_000))
    whole = zstandard.ZstdCompressor(write_checksum=True).compress(text)
    assert len(whole) > 2 * readers._FEED_BYTES
    at = len(whole) * 3 // 4
    log = tmp_path / "bad.jsonl.zst"
    log.write_bytes(whole[:at] + bytes(b ^ 0x5A for b in whole[at : at + 200]) + whole[at + 200 :])
    report = ingest([log], settings=settings)
    assert 0 < report.stored < 20_000  # what was decoded before the damage is kept
    assert any(
        p["reason"] == "corrupt_file" and "zstd data is corrupt" in p["detail"]
        for p in report.file_problems
    ), report.file_problems


def test_a_folder_reads_its_compressed_csv_and_skips_nothing(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    table = b"userId,ts,page\n" + b"".join(b"%d,%d,NextSong\n" % (i % 4 + 1, 1538352077000 + i)
                                            for i in range(100))  # fmt: skip
    (folder / "a.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(table))
    (folder / "b.jsonl.xz").write_bytes(lzma.compress(lines(0, 50)))
    report = ingest([folder], settings=settings)
    assert (report.stored, len(report.files)) == (150, 2)
    assert "skipped" not in caplog.text
