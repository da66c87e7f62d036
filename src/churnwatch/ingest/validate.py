"""Validation and normalisation of raw rows, as one DuckDB query per batch.

Rules (each row gets the first that applies; a row with a reason goes to the quarantine):

| reason          | when                                                                  |
|-----------------|-----------------------------------------------------------------------|
| invalid_utf8    | the line (or a CSV field) is not valid UTF-8                          |
| empty_line      | the line is blank                                                     |
| invalid_json    | the line is not JSON                                                  |
| not_an_object   | the line is JSON but not an object                                    |
| missing_field   | `user_id`, `ts` or `page` is absent or null (an empty ts or page too) |
| bad_type        | a value cannot be read as its field's type (e.g. `ts` = "yesterday"), |
|                 | or a JSON object or array stands where a string belongs               |
| bad_value       | a value has the right type but is impossible (negative song length)   |
| ts_out_of_range | `ts` is before `ts_min` or after now + `ts_max_future_days`           |

Normalisation of the rows that pass:
- names are the canonical snake_case ones; `ts` and `registration` are UTC timestamps read from
  epoch numbers in the mapping's unit (ms for Sparkify), or from ISO-8601 strings;
- strings are trimmed; `level` is lower case and `gender` upper case, and both become
  `unknown` when missing or empty;
- an empty `user_id` marks a guest or logged-out event: valid, but kept out of user tables
  (a null or absent one too with `anonymous_guests`, else it is a missing_field);
- a missing `registration` stays null here; the store's `events` view fills it with the user's
  first event and flags it (`registration_imputed`).
"""

from __future__ import annotations

from collections.abc import Iterable

from churnwatch.db import literal, quote
from churnwatch.schema import EVENT_KEY, FIELDS, REQUIRED, TsUnit


def json_path(key: str, *, nested: bool = False) -> str:
    """A JSON path selecting the top-level key `key`, whatever characters it holds; with
    `nested`, `key`'s dots go down into objects (`properties.plan`)."""
    parts = key.split(".") if nested else [key]
    return "$" + "".join('."' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)


_BOM = "chr(65279)"
"""A byte order mark at the start of a line (`cat` of files saved with one) is no text: JSON
would not parse after it, and it cannot be seen in the quarantine."""
JSON_RAW_TEXT = "coalesce(rtrim(txt, E'\\r\\n'), CAST(raw AS VARCHAR))"
"""The raw text of a JSON line as the quarantine shows it (invalid UTF-8 escaped as \\xNN)."""


def json_fields_sql(
    keys: dict[str, str],
    *,
    constants: dict[str, str] | None = None,
    defaults: dict[str, str] | None = None,
    top_level: Iterable[str] = (),
) -> tuple[str, list[str]]:
    """SELECT over relation `batch(line, raw)` giving `line, pre_reason, txt, raw, v_<field>...`.

    `defaults` are the values of fields a line does not give (the file's partition folders).
    A key with a dot is a path into objects (`properties.distinct_id`, as Mixpanel and Segment
    export), unless it is one of the `top_level` keys (the first record's).
    Returns the SQL and the JSON paths to bind as `$paths`. Invalid UTF-8 is flagged, not
    raised (`try` costs nothing on a batch where every line decodes). Checks are ordered so
    that the costly ones run only on lines the cheap ones cannot settle; the raw text is built
    (JSON_RAW_TEXT) only for rejected lines.
    """
    names = list(keys)
    literal_keys = set(top_level)
    paths = [json_path(keys[n], nested=keys[n] not in literal_keys) for n in names]
    given = defaults or {}

    def extracted(i: int, n: str) -> str:
        v = f"v[{i + 1}]"
        return f"coalesce({v}, {literal(given[n])})" if n in given else v

    cols = ", ".join(f"{extracted(i, n)} AS v_{n}" for i, n in enumerate(names))
    fixed = constants or {}
    absent = [n for n in (*FIELDS, EVENT_KEY) if n not in keys and n not in fixed]
    missing = "".join(f", {literal(v)} AS v_{n}" for n, v in fixed.items())
    missing += "".join(f", NULL::VARCHAR AS v_{n}" for n in absent)
    # a text field holding a JSON object or array: json_extract_string gives its JSON text,
    # which would be stored as, say, an artist's name. Checked only on a line where some value
    # opens an object or array (none in an eventsim log: the check costs about 2 % of an
    # ingest, against 5 % checking every field of every line), and json_type only on a value
    # that starts like one
    nested = " ".join(
        f"WHEN left(v[{i + 1}], 1) IN ('{{', '[') AND try(json_type(txt, {literal(paths[i])})) "
        f"IN ('OBJECT', 'ARRAY') THEN '{n}'"
        for i, n in enumerate(names)
        if n in TEXT_FIELDS
    )
    nested_col = (
        f"CASE WHEN regexp_matches(txt, ':\\s*[\\[{{]') THEN CASE {nested} END END AS nested"
        if nested
        else "NULL::VARCHAR AS nested"
    )
    sql = f"""
    WITH d AS (SELECT line, raw, ltrim(try(decode(raw)), {_BOM}) AS txt FROM batch),
    x AS (SELECT line, raw, txt, try(json_extract_string(txt, $paths)) AS v FROM d)
    SELECT line, raw, txt,
      CASE WHEN txt IS NULL THEN 'invalid_utf8'
           WHEN v IS NULL AND trim(txt, E' \\t\\r\\n') = '' THEN 'empty_line'
           WHEN v IS NULL THEN 'invalid_json'
           WHEN left(txt, 1) = '{{' THEN NULL
           WHEN json_type(txt) <> 'OBJECT' THEN 'not_an_object' END AS pre_reason,
      {nested_col},
      {cols}{missing}
    FROM x"""
    return sql, paths


