"""Readers: turn input files into Arrow batches, streaming, with exact line numbers.

A reader never checks values: it hands raw lines or records (JSON) or raw columns (CSV,
Parquet) to the validator, so that whatever is wrong with a row can be reported with its line
and text. (A JSON document is parsed only to find where each record ends.)
Problems that concern a whole file (empty, truncated, not readable) come out as `FileProblem`.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import functools
import glob
import io
import itertools
import json
import logging
import lzma
import queue
import re
import shutil
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import zstandard
from isal import isal_zlib

from churnwatch.errors import InputError
from churnwatch.schema import TRUTH_SUFFIX

log = logging.getLogger(__name__)

Format = Literal["json", "csv", "parquet"]
Progress = Callable[[int], None]  # called with the number of input bytes consumed since last call

GZIP_MAGIC = b"\x1f\x8b"
# streams with gzip's interface (decompress, eof, unused_data): name, decompressor, its error
_STREAMS: dict[bytes, tuple[str, Callable[[], Any], type[Exception]]] = {
    GZIP_MAGIC: ("gzip", lambda: isal_zlib.decompressobj(31), isal_zlib.error),  # type: ignore[dict-item]  # isal's stub types its error as an instance
    b"BZh": ("bzip2", bz2.BZ2Decompressor, OSError),
    b"\xfd7zXZ\x00": ("xz", lzma.LZMADecompressor, lzma.LZMAError),
    b"\x28\xb5\x2f\xfd": (
        "zstd",
        lambda: zstandard.ZstdDecompressor().decompressobj(),
        zstandard.ZstdError,
    ),
}
_COMPRESSIONS = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd")
PARQUET_MAGIC = b"PAR1"
_READ_BYTES = 1 << 20  # compressed bytes read from disk at a time
_FEED_BYTES = 1 << 18  # compressed bytes decompressed at a time
_SUFFIXES: dict[str, Format] = {
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class LineBatch:
    """Raw lines of a JSON-lines file: columns `line` (1-based) and `raw` (bytes, newline kept)."""

    table: pa.Table


@dataclass(frozen=True)
class ColumnBatch:
    """Rows of a tabular file: its own columns plus `line` (the row's line, 1-based)."""

    table: pa.Table


@dataclass(frozen=True)
class FileProblem:
    """Something wrong with a file or one of its lines that no row-level check can see."""

    reason: str
    detail: str
    line: int | None = None
    raw: str | None = None


Item = LineBatch | ColumnBatch | FileProblem


def _truth(path: Path) -> bool:
    """Whether the file is the ground truth `churnwatch simulate` wrote beside a log."""
    return path.name.endswith(TRUTH_SUFFIX)


def _without_truth(files: list[Path], where: str) -> list[Path]:
    """`files` without simulated ground truths, said in a warning: a folder or glob that holds
    a simulated log holds its truth too, and its rows are no events (each was quarantined)."""
    truths = [f.name for f in files if _truth(f)]
    if truths:
        log.warning(
            "skipped %d file(s) in %s that are the ground truth of a simulated log (*%s), not "
            "events: %s", len(truths), where, TRUTH_SUFFIX, ", ".join(truths[:5]),
        )  # fmt: skip
    return [f for f in files if not _truth(f)]


def expand_paths(specs: Sequence[str | Path]) -> list[Path]:
    """Files named by paths, directories (searched recursively) and glob patterns, sorted. A
    simulated log's ground truth is left out of a directory or glob, and refused by name."""
    files: list[Path] = []
    for spec in specs:
        text = str(spec)
        path = Path(text)
        if path.is_dir():
            visible = _without_truth(sorted(
                p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path).parts)
            ), text)  # fmt: skip
            found = [p for p in visible if format_from_suffix(p) or archive_kind(p, sniff=False)]
            if not found:
                raise InputError(
                    f"directory {text} holds no .json/.jsonl/.csv/.parquet file or archive"
                )
            other = [str(p.relative_to(path)) for p in visible if p not in found]
            if other:  # an export named events.log would otherwise be left out unnoticed
                shown = ", ".join(other[:5]) + (
                    f" and {len(other) - 5} more" if len(other) > 5 else ""
                )
                log.warning(
                    "skipped %d file(s) in %s whose suffix is not a log's (%s, optionally .gz, "
                    ".bz2, .xz or .zst, or a .zip or .tar archive): %s; name a file to read it "
                    "whatever its suffix",
                    len(other), text, "/".join(_SUFFIXES), shown,
                )  # fmt: skip
            files.extend(found)
        elif path.is_file():
            if _truth(path):
                log_name = path.name.removesuffix(TRUTH_SUFFIX)
                raise InputError(
                    f"expected a log file. Got {text}, the ground truth `churnwatch simulate` "
                    f"wrote beside the log {log_name}.jsonl.gz (or .parquet): ingest the log; "
                    "train and evaluate read the truth beside it"
                )
            files.append(path)
        elif any(ch in text for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matched:
                raise InputError(f"glob {text!r} matched no file")
            logs = _without_truth(matched, repr(text))
            if not logs:
                raise InputError(
                    f"glob {text!r} matched only the ground truth of simulated logs "
                    f"(*{TRUTH_SUFFIX}), no log"
                )
            files.extend(logs)
        else:
            raise InputError(f"expected an existing file, directory or glob. Got {text!r}.")
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Office 97-2003 files: .xls, .doc


def _starts_with(path: Path, magic: bytes) -> bool:
    """Whether the file's first bytes are `magic` (a format's mark)."""
    with path.open("rb") as fh:
        return fh.read(len(magic)) == magic


_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ArchiveKind = Literal["zip", "tar"]


def archive_kind(path: Path, *, sniff: bool = True) -> ArchiveKind | None:
    """A zip or tar archive (tar plain, gzip, bzip2 or xz): by its suffix, or with `sniff` by
    its bytes when the suffix names no format (an export saved without one); None for a log
    file. (A folder's files are not sniffed: a workbook or a document is a zip too.)"""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    if not sniff or format_from_suffix(path) is not None:
        return None
    if _starts_with(path, ZIP_MAGIC):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except (OSError, EOFError, tarfile.TarError, zlib.error, lzma.LZMAError):
        return None


@dataclass(frozen=True)
class Input:
    """A file to read, and the name its rows and problems carry: the file itself, or
    `archive.zip/member` for a member unpacked from an archive."""

    path: Path
    source: str
    shown: str = ""
    """What an error that stops the ingest calls it, when not `source` (a piped log's source is
    `stdin-<hash>`, which the user never named)."""

    @property
    def said(self) -> str:
        return self.shown or self.source


def unpack_archives(
    files: Sequence[Input], folder: Path
) -> tuple[list[Input], list[tuple[str, FileProblem]]]:
    """The files to read: each file as it is, and in place of a zip or tar archive its
    members with a log's suffix, unpacked under `folder` in their own folders (so a member's
    `column=value` folders are partitions, as in a directory). Amplitude, for one, exports a
    zip of gzip JSON files. A damaged archive or member is a problem of that source; every
    member unpacked before it is read."""
    inputs: list[Input] = []
    problems: list[tuple[str, FileProblem]] = []
    for k, given in enumerate(files):
        path, origin, said = given.path, given.source, given.said
        kind = archive_kind(path)
        if kind is None:
            if format_from_suffix(path) is None and _starts_with(path, OLE2_MAGIC):
                raise InputError(
                    f"expected a log file or an archive of them. Got {said}, an Office "
                    "97-2003 document (an .xls workbook?): save its sheet as CSV UTF-8 and "
                    "ingest that"
                )
            inputs.append(given)
            continue
        seen: list[str] = []
        found = 0
        try:
            for name, open_member in _members(path, kind):
                parts = _safe_parts(name)
                if not parts or _hidden(parts):
                    continue  # as in a directory
                seen.append(name)
                if format_from_suffix(Path(name)) is None:
                    continue
                found += 1
                source = f"{origin}/{'/'.join(parts)}"
                target = folder.joinpath(f"{k:05d}", *parts)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open_member() as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                except _ARCHIVE_ERRORS as exc:
                    target.unlink(missing_ok=True)
                    _raise_system_error(exc)
                    problems.append((source, _bad_member(source, exc)))
                    continue
                inputs.append(Input(target, source))
        except _ARCHIVE_ERRORS as exc:
            _raise_system_error(exc)
            detail = f"{origin}: {kind} archive is damaged ({exc or type(exc).__name__})"
            problems.append((origin, FileProblem("corrupt_file", detail)))
            continue
        if not found and "[Content_Types].xml" in seen:  # Office Open XML: .xlsx, .docx
            raise InputError(
                f"expected a log file or an archive of them. Got {said}, an Office document "
                "(a workbook?): save its sheet as CSV UTF-8 and ingest that"
            )
        if not found:
            raise InputError(
                f"{kind} archive {said} holds no .json/.jsonl/.csv/.parquet file; "
                f"it holds {len(seen)} other file(s)"
            )
        skipped = [n for n in seen if format_from_suffix(Path(n)) is None]
        if skipped:
            log.warning(
                "skipped %d member(s) of %s that are not logs: %s",
                len(skipped), origin, ", ".join(skipped[:5]),
            )  # fmt: skip
    return inputs, problems


_ARCHIVE_ERRORS = (
    zipfile.BadZipFile, tarfile.TarError, RuntimeError, EOFError, OSError, zlib.error,
    lzma.LZMAError,
)  # fmt: skip


def _raise_system_error(exc: BaseException) -> None:
    """A full disk or a permission is the machine's problem, not the archive's: raised."""
    if isinstance(exc, OSError) and exc.errno is not None:
        raise exc


def _members(path: Path, kind: ArchiveKind) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    """An archive's files in order: name, and how to open it. A tar is read as a stream,
    once: each member has to be opened before the next is asked for."""
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield info.filename, functools.partial(archive.open, info)
        return
    with tarfile.open(path, mode="r|*") as tar:
        for member in tar:
            if member.isfile():
                yield member.name, functools.partial(_tar_member, tar, member)


def _tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    found = tar.extractfile(member)
    if found is None:  # isfile() members always have data
        raise tarfile.ExtractError(f"{member.name} holds no data")
    return found


def _safe_parts(name: str) -> list[str]:
    """A member's path inside the unpack folder: no root, no `..`, whatever the archive says."""
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]


