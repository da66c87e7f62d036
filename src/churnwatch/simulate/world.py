"""The simulated world: pages and their weights, users, songs, and the vectorised draws the
day's steps share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from churnwatch.errors import InputError
from churnwatch.schema import TRUTH_SUFFIX

PAGES = [
    "NextSong", "Thumbs Up", "Thumbs Down", "Add to Playlist", "Add Friend", "Roll Advert",
    "Home", "Settings", "Save Settings", "Help", "About", "Error", "Upgrade", "Submit Upgrade",
    "Downgrade", "Submit Downgrade", "Logout", "Cancel", "Cancellation Confirmation",
    "Login", "Register", "Submit Registration",
]  # fmt: skip

P = {name: i for i, name in enumerate(PAGES)}

# Page weights per event of a logged-in user: (baseline, change per unit of dissatisfaction).
_WEIGHTS: dict[str, tuple[float, float]] = {
    "NextSong": (0.815, 0.0),
    "Thumbs Up": (0.046, -0.018),
    "Thumbs Down": (0.009, 0.010),
    "Add to Playlist": (0.024, -0.006),
    "Add Friend": (0.016, -0.004),
    "Home": (0.036, 0.004),
    "Settings": (0.005, 0.004),
    "Save Settings": (0.001, 0.0005),
    "Help": (0.005, 0.003),
    "About": (0.002, 0.0),
    "Error": (0.001, 0.0),
    "Logout": (0.011, 0.0),
}

_ADVERT_FREE = 0.065  # weight of Roll Advert for free users (paid users: 0.002)

_ADVERT_PAID = 0.002

_GUEST_PAGES = ["Home", "Login", "About", "Help", "Register", "Submit Registration", "Error"]

_GUEST_P = np.array([0.45, 0.3, 0.08, 0.07, 0.05, 0.03, 0.02])

_CITIES = [
    "New York-Newark-Jersey City, NY-NJ-PA", "Los Angeles-Long Beach-Anaheim, CA",
    "Chicago-Naperville-Elgin, IL-IN-WI", "Dallas-Fort Worth-Arlington, TX",
    "Houston-The Woodlands-Sugar Land, TX", "Washington-Arlington-Alexandria, DC-VA-MD-WV",
    "Miami-Fort Lauderdale-West Palm Beach, FL", "Philadelphia-Camden-Wilmington, PA-NJ-DE-MD",
    "Atlanta-Sandy Springs-Roswell, GA", "Boston-Cambridge-Newton, MA-NH",
    "Phoenix-Mesa-Scottsdale, AZ", "San Francisco-Oakland-Hayward, CA",
    "Riverside-San Bernardino-Ontario, CA", "Detroit-Warren-Dearborn, MI",
    "Seattle-Tacoma-Bellevue, WA", "Minneapolis-St. Paul-Bloomington, MN-WI",
    "San Diego-Carlsbad, CA", "Tampa-St. Petersburg-Clearwater, FL", "Denver-Aurora-Lakewood, CO",
    "St. Louis, MO-IL", "Baltimore-Columbia-Towson, MD", "Charlotte-Concord-Gastonia, NC-SC",
    "Portland-Vancouver-Hillsboro, OR-WA", "San Antonio-New Braunfels, TX",
    "Pittsburgh, PA", "Sacramento--Roseville--Arden-Arcade, CA", "Las Vegas-Henderson-Paradise, NV",
    "Cincinnati, OH-KY-IN", "Kansas City, MO-KS", "Columbus, OH", "Indianapolis-Carmel-Anderson, IN",
    "Cleveland-Elyria, OH", "Austin-Round Rock, TX", "Nashville-Davidson--Murfreesboro--Franklin, TN",
    "Raleigh, NC", "Salt Lake City, UT", "Birmingham-Hoover, AL", "Tucson, AZ", "Albany, OR",
    "Bakersfield, CA",
]  # fmt: skip

_AGENTS = [
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.143 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.125 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.77.4 (KHTML, like Gecko) Version/7.0.5 Safari/537.77.4",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) Version/7.0 Mobile/11D257 Safari/9537.53",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:31.0) Gecko/20100101 Firefox/31.0",
    "Mozilla/5.0 (iPad; CPU OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) Version/7.0 Mobile/11D257 Safari/9537.53",
    "Mozilla/5.0 (Windows NT 6.3; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.143 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.125 Safari/537.36",
]  # fmt: skip

_FIRST = ["Ava", "Liam", "Mia", "Noah", "Emma", "Ethan", "Sofia", "Lucas", "Chloe", "Mason",
          "Zoe", "Logan", "Lily", "Owen", "Ella", "Jack", "Aria", "Leo", "Nora", "Caleb"]  # fmt: skip

_LAST = ["Smith", "Johnson", "Garcia", "Brown", "Jones", "Miller", "Davis", "Lopez", "Wilson",
         "Moore", "Taylor", "Thomas", "Lee", "White", "Harris", "Clark", "Lewis", "Young"]  # fmt: skip


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the simulation; the defaults give Sparkify-like logs."""

    users: int = 500
    days: int = 60
    seed: int = 0
    start: date = date(2018, 10, 1)
    arrivals_per_day: float | None = None  # default: 0.5 % of the initial users per day
    guest_share: float = 0.03  # guest events as a share of all events
    sessions_per_day: float = 0.32  # mean for an average user
    events_per_session: float = 80.0
    base_hazard: float = 0.0022  # daily cancellation hazard of an average user
    hazard_satisfaction: float = 1.3  # log-odds per unit of lost satisfaction
    hazard_engagement: float = 0.5  # log-odds per unit of engagement below average
    hazard_free: float = 0.3  # extra log-odds for free users
    upgrade_rate: float = 0.012  # daily chance a free user upgrades (average satisfaction)
    downgrade_rate: float = 0.006  # daily chance a paid user downgrades (average)
    songs: int = 20000
    artists: int = 4000
    drift_day: int | None = None  # from this day on, adverts (and errors) double
    advert_multiplier: float = 2.0
    error_multiplier: float = 3.0

    def midnight(self, day: int) -> datetime:
        """The UTC midnight that starts simulated day `day` (0: `start`; `days`: the end)."""
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC) + timedelta(
            days=day
        )

    def __post_init__(self) -> None:
        if self.users < 1 or self.days < 1:
            raise InputError(
                f"users and days have to be >= 1. Got users={self.users}, days={self.days}."
            )
        if self.seed < 0:
            raise InputError(f"the seed has to be >= 0. Got {self.seed}.")
        if self.drift_day is not None and not 0 <= self.drift_day < self.days:
            raise InputError(
                f"the drift day has to fall within the simulated days, 0 .. {self.days - 1}. "
                f"Got {self.drift_day}."
            )