def column_fields_sql(
    columns: dict[str, str], types: dict[str, str], constants: dict[str, str] | None = None
) -> str:
    """SELECT over relation `batch` (a tabular source) giving the same columns as JSON.

    `columns` maps canonical field -> source column present in `batch`; `types` gives each
    source column's DuckDB type name (BLOB columns are checked for UTF-8).
    """

    def as_text(col: str) -> str:
        q = quote(col)
        return f"try(decode({q}))" if types[col] == "BLOB" else f"CAST({q} AS VARCHAR)"

    def as_raw(col: str) -> str:
        return f"CAST({quote(col)} AS VARCHAR)"

    blobs = [c for c, t in types.items() if t == "BLOB" and c != "line"]
    utf8_bad = " OR ".join(
        f"({quote(c)} IS NOT NULL AND try(decode({quote(c)})) IS NULL)" for c in blobs
    )
    # the header line again, where CSV files were joined with `cat`: its user id and time are
    # the names of their columns (the first line of each file but the first; after a byte
    # order mark where Excel saved the files as "CSV UTF-8")
    header = " AND ".join(
        f"ltrim({as_text(columns[n])}, {_BOM}) = {literal(columns[n])}"
        for n in ("user_id", "ts")
        if n in columns and n not in (constants or {}) and types[columns[n]] in ("VARCHAR", "BLOB")
    )
    cases = ([f"WHEN {utf8_bad} THEN 'invalid_utf8'"] if blobs else []) + (
        [f"WHEN {header} THEN 'bad_csv_row'"] if header else []
    )
    pre = f"CASE {' '.join(cases)} END" if cases else "NULL::VARCHAR"
    source_cols = [c for c in types if c != "line"]
    raw = (
        "to_json(struct_pack("
        + ", ".join(f"{quote(c)} := {as_raw(c)}" for c in source_cols)
        + "))::VARCHAR"
    )
    fixed = constants or {}

    def value(n: str) -> str:
        if n in fixed:
            return literal(fixed[n])
        return as_text(columns[n]) if n in columns else "NULL::VARCHAR"

    vals = ",\n".join(f"{value(n)} AS v_{n}" for n in (*FIELDS, EVENT_KEY))
    # a text field read from a nested column (a Parquet struct or list): a bad_type on every
    # row that has a value there, as an object or array in a JSON line is
    nested = " ".join(
        f"WHEN {quote(columns[n])} IS NOT NULL THEN '{n}'"
        for n in TEXT_FIELDS
        if n in columns and n not in fixed and _is_nested(types[columns[n]])
    )
    nested_col = f"CASE {nested} END" if nested else "NULL::VARCHAR"
    return (
        f"SELECT line, {pre} AS pre_reason, {nested_col} AS nested, {raw} AS raw_text,\n"
        f"{vals}\nFROM batch"
    )