def _bad_member(source: str, exc: BaseException) -> FileProblem:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, RuntimeError) and "encrypted" in detail:
        return FileProblem("unreadable_file", f"{source} is encrypted; unzip it with its password")
    return FileProblem("corrupt_file", f"{source}: cannot be unpacked ({detail})")


def _hidden(parts: Iterable[str]) -> bool:
    """A file not to read, in a directory or an archive: under a `.x` or `_x` name (Spark's
    `_SUCCESS`, macOS's `__MACOSX/` copies)."""
    return any(part.startswith((".", "_")) for part in parts)


def prefetch(items: Iterator[Item], *, depth: int) -> Iterator[Item]:
    """Run `items` in a background thread, `depth` items ahead, so that reading and
    decompressing overlap with validation (both release the GIL). Errors are re-raised here."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                box.put(("item", item))
            box.put(("done", None))
        except BaseException as exc:  # handed to the consumer
            box.put(("error", exc))

    thread = threading.Thread(target=work, name="churnwatch-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                box.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


class BatchStream:
    """One file's batches as a single Arrow stream, for one DuckDB query over the whole file.

    Problems met while reading (a truncated gzip, a bad CSV row) are kept in `problems`, the
    rows handed on counted in `rows`. An exception raised while reading is kept in `error`:
    DuckDB only sees that the stream failed, and the caller re-raises the original.
    """

    def __init__(self, items: Iterator[Item]) -> None:
        self.problems: list[FileProblem] = []
        self.rows = 0
        self.error: BaseException | None = None
        self._items = items
        self.first: LineBatch | ColumnBatch | None = None
        for item in items:  # problems before the first batch (an empty or damaged file)
            if isinstance(item, FileProblem):
                self.problems.append(item)
            else:
                self.first = item
                break

    @property
    def schema(self) -> pa.Schema:
        if self.first is None:
            raise ValueError("the stream has no batch")
        return self.first.table.schema

    def reader(self) -> pa.RecordBatchReader:
        """The batches, the first one included; readable once."""
        return pa.RecordBatchReader.from_batches(self.schema, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        schema = self.schema
        try:
            item: Item | None = self.first
            rest = iter(self._items)
            while item is not None:
                if isinstance(item, FileProblem):
                    self.problems.append(item)
                else:
                    table = item.table
                    if table.schema != schema:
                        raise InputError(
                            f"expected every chunk of a file to have the columns {schema.names}. "
                            f"Got {table.schema.names}."
                        )
                    self.rows += table.num_rows
                    yield from table.to_batches()
                item = next(rest, None)
        except GeneratorExit:  # the query stopped reading (it failed): not a reading error
            raise
        except BaseException as exc:  # kept for the caller: DuckDB would only show its text
            self.error = exc
            raise
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # stops a prefetching thread


def format_from_suffix(path: Path) -> Format | None:
    """The file's format from its suffix (ignoring a compression's: .gz, .bz2, .xz, .zst);
    None when the suffix does not say."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    return _SUFFIXES.get(suffixes[-1]) if suffixes else None


