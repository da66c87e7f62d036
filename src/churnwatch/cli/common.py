"""What every command shares: the consoles, library errors as exit codes, one table builder,
one time parser, one engine factory and the options that spell a churn definition."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from churnwatch.config import Settings
from churnwatch.errors import ChurnwatchError, ConfigError
from churnwatch.features.engines import Engine, make_engine
from churnwatch.labels import ChurnDefinition
from churnwatch.schema import ColumnMapping

log = logging.getLogger(__name__)
console = Console(stderr=True, log_path=False)  # progress, warnings and errors (no source line)
out = Console(markup=False)  # results: data, printed as it is (a "[x]" is no style)
T = TypeVar("T")

# The churn definition and cutoff schedule, spelled the same way by every command that takes
# them (snapshots, train, evaluate).
Horizon = Annotated[int, typer.Option(min=1, help="Days ahead the label looks.")]
Every = Annotated[int, typer.Option(min=1, help="Days between cutoffs.")]
MinHistory = Annotated[int, typer.Option(min=0, help="Days of data before the first cutoff.")]
MapPairs = Annotated[
    list[str] | None,
    typer.Option("--map", help="field=column, e.g. --map user_id=customer (repeatable)."),
]
MappingFile = Annotated[
    Path | None, typer.Option(help="TOML/JSON file mapping canonical fields to columns.")
]
# How a log is read: ingest takes these, and evaluate (which ingests into a temporary store)
TsUnit = Annotated[
    str | None, typer.Option(help="Unit of numeric timestamps: ms (default), s, us, iso.")
]
TsFormat = Annotated[
    str | None,
    typer.Option(help="strptime format of the times, e.g. %Y%m%d or '%d/%m/%Y %H:%M'."),
]
EventName = Annotated[
    str | None, typer.Option(help="The event of every row, for a log without an event column.")
]
Dedupe = Annotated[
    str | None,
    typer.Option(
        help="What makes two rows one event: content (default; eventsim logs), line (the same "
        "line of a file: re-ingesting adds nothing, identical rows on other lines are kept) or "
        "key=COLUMN (the log's own event id)."
    ),
]
TsMin = Annotated[
    str | None, typer.Option(help="Earliest plausible event time (ISO 8601; default 2000-01-01).")
]
TsMaxFutureDays = Annotated[
    float | None,
    typer.Option(min=0, help="Latest plausible event time: now + this many days (1)."),
]
Encoding = Annotated[
    str | None,
    typer.Option(
        help="Text encoding of files without a byte order mark (default UTF-8), e.g. cp1252 for "
        "a CSV that Excel saved as 'CSV (Comma delimited)'."
    ),
]
Anonymous = Annotated[
    str | None,
    typer.Option(
        help="A row without a user id: quarantine (default) or guest (the anonymous events of "
        "Segment, Amplitude or Mixpanel exports), kept apart as eventsim's guests are."
    ),
]


def mapping(pairs: list[str] | None, file: Path | None, **options: Any) -> ColumnMapping:
    """The column mapping the reading options say (`ts_min` as the command line writes it)."""
    ts_min = options.pop("ts_min", None)
    return ColumnMapping.from_options(
        pairs or [], file=file, ts_min=parse_time(ts_min, "--ts-min"), **options
    )


# numpy refuses a negative seed and LightGBM and XGBoost take a 32-bit signed one
SEED_MAX = 2**31 - 1
DefinitionKind = Annotated[str, typer.Option(help="cancellation (default) or inactivity.")]
InactivityDays = Annotated[
    int, typer.Option(min=1, help="Days without events that make an inactivity churn.")
]
IncludeDowngrade = Annotated[
    bool, typer.Option("--include-downgrade", help="Count Submit Downgrade as churn too.")
]
Store = Annotated[
    Path | None,
    typer.Option(help="Event store (default: CHURNWATCH_STORE_DIR, else <data dir>/store)."),
]
DATA_DIR = "the data dir: CHURNWATCH_DATA_DIR, else ./data"


def output(path: Path | None, name: str, settings: Settings) -> Path:
    """Where a command writes: the --out given, else `name` in the data dir, beside the store
    and the registry (a relative default would land in whatever folder the command ran in)."""
    return path if path is not None else settings.data_dir / name


EngineName = Annotated[str, typer.Option(help="duckdb (default) or spark.")]
SparkMaster = Annotated[str | None, typer.Option(help="Spark master URL (default local[*]).")]
SparkConf = Annotated[
    list[str] | None,
    typer.Option(help="Spark setting key=value (repeatable), e.g. spark.executor.memory=8g."),
]
AsOf = Annotated[
    str | None,
    typer.Option(help="As of this time (ISO 8601); default: the day of the store's last event."),
]
CATALOGS = ("auto", "sparkify", "events")


def _catalog(value: str) -> str:
    if value not in CATALOGS:  # checked at once: `features` reads it only with --store
        raise typer.BadParameter(f"expected one of {', '.join(CATALOGS)}. Got {value!r}.")
    return value


Features = Annotated[
    str,
    typer.Option(
        help="Feature catalog: auto (eventsim's for a log with song plays, else one built from "
        "the log's event types), sparkify or events.",
        callback=_catalog,
    ),
]
EventTypes = Annotated[
    int, typer.Option(min=1, help="With an events catalog: the most frequent N event types.")
]


def definition(
    kind: str, horizon: int, inactivity_days: int, include_downgrade: bool
) -> ChurnDefinition:
    """The churn definition the snapshot options spell (checked by ChurnDefinition)."""
    return ChurnDefinition(
        kind=kind,  # type: ignore[arg-type]  # checked by ChurnDefinition
        horizon_days=horizon,
        inactivity_days=inactivity_days,
        include_downgrade=include_downgrade,
    )


def run(fn: Callable[[], T]) -> T:
    """Run library code; turn a ChurnwatchError into a clear message and exit code 1."""
    try:
        return fn()
    except ChurnwatchError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code=1) from None
    except OSError as exc:  # a path that cannot be written or read: --out /proc/x, a full disk
        log.debug("the operating system refused", exc_info=True)  # the traceback, with -v
        where = f": {exc.filename}" if exc.filename else ""
        console.print(f"[bold red]error:[/] {escape(exc.strerror or str(exc))}{escape(where)}")
        raise typer.Exit(code=1) from None


def table(
    title: str,
    rows: Iterable[Sequence[Any]],
    columns: Sequence[str] = (),
    *,
    numbers_from: int | None = None,
    caption: str | None = None,
) -> Table:
    """A results table. With `columns`: a header, and columns from `numbers_from` on aligned
    right. Without: a key/value table with bold keys. Cells are printed with str(), as text:
    a value that looks like console markup ("[baseline]", a user id "[/x]") shows as it is.
    The first column, what a row is about, is never wrapped."""
    t = Table(title=title, title_justify="left", show_header=bool(columns), caption=caption,
              caption_justify="left")  # fmt: skip
    if columns:
        for i, col in enumerate(columns):
            right = numbers_from is not None and i >= numbers_from
            t.add_column(col, justify="right" if right else "left", no_wrap=i == 0)
    else:
        t.add_column(style="bold", no_wrap=True)
        t.add_column(justify="right")
    for row in rows:
        t.add_row(*(Text(str(v)) for v in row))
    return t


def parse_time(text: str | None, option: str = "--as-of") -> datetime | None:
    """An ISO 8601 time from an option; None when the option was not given."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} expected an ISO 8601 time. Got {text!r} instead.") from None