def _is_nested(duckdb_type: str) -> bool:
    return duckdb_type.startswith(("STRUCT", "MAP", "UNION")) or duckdb_type.endswith("]")


def _ts_expr(v: str, unit: TsUnit, fmt: str | None = None) -> str:
    if fmt is not None:  # strptime codes: exactly that format, read as UTC
        return f"TRY_CAST(try_strptime(trim({v}), {literal(fmt)}) AS TIMESTAMPTZ)"
    iso = f"TRY_CAST({v} AS TIMESTAMPTZ)"
    if unit == "iso":
        return iso
    return f"coalesce({_epoch_expr(v, unit)}, {iso})"


_EPOCH_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}


def _epoch_expr(v: str, unit: str) -> str:
    """`v` read as a number of `unit`s since 1970 (NULL when it is not a number)."""
    if unit == "ms":
        return (
            f"coalesce(try(epoch_ms(TRY_CAST({v} AS BIGINT))::TIMESTAMPTZ), "
            f"try(epoch_ms(TRY_CAST(round(TRY_CAST({v} AS DOUBLE)) AS BIGINT))::TIMESTAMPTZ))"
        )
    if unit == "s":
        return f"try(to_timestamp(TRY_CAST({v} AS DOUBLE)))"
    return f"try(make_timestamp(TRY_CAST({v} AS BIGINT))::TIMESTAMPTZ)"


def _out_of_range_detail(name: str, unit: TsUnit, fmt: str | None) -> str:
    """The detail of a `ts_out_of_range` row. A number read in the wrong unit lands in 1970
    or millennia ahead: the detail says which unit was used, and which would give a time in
    the plausible range."""
    read = "strftime(t_ts, '%Y-%m-%d %H:%M:%S')"
    window = "strftime($ts_min, '%Y-%m-%d') || ' .. ' || strftime($ts_max, '%Y-%m-%d')"
    if fmt is not None or unit == "iso":
        return f"'{name}: ' || {read} || ' is outside the plausible range ' || {window}"
    number = "TRY_CAST(v_ts AS DOUBLE) IS NOT NULL"
    hints = " ".join(
        f"WHEN {_epoch_expr('v_ts', other)} BETWEEN $ts_min AND $ts_max THEN "
        f"'; as epoch {word} (--ts-unit {other}) it would be ' || "
        f"strftime({_epoch_expr('v_ts', other)}, '%Y-%m-%d %H:%M:%S')"
        for other, word in _EPOCH_UNITS.items()
        if other != unit
    )
    return (
        f"'{name}: ' || CASE WHEN {number} THEN left(trim(v_ts), 30) || ' read as epoch "
        f"{_EPOCH_UNITS[unit]} is ' || {read} || ', outside the plausible range ' || {window} "
        f"|| coalesce(CASE {hints} END, '') "
        f"ELSE {read} || ' is outside the plausible range ' || {window} END"
    )


_INTS = {"session_id": "BIGINT", "status": "INTEGER", "item_in_session": "INTEGER"}
# fields stored as text: a JSON object or array there is a bad_type, not a name
TEXT_FIELDS = ("user_id", "page", "auth", "method", "level", "location", "user_agent",
               "first_name", "last_name", "gender", "artist", "song", EVENT_KEY)  # fmt: skip


def _glued(raw_text: str) -> str:
    """The detail of a line that holds two objects, where files were joined with `cat` and one
    did not end with a newline (looked for on lines that are not JSON only)."""
    return (
        f"WHEN pre_reason = 'invalid_json' AND regexp_matches({raw_text}, '}}\\s*\\{{') THEN "
        "'not valid JSON: objects one after the other on one line? (files joined with cat, "
        "one not ending with a newline)'"
    )