def detect_format(path: Path, *, encoding: str | None = None) -> Format:
    """The file's format from its suffix (ignoring a compression's), else from its first
    bytes: Parquet's mark; JSON when the text starts with `{` or `[`; CSV when its first line
    holds a delimiter (`events.txt` saved by a spreadsheet); else JSON lines, the native
    format, whose checks then say what each line is."""
    known = format_from_suffix(path)
    if known is not None:
        return known
    if _starts_with(path, PARQUET_MAGIC):
        return "parquet"
    head = b""
    for block in _decompressed_blocks(path, lambda n: None, encoding):
        if isinstance(block, FileProblem):
            break
        head += block
        if b"\n" in head or len(head) >= 1 << 16:
            break
    text = head.lstrip()
    first = text.split(b"\n", 1)[0]
    if not text.startswith((b"{", b"[")) and any(d.encode() in first for d in _DELIMITERS):
        return "csv"
    return "json"


def read_file(
    path: Path, fmt: Format, *, chunk_bytes: int, progress: Progress, encoding: str | None = None
) -> Iterator[Item]:
    """Stream one file as batches and problems, whatever its format. The rows of a CSV or
    Parquet file in a partition folder (`level=paid/`) get the partition's column when the
    file does not have it. A text file without a byte order mark is read in `encoding`
    (default UTF-8)."""
    if path.stat().st_size == 0:
        yield FileProblem("empty_file", f"{path} is empty (0 bytes)")
        return
    if fmt == "json":
        yield from read_json(path, chunk_bytes=chunk_bytes, progress=progress, encoding=encoding)
        return
    if fmt == "csv":
        items = read_csv(path, chunk_bytes=chunk_bytes, progress=progress, encoding=encoding)
    else:
        items = read_parquet(path, progress=progress)
    partitions = hive_partitions(path)
    for item in items:
        if isinstance(item, ColumnBatch) and partitions:
            table = item.table
            for name, value in partitions.items():
                if name not in table.schema.names:
                    table = table.append_column(
                        name, pa.repeat(pa.scalar(value, pa.string()), table.num_rows)
                    )
            item = ColumnBatch(table)
        yield item