@dataclass
class SimResult:
    """What a simulation wrote."""

    out: Path
    truth: Path
    events: int = 0
    users: int = 0
    churned: int = 0
    guest_events: int = 0
    page_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def log_stem(log: Path) -> str:
    """A log's name without its log suffixes: `sim` for `sim.jsonl.gz` or `sim.parquet`."""
    name = log.name
    for suffix in (".gz", ".jsonl", ".ndjson", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    return name


def truth_path(out: Path) -> Path:
    """Where the ground truth of a simulated log goes: beside it, `<stem>.truth.parquet`."""
    return out.with_name(log_stem(out) + TRUTH_SUFFIX)


class Users:
    """Per-user state, as arrays that grow when users arrive."""

    def __init__(self) -> None:
        self.cols: dict[str, np.ndarray] = {}

    def add(self, **cols: np.ndarray) -> None:
        for k, v in cols.items():
            self.cols[k] = np.concatenate([self.cols[k], v]) if k in self.cols else v

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            col: np.ndarray = self.__dict__["cols"][name]
        except KeyError:
            raise AttributeError(name) from None
        return col

    def __len__(self) -> int:
        return len(self.cols.get("uid", ()))


def song_catalog(rng: np.random.Generator, cfg: SimConfig) -> dict[str, np.ndarray]:
    """Songs with artists, lengths and Zipf-like popularity."""
    artist_of = rng.integers(0, cfg.artists, cfg.songs)
    popularity = 1.0 / np.arange(1, cfg.songs + 1) ** 0.9
    rng.shuffle(popularity)
    return {
        "artist": np.array([f"Artist {a:04d}" for a in range(cfg.artists)], dtype=object)[
            artist_of
        ],
        "song": np.array([f"Song {s:05d}" for s in range(cfg.songs)], dtype=object),
        "length": np.round(rng.lognormal(np.log(235.0), 0.3, cfg.songs), 5),
        "cdf": np.cumsum(popularity) / popularity.sum(),
    }


def arrive(users: Users, rng: np.random.Generator, cfg: SimConfig, n: int, *, day: int) -> None:
    """Add `n` users: the initial population (day -1, registered earlier) or new arrivals."""
    start = len(users)
    day0 = cfg.midnight(0).timestamp()
    if day < 0:
        reg = day0 - rng.uniform(1, 365, n) * 86400
        paid = rng.random(n) < 0.35
    else:
        reg = day0 + day * 86400 + rng.uniform(6, 22, n) * 3600
        paid = np.zeros(n, dtype=bool)
    engagement = rng.normal(0.0, 1.0, n)
    baseline = rng.normal(0.4, 0.5, n)
    users.add(
        uid=np.arange(start + 1, start + n + 1),
        gender=rng.choice(np.array(["M", "F"], dtype=object), n),
        first=rng.choice(np.array(_FIRST, dtype=object), n),
        last=rng.choice(np.array(_LAST, dtype=object), n),
        city=rng.choice(np.array(_CITIES, dtype=object), n, p=_city_weights()),
        agent=rng.choice(np.array(_AGENTS, dtype=object), n),
        reg_ms=(np.floor(reg) * 1000).astype(np.int64),
        arrival_day=np.full(n, day, dtype=np.int64),
        paid=paid,
        engagement=engagement,
        baseline=baseline,
        satisfaction=baseline + rng.normal(0, 0.3, n),
        churn_day=np.full(n, -1, dtype=np.int64),
        busy_until=np.zeros(n),  # time of the user's last event so far
        ad_tolerance=rng.lognormal(0.0, 0.5, n),
    )


def _city_weights() -> np.ndarray:
    w = 1.0 / np.arange(1, len(_CITIES) + 1) ** 0.7
    return np.asarray(w / w.sum())


def segments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of sizes `counts`: the group index of each element and its rank in the group."""
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    rank = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return group, rank


def group_start_values(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each element, `values` at the first element of its (contiguous) group."""
    if len(values) == 0:
        return values
    starts = np.r_[True, group[1:] != group[:-1]]
    idx = np.maximum.accumulate(np.where(starts, np.arange(len(values)), 0))
    return values[idx]


def pick_event(
    rng: np.random.Generator, e_user: np.ndarray, want: np.ndarray, n_users: int
) -> np.ndarray:
    """For each user with `want`, the index of one random event of theirs today (-1: none)."""
    pos = np.full(n_users, -1)
    counts = np.bincount(e_user, minlength=n_users)
    first = np.cumsum(counts) - counts
    sel = want & (counts > 0)
    offset = (rng.random(n_users) * counts).astype(np.int64)
    pos[sel] = first[sel] + offset[sel]
    return pos


def draw_pages(
    rng: np.random.Generator,
    diss: np.ndarray,
    paid: np.ndarray,
    cfg: SimConfig,
    drifted: bool,
) -> np.ndarray:
    """Draw one page per event from a mix that depends on dissatisfaction and level."""
    names = list(_WEIGHTS)
    w = np.empty((len(diss), len(names) + 1))
    for j, name in enumerate(names):
        base, slope = _WEIGHTS[name]
        w[:, j] = np.maximum(base + slope * diss, base * 0.2)
    err = names.index("Error")
    advert = np.where(paid, _ADVERT_PAID, _ADVERT_FREE)
    if drifted:
        advert = advert * cfg.advert_multiplier
        w[:, err] *= cfg.error_multiplier
    w[:, -1] = advert
    # paid users look at the downgrade page when unhappy; free users at the upgrade page
    extra = np.where(paid, np.maximum(0.004 + 0.004 * diss, 0.001), 0.0015)
    w = np.concatenate([w, extra[:, None]], axis=1)
    w /= w.sum(axis=1, keepdims=True)
    cdf = np.cumsum(w, axis=1)
    u = rng.random(len(diss))[:, None]
    choice = (u > cdf).sum(axis=1)
    choice = np.minimum(choice, len(names) + 1)
    lookup = np.array([P[n] for n in names] + [P["Roll Advert"], P["Downgrade"]])
    pages = lookup[choice]
    pages[(pages == P["Downgrade"]) & ~paid] = P["Upgrade"]
    return np.asarray(pages)