def validate_sql(
    fields_sql: str,
    *,
    ts_unit: TsUnit,
    source_keys: dict[str, str],
    raw_text: str = "raw_text",
    ts_format: str | None = None,
    required: tuple[str, ...] = REQUIRED,
    decimal_comma: bool = False,
    anonymous_guests: bool = False,
) -> str:
    """The full check: typed canonical columns plus `reason` and `detail` (NULL when valid).

    With `decimal_comma` (a CSV saved with semicolons, as spreadsheets write it where the comma
    is the decimal mark), `length` and `value` may be written `273,5`. With
    `anonymous_guests`, a row without a user id is a guest's (its `user_id` is ''), and
    `required` should not name `user_id`.

    Binds `$ts_min`, `$ts_max` (and `$paths` for JSON). `source_keys` names each field's
    source column, for messages a user can act on.
    """
    reasons, details = _rules(source_keys, ts_unit, ts_format, required)

    def number(v: str) -> str:  # "273,5": a decimal comma, where no point is written
        if not decimal_comma:
            return v
        comma = f"contains({v}, ',') AND NOT contains({v}, '.')"
        return f"CASE WHEN {comma} THEN replace({v}, ',', '.') ELSE {v} END"

    ints = ",\n".join(f"TRY_CAST(v_{n} AS {t}) AS t_{n}" for n, t in _INTS.items())
    return f"""
    WITH f AS ({fields_sql}),
    t AS (
      SELECT *,
        {_ts_expr("v_ts", ts_unit, ts_format)} AS t_ts,
        {_ts_expr("v_registration", ts_unit, ts_format)} AS t_registration,
        {ints},
        TRY_CAST({number("v_length")} AS DOUBLE) AS t_length,
        TRY_CAST(nullif(trim({number("v_value")}), '') AS DOUBLE) AS t_value
      FROM f),
    c AS (
      SELECT *, CASE WHEN pre_reason IS NOT NULL THEN pre_reason {reasons} END AS reason
      FROM t)
    SELECT
      line, reason,
      CASE WHEN reason IS NULL THEN NULL {_glued(raw_text)} {details} END AS detail,
      CASE WHEN reason IS NOT NULL THEN {raw_text} END AS raw_text,
      t_ts AS ts,
      {f"coalesce({_USER_ID}, '')" if anonymous_guests else _USER_ID} AS user_id,
      t_session_id AS session_id,
      trim(v_page) AS page,
      nullif(trim(v_auth), '') AS auth,
      nullif(trim(v_method), '') AS method,
      t_status AS status,
      CASE WHEN nullif(trim(v_level), '') IS NULL THEN 'unknown' ELSE lower(trim(v_level)) END
        AS level,
      t_item_in_session AS item_in_session,
      nullif(v_location, '') AS location,
      nullif(v_user_agent, '') AS user_agent,
      nullif(v_first_name, '') AS first_name,
      nullif(v_last_name, '') AS last_name,
      t_registration AS registration,
      CASE WHEN nullif(trim(v_gender), '') IS NULL THEN 'unknown' ELSE upper(trim(v_gender)) END
        AS gender,
      nullif(v_artist, '') AS artist,
      nullif(v_song, '') AS song,
      t_length AS length,
      t_value AS value,
      nullif(trim(v_{EVENT_KEY}), '') AS {EVENT_KEY}
    FROM c"""


# an integral id written as a float ("9.0": a pandas export of an id column with gaps for the
# guests) is the integer's id, as the same user's "9" in another file or a request
_USER_ID = (
    "CASE WHEN contains(v_user_id, '.') "
    "THEN regexp_replace(trim(v_user_id), '^(-?[0-9]+)\\.0+$', '\\1') ELSE trim(v_user_id) END"
)
_BAD_LENGTH = "t_length < 0 OR isnan(t_length) OR isinf(t_length)"
_BAD_VALUE = "isnan(t_value) OR isinf(t_value)"