_PARTITION = re.compile(r"([^=]+)=(.*)")
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def hive_partitions(path: Path) -> dict[str, str | None]:
    """The `column=value` folders a file sits in, innermost last, as Spark's `partitionBy`
    (and pyarrow, DuckDB, Hive) write a dataset: the files do not hold these columns. Values
    are URL-decoded; Hive's null partition is None."""
    found: dict[str, str | None] = {}
    for folder in path.parents:
        match = _PARTITION.fullmatch(folder.name)
        if match is None:
            break
        name, value = unquote(match[1]), unquote(match[2])
        found.setdefault(name, None if value == HIVE_NULL else value)
    return dict(reversed(found.items()))


def _decompressed_blocks(
    path: Path, progress: Progress, encoding: str | None = None
) -> Iterator[bytes | FileProblem]:
    """Yield decompressed blocks as UTF-8: without the UTF-8 byte order mark that files saved
    on Windows start with (it made the first JSON line invalid and the first CSV column name
    unknown), and re-encoded from UTF-16 or UTF-32 when the file starts with their mark (Excel's
    "Unicode text", Windows PowerShell's `Out-File`), else from `encoding` when one other than
    UTF-8 is given (a mark says more than an option: it is the file's own), else from UTF-16
    or UTF-32 when the zero bytes of its first characters say so; a damaged
    compressed stream ends with a FileProblem, keeping all data decoded before the damage.
    Concatenated gzip members are read as one stream. Lines that end with a carriage return
    alone (Excel for Mac's "CSV (Macintosh)") end with a newline."""
    return _newlines(_text_blocks(path, progress, encoding))


def _newlines(blocks: Iterator[bytes | FileProblem]) -> Iterator[bytes | FileProblem]:
    """`blocks` as they are, unless the first line ends with a carriage return that no newline
    follows: then every carriage return is a newline (the file was read as one header line,
    and its rows were lost without a word)."""
    for block in blocks:
        if isinstance(block, FileProblem):
            yield block
            continue
        r, n = block.find(b"\r"), block.find(b"\n")
        if r < 0 and n < 0:  # no line has ended yet
            yield block
            continue
        # (a first line that ends on a block's last byte is left as it is: rare, and unsure)
        if not (0 <= r < len(block) - 1 and (n < 0 or r < n) and block[r + 1] != ord("\n")):
            yield block
            yield from blocks
            return
        yield block.replace(b"\r", b"\n")
        for rest in blocks:
            yield rest if isinstance(rest, FileProblem) else rest.replace(b"\r", b"\n")
        return


def _text_blocks(
    path: Path, progress: Progress, encoding: str | None
) -> Iterator[bytes | FileProblem]:
    """The file's blocks as UTF-8 (see `_decompressed_blocks`)."""
    blocks = _raw_blocks(path, progress)
    for block in blocks:
        if isinstance(block, FileProblem) or not block:
            yield block
            continue
        marked = next((e for bom, e in _WIDE_BOMS if block.startswith(bom)), None)
        if marked is None and block.startswith(UTF8_BOM):
            marked = "utf-8"
        if marked is None and encoding is None:
            # UTF-16 or UTF-32 without a mark, known by where its first characters' zero bytes
            # fall (a log starts with ASCII: `{`, a column name), as Python's json.loads does
            guessed = json.detect_encoding(block[:4])
            marked = None if guessed == "utf-8" else guessed
        if marked is None and encoding is not None and not _is_utf8(encoding):
            yield from _to_utf8(encoding, itertools.chain([block], blocks))
        elif marked in (None, "utf-8"):
            yield block.removeprefix(UTF8_BOM)
            yield from blocks
        else:
            yield from _to_utf8(marked, itertools.chain([block], blocks))
        return