def parse_dates(texts: Sequence[str], option: str) -> tuple[date, ...]:
    """Dates YYYY-MM-DD from a repeatable option."""
    out = []
    for text in texts:
        try:
            out.append(date.fromisoformat(text))
        except ValueError:
            raise ConfigError(
                f"{option} expected a date YYYY-MM-DD. Got {text!r} instead."
            ) from None
    return tuple(out)


def pair(text: str) -> tuple[str, str]:
    """key=value."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"expected key=value. Got {text!r} instead.")
    return key.strip(), value.strip()


@contextmanager
def engine(
    name: str, settings: Settings, *, master: str | None = None, conf: Sequence[str] = ()
) -> Iterator[Engine]:
    """The feature engine a command asked for, closed when the command is done."""
    spark = {"master": master, "conf": dict(pair(kv) for kv in conf)} if name == "spark" else {}
    eng = make_engine(name, settings, **spark)
    try:
        yield eng
    finally:
        eng.close()


class BytesProgress:
    """A progress bar over input bytes: one per file for a few files, else one over all."""

    MAX_BARS = 4

    def __init__(self, bar: Progress, description: str) -> None:
        self.bar = bar
        self.description = description
        self.tasks: dict[str, Any] = {}
        self.total: Any = None
        self.count = 0

    def files(self, paths: list[Path]) -> None:
        if len(paths) > self.MAX_BARS:
            size = sum(p.stat().st_size for p in paths)
            self.count = len(paths)
            self.total = self.bar.add_task(self._all(paths[0]), total=size)

    def _all(self, path: Path) -> str:
        return f"{self.description} {self.count:,} files: {path.name}"

    def __call__(self, name: str, done: int, total: int) -> None:
        if self.total is not None:
            if name not in self.tasks:
                self.tasks[name] = True
                self.bar.update(self.total, description=self._all(Path(name)))
            self.bar.advance(self.total, done)
            return
        if name not in self.tasks:  # a size not known (0, a pipe): a bar that pulses
            self.tasks[name] = self.bar.add_task(
                f"{self.description} {Path(name).name}", total=total or None
            )
        elif total:  # the size, once known (set on the task: update() drops the speed)
            next(t for t in self.bar.tasks if t.id == self.tasks[name]).total = total
        self.bar.advance(self.tasks[name], done)


@contextmanager
def bytes_progress(description: str) -> Iterator[BytesProgress]:
    """A progress bar over input bytes (`BytesProgress`)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        yield BytesProgress(bar, description)


def ci(est: Any) -> str:
    """An estimate with its interval: 0.743 [0.692, 0.784]."""
    return f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]"


def ci_cell(est: Any) -> str:
    """An estimate over its interval, narrow enough for a table of several (two lines):
    0.743 / 0.69-0.78."""
    return f"{est.value:.3f}\n{est.low:.2f}-{est.high:.2f}"


def api_key(settings: Settings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None