def _rules(
    source_keys: dict[str, str], ts_unit: TsUnit, ts_format: str | None, required: tuple[str, ...]
) -> tuple[str, str]:
    """The WHEN branches of `reason` (first rule that applies) and of its `detail`."""

    def src(n: str) -> str:
        return source_keys.get(n, n).replace("'", "''")

    def shown(v: str) -> str:
        return f"left({v}, 60)"

    def given(n: str) -> str:  # an empty value is no value: a CSV's empty field (pandas
        # writes NaN so: eventsim's length and registration, on a row that has none)
        return f"nullif(trim(v_{n}), '') IS NOT NULL"

    def absent(n: str) -> str:
        blank = n in ("page", "ts", EVENT_KEY)  # an empty user_id is a guest's
        return f"v_{n} IS NULL" + (f" OR trim(v_{n}) = ''" if blank else "")

    when = (
        f"a time written {ts_format}"
        if ts_format
        else "an ISO-8601 time"
        if ts_unit == "iso"
        else f"a timestamp (epoch {ts_unit} or ISO-8601)"
    )
    when = when.replace("'", "''")
    bad_types = [
        ("ts", "t_ts", when),
        ("registration", "t_registration", when),
        ("session_id", "t_session_id", "an integer"),
        ("status", "t_status", "an integer"),
        ("item_in_session", "t_item_in_session", "an integer"),
        ("length", "t_length", "a number"),
        ("value", "t_value", "a number"),
    ]
    reasons = "\n".join(
        [f"WHEN {absent(n)} THEN 'missing_field'" for n in required]
        + ["WHEN nested IS NOT NULL THEN 'bad_type'"]
        + [f"WHEN {given(n)} AND {t} IS NULL THEN 'bad_type'" for n, t, _ in bad_types]
        + [f"WHEN {_BAD_LENGTH} OR {_BAD_VALUE} THEN 'bad_value'",
           "WHEN t_ts < $ts_min OR t_ts > $ts_max THEN 'ts_out_of_range'"]
    )  # fmt: skip
    details = "\n".join(
        [
            "WHEN pre_reason = 'invalid_utf8' THEN 'not valid UTF-8 (a file in another encoding "
            "is read with --encoding, e.g. cp1252)'",
            "WHEN pre_reason = 'empty_line' THEN 'blank line'",
            "WHEN pre_reason = 'invalid_json' THEN 'not valid JSON'",
            "WHEN pre_reason = 'not_an_object' THEN 'JSON value is not an object'",
            "WHEN pre_reason = 'bad_csv_row' THEN 'the header line again, not an event (CSV "
            "files joined with cat? ingest the files themselves, or their folder)'",
        ]
        + ([f"WHEN {absent('user_id')} AND NOT ({absent('ts')}) AND NOT ({absent('page')}) THEN "
            f"'missing required field user_id (source {src('user_id')}); a log whose events "
            "before sign-in have no user id is read with --anonymous guest'"]
           if "user_id" in required else [])
        + [f"WHEN {absent(n)} THEN 'missing required field {n} (source {src(n)})'"
           for n in required]
        + [f"WHEN nested = '{n}' THEN '{src(n)}: expected a string, got ' || {shown('v_' + n)}"
           for n in TEXT_FIELDS]
        + [f"WHEN {given(n)} AND {t} IS NULL THEN "
           f"'{src(n)}: expected {what}, got ' || {shown('v_' + n)}" for n, t, what in bad_types]
        + [f"WHEN {_BAD_LENGTH} THEN '{src('length')}: expected a finite number >= 0, got ' "
           "|| CAST(t_length AS VARCHAR)",
           f"WHEN {_BAD_VALUE} THEN '{src('value')}: expected a finite number, got ' "
           "|| CAST(t_value AS VARCHAR)",
           "WHEN reason = 'ts_out_of_range' THEN "
           + _out_of_range_detail(src("ts"), ts_unit, ts_format)]
    )  # fmt: skip
    return reasons, details


_CONTENT_KEY = (
    "user_id, CAST(epoch_ms(ts) AS VARCHAR), coalesce(CAST(session_id AS VARCHAR), ''), "
    "coalesce(CAST(item_in_session AS VARCHAR), ''), page, level, coalesce(song, ''), "
    "CAST(value AS VARCHAR)"  # concat_ws skips NULL: without a value, the key is as before
)


def event_id_sql(dedupe: str) -> str:
    """A stable event key: 63 bits of the MD5 of what makes two rows the same event, the same
    on any machine and DuckDB version. Deduplication matches on (user_id, ts, event_id).

    - `content`: user, time, session, position in the session, page, level, song and value;
    - `line`: the file's name (not its folder, but with the partition folders right above
      it: `level=paid/part-0.parquet`, as every partition may hold a `part-0.parquet`) and the
      line number, in the staging query where `source_file` is the file and `source_line` its
      line;
    - `key=COLUMN`: the source's own event id.
    """
    if dedupe == "line":
        name = r"regexp_extract(source_file, '(([^/\\=]+=[^/\\]*[/\\])*[^/\\]*)$', 1)"
        parts = f"'line', {name}, CAST(source_line AS VARCHAR)"
    elif dedupe.startswith("key="):
        parts = f"'key', {EVENT_KEY}"
    else:
        parts = _CONTENT_KEY
    return f"(md5_number_lower(concat_ws(chr(31), {parts})) >> 1)::BIGINT"