def _is_utf8(encoding: str) -> bool:
    """UTF-8 is read as it is: its rows that are not UTF-8 are quarantined, not replaced."""
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def _to_utf8(encoding: str, blocks: Iterable[bytes | FileProblem]) -> Iterator[bytes | FileProblem]:
    """`blocks` in `encoding` as UTF-8, one block at a time (a UTF-16/32 byte order mark is
    dropped); a byte or code unit that is not text in it becomes U+FFFD."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    for block in blocks:
        yield block if isinstance(block, FileProblem) else decoder.decode(block).encode()
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail.encode()


# UTF-32's marks first: UTF-32-LE's starts with UTF-16-LE's
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)  # fmt: skip
UTF8_BOM = b"\xef\xbb\xbf"


def _raw_blocks(path: Path, progress: Progress) -> Iterator[bytes | FileProblem]:
    """The file's bytes, decompressed when it starts as a gzip, bzip2, xz or zstd stream
    does (whatever its suffix)."""
    with path.open("rb") as fh:
        first = fh.read(_READ_BYTES)
        progress(len(first))
        stream = next((v for k, v in _STREAMS.items() if first.startswith(k)), None)
        if stream is None:
            block = first
            while block:
                yield block
                block = fh.read(_READ_BYTES * 16)
                progress(len(block))
            return
        name, decompressor, error = stream
        decomp = decompressor()
        pending = first
        while pending:
            # fed in small pieces: what a piece before damaged data decodes is kept
            for at in range(0, len(pending), _FEED_BYTES):
                piece = pending[at : at + _FEED_BYTES]
                while piece:
                    if decomp.eof:  # the next member or stream, as `cat` joins them
                        if not piece.strip(b"\x00"):
                            break
                        decomp = decompressor()
                    try:
                        out = decomp.decompress(piece)
                    except error as exc:
                        yield FileProblem("corrupt_file", f"{path}: {name} data is corrupt ({exc})")
                        return
                    if out:
                        yield out
                    piece = decomp.unused_data if decomp.eof else b""
            pending = fh.read(_READ_BYTES)
            progress(len(pending))
        if not decomp.eof:
            yield FileProblem(
                "truncated_file",
                f"{path}: the {name} stream ends early (truncated file); "
                "every complete line before the cut was read",
            )


@dataclass(frozen=True)
class _Cut:
    """What follows the last complete line of a truncated stream."""

    data: bytes


def _line_chunks(
    blocks: Iterable[bytes | FileProblem], *, chunk_bytes: int
) -> Iterator[bytes | FileProblem | _Cut]:
    """The decompressed file as chunks of whole lines (each chunk ends in a newline) of about
    `chunk_bytes`, with the file's problems as they come. A last line without a newline is
    completed, unless the stream was truncated: then it comes as a _Cut."""
    pending: list[bytes] = []
    size = 0
    truncated = False
    for block in blocks:
        if isinstance(block, FileProblem):
            truncated = block.reason == "truncated_file"
            yield block
            break
        pending.append(block)
        size += len(block)
        if size >= chunk_bytes:
            buf = b"".join(pending)
            cut = buf.rfind(b"\n") + 1
            if cut:
                yield buf[:cut]
            pending = [buf[cut:]] if cut < len(buf) else []
            size = len(buf) - cut
    buf = b"".join(pending)
    cut = buf.rfind(b"\n") + 1
    if cut:
        yield buf[:cut]
    last = buf[cut:]
    if last:
        yield _Cut(last) if truncated else last + b"\n"


def read_json(
    path: Path, *, chunk_bytes: int, progress: Progress, encoding: str | None = None
) -> Iterator[Item]:
    """JSON, gzip or plain, as LineBatches of about `chunk_bytes` decompressed bytes: JSON
    lines, or a JSON document (an array of objects, or objects written over several lines)."""
    head, blocks = _peek(_decompressed_blocks(path, progress, encoding))
    if is_json_document(head):
        yield from _json_document(blocks, chunk_bytes=chunk_bytes)
        return
    next_line = 1
    for chunk in _line_chunks(blocks, chunk_bytes=chunk_bytes):
        if isinstance(chunk, FileProblem):
            yield chunk
        elif isinstance(chunk, _Cut):
            yield FileProblem(
                "truncated_file",
                "the last line was cut off by the end of a truncated compressed stream",
                line=next_line,
                raw=chunk.data.decode("utf-8", errors="backslashreplace"),
            )
        else:
            batch, next_line = _lines_batch(chunk, next_line)
            yield batch


_PEEK_BYTES = 1 << 16


def _peek(
    blocks: Iterator[bytes | FileProblem],
) -> tuple[bytes, Iterator[bytes | FileProblem]]:
    """The stream's first bytes, enough to see its first line (up to 64 KiB), and the whole
    stream again."""
    seen: list[bytes | FileProblem] = []
    head = b""
    for block in blocks:
        seen.append(block)
        if isinstance(block, FileProblem):
            break
        head += block
        text = head.lstrip()
        if len(head) >= _PEEK_BYTES or (text and b"\n" in text):
            break
    return head, itertools.chain(seen, blocks)


def is_json_document(head: bytes) -> bool:
    """Whether a JSON file starting with `head` is a document rather than JSON lines: an
    array (`[{...}, ...]`, as `DataFrame.to_json(orient="records")` or `mongoexport
    --jsonArray` write it), objects spread over several lines (as `jq .` writes them), or
    objects one after the other on a line (`{...}{...}`, as Kinesis Firehose delivers
    records to S3; or `{...},{...}`, an array without its brackets)."""
    text = head.lstrip()  # the byte order mark is gone: see _decompressed_blocks
    first = text.split(b"\n", 1)[0].strip()
    if text.startswith(b"[") or first == b"{":
        return True
    line = first.decode("utf-8", errors="replace")
    try:
        _, end = json.JSONDecoder().raw_decode(line)
    except json.JSONDecodeError:
        return False
    return line[end:].lstrip().startswith(("{", "[", ","))


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _json_document(
    blocks: Iterator[bytes | FileProblem], *, chunk_bytes: int
) -> Generator[Item, None, None]:
    """The records of a JSON document, one row each, numbered from 1 in the `line` column:
    the elements of a top-level array (of every one, if there are several), and top-level
    values otherwise (a comma between them is passed over). Each record's text is kept as
    written, for the checks and the quarantine. Where the text stops being valid JSON, the
    rest of the file is one quarantined `invalid_json` row that says where, after every
    record before it was read."""
    decoder = json.JSONDecoder()
    text_of = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    buf = ""  # decoded text not yet consumed
    lines_before = 1  # the file's line at the start of `buf`
    in_array = False
    records: list[bytes] = []
    size = 0
    record = 1  # the next record's number
    ended: FileProblem | None = None
    stream = iter(blocks)
    while True:
        block = next(stream, None)
        if isinstance(block, FileProblem):
            ended = block
            block = None
        eof = block is None
        buf += text_of.decode(block or b"", final=eof)
        pos = 0
        while True:
            pos = _JSON_SPACE.match(buf, pos).end()  # type: ignore[union-attr]  # always matches
            if pos == len(buf):
                break
            ch = buf[pos]
            if in_array and ch in ",]":
                in_array = ch == ","
                pos += 1
                continue
            if ch == "[" and not in_array:
                in_array = True
                pos += 1
                continue
            if ch == "," and not in_array:  # `{...},{...}`: an array without its brackets
                pos += 1
                continue
            try:
                _, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if not eof:  # the value may go on in the next block
                    break
                yield _invalid_rest(exc, buf, pos, lines_before, record + len(records), ended)
                pos = len(buf)
                break
            if end == len(buf) and not eof:
                break  # a number at the end of a block may go on in the next one
            raw = buf[pos:end].encode("utf-8", errors="surrogateescape")
            records.append(raw)
            size += len(raw)
            pos = end
            if size >= chunk_bytes:
                yield _records_batch(records, record)
                record += len(records)
                records, size = [], 0
        lines_before += buf.count("\n", 0, pos)
        buf = buf[pos:]
        if eof:
            break
    if records:
        yield _records_batch(records, record)
    if ended is not None:
        yield ended


def _invalid_rest(
    exc: json.JSONDecodeError, buf: str, pos: int, lines_before: int, record: int,
    ended: FileProblem | None,
) -> FileProblem:  # fmt: skip
    """The unreadable end of a JSON document as one quarantined row."""
    raw = buf[pos:].encode("utf-8", errors="surrogateescape")
    text = raw.decode("utf-8", errors="backslashreplace")
    where = f"line {lines_before + exc.lineno - 1}"
    if ended is not None:  # the stream stopped early: the record was cut, not malformed
        return FileProblem(
            ended.reason,
            f"the JSON document was cut off at {where} ({ended.detail}); "
            "every record before it was read",
            line=record,
            raw=text,
        )
    return FileProblem(
        "invalid_json",
        f"not valid JSON at {where} ({exc.msg}); every record before it was read, and the "
        "rest of the file is this row",
        line=record,
        raw=text,
    )


def _records_batch(records: list[bytes], first: int) -> LineBatch:
    lengths = np.fromiter((len(r) for r in records), dtype=np.int64, count=len(records))
    offsets = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _raw_batch(b"".join(records), offsets, first)


def _lines_batch(body: bytes, first_line: int) -> tuple[LineBatch, int]:
    """Split `body` (ending in a newline) into lines without copying."""
    arr = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10) + 1
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends
    return _raw_batch(body, offsets, first_line), first_line + len(ends)


def _raw_batch(body: bytes, offsets: np.ndarray, first_line: int) -> LineBatch:
    """Rows `line`, `raw` over `body` cut at `offsets`, numbered from `first_line`."""
    n = len(offsets) - 1
    raw = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(body)]
    )
    lines = pa.array(np.arange(first_line, first_line + n, dtype=np.int64))
    # many record batches, not one: DuckDB scans an Arrow table in parallel by batch
    step = 1 << 14
    batches = [
        pa.record_batch([lines.slice(i, step), raw.slice(i, step)], names=["line", "raw"])
        for i in range(0, n, step)
    ]
    table = pa.Table.from_batches(batches, schema=_LINES_SCHEMA)
    return LineBatch(table)


_LINES_SCHEMA = pa.schema([("line", pa.int64()), ("raw", pa.large_binary())])


def first_json_keys(batch: LineBatch, *, max_lines: int = 50) -> list[str]:
    """Keys of the first of the first `max_lines` lines (or records) of a file's first batch
    that parses as a JSON object (for choosing a column mapping)."""
    for line in batch.table.column("raw").slice(0, max_lines).to_pylist():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return list(obj)
    return []


def read_csv(
    path: Path, *, chunk_bytes: int, progress: Progress, encoding: str | None = None
) -> Iterator[Item]:
    """CSV (plain or gzip) with a header row, one record per line, streamed in chunks of lines.

    Values come as bytes (UTF-8 is checked later, per row). A row with the wrong number of
    fields, or a blank line, becomes a FileProblem with its line number and text.
    """
    header: bytes | None = None
    next_line = 1
    carry = b""  # a record whose quoted value was still open at the end of the last chunk
    sep = ","
    blocks = _decompressed_blocks(path, progress, encoding)
    for chunk in _line_chunks(blocks, chunk_bytes=chunk_bytes):
        if isinstance(chunk, FileProblem):
            yield chunk
            continue
        body = carry + (chunk.data + b"\n" if isinstance(chunk, _Cut) else chunk)
        if header is None:
            end = body.index(b"\n") + 1
            header, body, next_line = body[:end], body[end:], 2
            declared = _SEP_LINE.fullmatch(header.rstrip(b"\r\n"))
            if declared and b"\n" in body:  # Excel's `sep=;` line: the header is the next
                end = body.index(b"\n") + 1
                header, body, next_line = body[:end], body[end:], 3
            try:
                header.decode()
            except UnicodeDecodeError as exc:  # no column could be named
                shown = header.rstrip(b"\r\n")[:200]
                yield FileProblem(
                    "unreadable_file",
                    f"{path}: expected a UTF-8 header line (or UTF-16 with its byte order "
                    f"mark). Got byte {shown[exc.start]:#04x} at position {exc.start} of "
                    f"{shown!r}: give its encoding (--encoding cp1252 for Windows-1252, Excel's "
                    "CSV in Western locales), or save the file as UTF-8 (Excel: CSV UTF-8)",
                )
                return
            sep = declared[1].decode() if declared else csv_delimiter(path, header)
        body, carry = _split_open_record(body, limit=chunk_bytes, sep=sep)
        if body:
            yield from _csv_chunk(path, header, body, next_line, sep=sep)
            next_line += body.count(b"\n")
    if carry and header is not None:  # the file ends inside a quoted value
        yield from _csv_chunk(path, header, carry, next_line, sep=sep)


_DELIMITERS = (",", ";", "\t", "|")
_SEP_LINE = re.compile(rb"sep=([,;\t|])")
"""The line some exports start a CSV with to tell Excel its delimiter."""
DELIMITER_KEY = b"churnwatch.delimiter"
"""Schema metadata of a CSV file's batches: the delimiter it was read with."""


def _with_delimiter(table: pa.Table, sep: str) -> pa.Table:
    return table.replace_schema_metadata({DELIMITER_KEY: sep.encode()})


def csv_delimiter(path: Path, header: bytes) -> str:
    """The character between fields: a tab in a `.tsv` file, else whichever of `, ; TAB |`
    the header line holds most often outside quotes (a comma when none is there, or on a
    tie): spreadsheets in many locales export with semicolons."""
    if ".tsv" in (s.lower() for s in path.suffixes):
        return "\t"
    bare = re.sub(r'"[^"]*"', "", header.decode("utf-8", errors="replace"))
    best = max(_DELIMITERS, key=bare.count)  # the first of equals: the comma
    if best != ",":
        log.info("reading %s with %r between fields, as its header line has", path.name, best)
    return best


def _split_open_record(body: bytes, *, limit: int, sep: str = ",") -> tuple[bytes, bytes]:
    """`body` without its last record when that record's quoted value is still open at the
    end (its newline fell on a chunk boundary), and that record, to go before the next chunk.

    Only a chunk with an odd number of quote characters can end inside a quoted value; the
    record is then found as Python's csv module reads it. A record longer than `limit` is
    not carried: it is read, and rejected, where it stands."""
    if body.count(b'"') % 2 == 0:
        return body, b""
    records = _csv_records(body, open_end=True, sep=sep)
    opened = next((s for s, e, r in records if r is _OPEN), None)
    if opened is None:
        return body, b""
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)
    offset = int(newlines[opened - 1]) + 1 if opened else 0
    if len(body) - offset > limit:
        return body, b""
    return body[:offset], body[offset:]


_OPEN: list[str] = []  # marks a record still inside a quoted value where `body` ends


def _csv_records(
    body: bytes, *, open_end: bool = False, sep: str = ","
) -> Iterator[tuple[int, int, list[str] | None]]:
    """The records of `body` (whole lines) as Python's csv module reads them, strictly, each
    with the index of its first line and of the line after it.

    A record the module cannot read (text after a closing quote, or a quote that does not
    close within the module's 128 KiB field limit, or by the end) is None for its first line
    alone, and reading goes on from the next line: a stray quote no longer swallows the
    lines after it into one value, nor ends the ingest in a traceback. With `open_end`, a
    record still inside a quoted value at the end of `body` is _OPEN instead, and ends it."""
    lines = body.decode("utf-8", errors="surrogateescape").split("\n")[:-1]
    start = 0
    while start < len(lines):
        base = start
        reader = csv.reader((line + "\n" for line in lines[base:]), strict=True, delimiter=sep)
        try:
            for record in reader:
                end = base + reader.line_num
                yield start, end, record
                start = end
        except csv.Error as exc:
            at_end = base + reader.line_num == len(lines) and "end of data" in str(exc)
            if open_end and at_end:
                yield start, len(lines), _OPEN
                return
            yield start, start + 1, None
            start += 1


def _csv_chunk(
    path: Path, header: bytes, body: bytes, first_line: int, *, sep: str
) -> Iterator[Item]:
    names = next(csv.reader([header.decode("utf-8", errors="replace")], delimiter=sep))
    # an odd number of quotes: some quote does not close, and pyarrow would end that value at
    # the line's end and keep the row; the strict reader rejects it
    if body.count(b'"') % 2:
        yield from _csv_chunk_exact(names, body, first_line, sep=sep)
        return
    bad: list[FileProblem] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        line = first_line + row.number - 2 if row.number is not None else None
        bad.append(
            FileProblem(
                "bad_csv_row",
                f"expected {row.expected_columns} fields, got {row.actual_columns}",
                line=line,
                raw=row.text,
            )
        )
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(header + body),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=len(body) + 1024),
            parse_options=pacsv.ParseOptions(
                delimiter=sep,
                invalid_row_handler=on_invalid,
                newlines_in_values=False,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.binary() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        yield FileProblem("unreadable_file", f"{path}: not a readable CSV file ({exc})")
        return
    n_lines = body.count(b"\n")
    if table.num_rows + len(bad) != n_lines:  # a quoted value holds a newline
        yield from _csv_chunk_exact(names, body, first_line, sep=sep)
        return
    skipped = {p.line for p in bad if p.line is not None}
    lines = np.arange(first_line, first_line + n_lines, dtype=np.int64)
    if skipped:
        lines = lines[~np.isin(lines, np.array(sorted(skipped), dtype=np.int64))]
    yield from bad
    if table.num_rows:
        table = table.append_column("line", pa.array(lines[: table.num_rows]))
        yield ColumnBatch(_with_delimiter(table, sep))


def _csv_chunk_exact(names: list[str], body: bytes, first_line: int, *, sep: str) -> Iterator[Item]:
    """A chunk where some record spans lines (a quoted value with a newline), read with
    Python's csv module, which counts physical lines: each record is numbered by the line it
    starts on, as a bad row is. pyarrow numbers records, so every line after such a record
    was off by one. Rare, so speed does not matter here."""
    lines = body.split(b"\n")
    good: list[list[str]] = []
    numbers: list[int] = []
    for start, end, record in _csv_records(body, sep=sep):
        if record is not None and len(record) == len(names):
            good.append(record)
            numbers.append(first_line + start)
            continue
        detail = (
            "a quoted value has no closing quote"
            if record is None
            else f"expected {len(names)} fields, got {len(record)}"
        )
        raw = b"\n".join(lines[start:end]).decode("utf-8", errors="backslashreplace")
        yield FileProblem("bad_csv_row", detail, line=first_line + start, raw=raw)
    if good:
        columns = {
            name: pa.array([r[i].encode("utf-8", "surrogateescape") for r in good], pa.binary())
            for i, name in enumerate(names)
        }
        columns["line"] = pa.array(numbers, pa.int64())
        yield ColumnBatch(_with_delimiter(pa.table(columns), sep))


def read_parquet(path: Path, *, progress: Progress) -> Iterator[Item]:
    """Parquet row groups as ColumnBatches; `line` is the 1-based row number."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        yield FileProblem("unreadable_file", f"{path}: not a readable Parquet file ({exc})")
        return
    size = path.stat().st_size
    total = max(pf.metadata.num_rows, 1)
    row = 1
    for batch in pf.iter_batches(batch_size=1 << 18):
        n = batch.num_rows
        lines = pa.array(np.arange(row, row + n, dtype=np.int64))
        yield ColumnBatch(pa.Table.from_batches([batch]).append_column("line", lines))
        progress(size * n // total)
        row += n
