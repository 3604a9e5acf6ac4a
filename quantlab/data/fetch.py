"""Download SPX/SPXW option data from Databento (OPRA.PILLAR) into a data store.

One file per ET session day and schema, at :func:`quantlab.data.layout.raw_file`
(``<store>/raw/OPRA.PILLAR/SPX/<day>/<schema>.dbn.zst``), each holding both parents
``SPX.OPT`` (AM-settled monthlies) and ``SPXW.OPT`` (PM-settled weeklies and dailies).

How a run goes
--------------
1. :func:`plan` lists one :class:`FetchRequest` per session (``quantlab.calendar.sessions``) and
   schema. A request's window is the ET calendar day as a UTC range, ``[00:00 ET, 24:00 ET)``
   (05:00Z or 04:00Z depending on daylight saving), so the day's definitions, the whole option
   session including the curb, and that day's statistics land in the day's file.
2. Requests whose file is already present *and verified* are skipped (resume): the receipt
   ``<schema>.dbn.zst.ok.json`` (``layout.raw_receipt_file``) written after a download must match the file's size and
   SHA-256, and the file's DBN metadata header must decode with databento's reader.
3. The cost of what is left is asked from ``client.metadata.get_cost`` (free) and summed. Above
   ``max_cost`` US dollars nothing is downloaded unless the caller confirms.
4. Each file is streamed to ``<file>.part``, verified (complete zstd frames, DBN metadata with the
   requested dataset and schema, records that end exactly on a record boundary), then moved into
   place with :func:`os.replace` and the receipt written. A partial download never leaves a file
   that looks complete.

Transient failures (HTTP 429/408/5xx, connection errors, a body cut short) are retried with a
bounded exponential backoff; anything else fails at once with a :class:`~quantlab.errors.DataError`.

The API key comes from the ``DATABENTO_API_KEY`` environment variable only. It is never logged or
printed, and every message this module produces is scrubbed of it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import logging
import os
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np

from quantlab.data import layout
from quantlab.errors import ConfigError, DataError, InputError

logger = logging.getLogger(__name__)

ET: Final = ZoneInfo("America/New_York")
DATASET: Final = layout.DATASET
PARENTS: Final = ("SPX.OPT", "SPXW.OPT")
UNDERLYING: Final = "SPX"
STYPE_IN: Final = "parent"
DEFAULT_MAX_COST: Final = 5.0
API_KEY_ENV: Final = "DATABENTO_API_KEY"
_RECEIPT_VERSION: Final = 1
_TRANSIENT_HTTP: Final = frozenset({408, 429})
_CHUNK: Final = 1 << 20

__all__ = [
    "DEFAULT_MAX_COST",
    "PARENTS",
    "CostRefused",
    "FetchReport",
    "FetchRequest",
    "check_receipt",
    "day_window",
    "estimate_cost",
    "fetch",
    "make_client",
    "plan",
    "verify_dbn_file",
]


class CostRefused(DataError):
    """The estimated cost is above the limit and the caller did not confirm. Nothing was spent."""

    def __init__(self, message: str, cost: float, max_cost: float) -> None:
        super().__init__(message)
        self.cost = cost
        self.max_cost = max_cost


@dataclasses.dataclass(frozen=True)
class FetchRequest:
    """One download: a session day and a schema, written to ``path``."""

    day: dt.date
    schema: str
    start: dt.datetime
    end: dt.datetime
    path: Path
    receipt: Path

    @property
    def label(self) -> str:
        return f"{self.schema} {self.day.isoformat()}"


@dataclasses.dataclass
class FetchReport:
    """What :func:`fetch` did: files downloaded and skipped, the estimated cost, bytes written."""

    downloaded: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[Path] = dataclasses.field(default_factory=list)
    estimated_cost: float = 0.0
    bytes_written: int = 0
    attempts: int = 0


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------
def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """UTC range ``[00:00 ET, next day 00:00 ET)`` of an ET day (handles daylight saving)."""
    start = dt.datetime.combine(day, dt.time(0), tzinfo=ET)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=ET)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def plan(
    store: Path | str,
    start: dt.date | str,
    end: dt.date | str,
    schemas: Sequence[str] = layout.RAW_SCHEMAS,
) -> list[FetchRequest]:
    """One request per ET session in ``[start, end]`` and schema, in (day, schema) order.

    Raises
    ------
    InputError
        If a schema is not one of ``layout.RAW_SCHEMAS`` or the dates are not valid.
    """
    from quantlab import calendar

    bad = [s for s in schemas if s not in layout.RAW_SCHEMAS]
    if bad or not schemas:
        raise InputError(
            f"schemas must be a non-empty subset of {list(layout.RAW_SCHEMAS)} (got {list(schemas)})."
        )
    out = []
    for day in calendar.sessions(start, end):
        lo, hi = day_window(day)
        for schema in dict.fromkeys(schemas):
            path = layout.raw_file(store, UNDERLYING, day, schema)
            receipt = layout.raw_receipt_file(store, UNDERLYING, day, schema)
            out.append(FetchRequest(day, schema, lo, hi, path, receipt))
    return out


# --------------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    from quantlab.data.store import sha256_file

    return sha256_file(path, _CHUNK)


class _RecordWalker:
    """Consume a decompressed DBN stream; check the prefix and that records tile it exactly."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.buf = bytearray()
        self.meta_left: int | None = None
        self.records = 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        if self.meta_left is None:
            if len(self.buf) < 8:
                return
            if bytes(self.buf[:3]) != b"DBN":
                raise DataError(
                    f"{self.where}: not a DBN stream (starts with {bytes(self.buf[:3])!r})."
                )
            self.meta_left = 8 + struct.unpack_from("<I", self.buf, 4)[0]
        if self.meta_left:
            take = min(self.meta_left, len(self.buf))
            del self.buf[:take]
            self.meta_left -= take
            if self.meta_left:
                return
        self._walk()

    def _walk(self) -> None:
        buf, pos, n = self.buf, 0, len(self.buf)
        while pos < n:
            length = buf[pos] * 4
            if length == 0:
                raise DataError(
                    f"{self.where}: record {self.records} has length 0 (corrupt stream)."
                )
            # Fast path: a run of equal-length records (every schema we fetch is fixed-size).
            count = (n - pos) // length
            if count > 1:
                same = _run_length(buf, pos, length, count)
                if same > 1:
                    self.records += same
                    pos += same * length
                    continue
            if pos + length > n:
                break
            self.records += 1
            pos += length
        del buf[:pos]

    def finish(self) -> int:
        if self.meta_left is None or self.meta_left:
            raise DataError(
                f"{self.where}: the DBN metadata header is incomplete (file truncated)."
            )
        if self.buf:
            raise DataError(
                f"{self.where}: the stream ends inside a record ({len(self.buf)} stray bytes after "
                f"{self.records} records): the file is truncated."
            )
        return self.records


def _run_length(buf: bytearray, pos: int, length: int, count: int) -> int:
    """How many of the next ``count`` records starting at ``pos`` have length ``length``."""
    heads = np.frombuffer(buf, dtype=np.uint8, count=count * length, offset=pos)[::length]
    eq = heads == buf[pos]
    return count if bool(eq.all()) else int(np.argmin(eq))


def verify_dbn_file(path: Path, *, dataset: str = DATASET, schema: str | None = None) -> int:
    """Check a ``.dbn.zst`` file end to end and return its record count.

    The zstd frames must all be complete, the DBN metadata must decode with databento's reader
    and name ``dataset`` (and ``schema`` when given), and the records must end exactly at the end
    of the stream.

    Raises
    ------
    DataError
        Naming the file and what is wrong with it.
    """
    import databento as db
    import zstandard

    where = str(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"{where}: missing or empty.")
    try:
        store = db.DBNStore.from_file(path)
        meta_dataset, meta_schema = store.dataset, store.schema
    except Exception as exc:
        raise DataError(f"{where}: the DBN metadata does not decode ({exc}).") from None
    if meta_dataset != dataset:
        raise DataError(f"{where}: dataset is {meta_dataset!r}, expected {dataset!r}.")
    if schema is not None and str(meta_schema) != schema:
        raise DataError(f"{where}: schema is {str(meta_schema)!r}, expected {schema!r}.")

    walker = _RecordWalker(where)
    dctx = zstandard.ZstdDecompressor()
    obj = dctx.decompressobj()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            data = chunk
            while data:
                try:
                    walker.feed(obj.decompress(data))
                except zstandard.ZstdError as exc:
                    raise DataError(f"{where}: zstd data is corrupt ({exc}).") from None
                data = obj.unused_data if obj.eof else b""
                if data:
                    obj = dctx.decompressobj()
    if not obj.eof:
        raise DataError(f"{where}: the last zstd frame is incomplete (file truncated).")
    return walker.finish()


def check_receipt(path: Path, receipt: Path, *, schema: str | None = None) -> str | None:
    """Why the file at ``path`` cannot be trusted as a finished download, or ``None`` if it can.

    A file counts as done when its ``receipt`` (see ``layout.raw_receipt_file``) exists, size and
    SHA-256 match, and its DBN metadata decodes with the expected dataset and schema (records
    are walked at download time only).
    """
    import databento as db

    rec = receipt
    if not path.is_file():
        return "file missing"
    if not rec.is_file():
        return "no receipt (download did not finish)"
    try:
        info = json.loads(rec.read_text())
        size, sha = int(info["size"]), str(info["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable receipt ({exc})"
    if path.stat().st_size != size:
        return f"size {path.stat().st_size} != receipt {size}"
    if _sha256(path) != sha:
        return "sha256 differs from the receipt"
    try:
        store = db.DBNStore.from_file(path)
        if store.dataset != DATASET or (schema is not None and str(store.schema) != schema):
            return f"metadata names {store.dataset}/{store.schema}"
    except Exception as exc:
        return f"metadata does not decode ({exc})"
    return None


# --------------------------------------------------------------------------------------------
# client, retries and secrets
# --------------------------------------------------------------------------------------------
def make_client(gateway: str | None = None) -> Any:
    """``databento.Historical`` with the key from ``DATABENTO_API_KEY`` (never from arguments).

    Raises
    ------
    ConfigError
        If the variable is unset or blank.
    """
    import databento as db

    key = os.environ.get(API_KEY_ENV, "")
    if not key.strip():
        raise ConfigError(
            f"{API_KEY_ENV} is not set. Export your Databento API key (db-...) in the environment; "
            "quantlab never reads it from files or arguments."
        )
    kwargs: dict[str, Any] = {"key": key}
    if gateway:
        kwargs["gateway"] = gateway
    try:
        return db.Historical(**kwargs)
    except ValueError as exc:
        raise ConfigError(_scrub(f"could not create the Databento client: {exc}", key)) from None


def _secrets(key: str | None) -> list[str]:
    if not key:
        return []
    basic = base64.b64encode(f"{key}:".encode()).decode()
    return [key, basic]


def _scrub(text: str, key: str | None) -> str:
    for secret in _secrets(key):
        text = text.replace(secret, "<DATABENTO_API_KEY>")
    return text


def _client_key(client: Any) -> str | None:
    key = getattr(client, "key", None)
    return key if isinstance(key, str) else None


def _is_transient(exc: BaseException) -> bool:
    """HTTP 408/429/5xx, connection errors and bodies cut short are worth another try."""
    import requests
    from databento.common.error import BentoClientError, BentoError, BentoServerError

    if isinstance(exc, BentoServerError):
        return True
    if isinstance(exc, BentoClientError):
        return getattr(exc, "http_status", None) in _TRANSIENT_HTTP
    if isinstance(exc, requests.exceptions.RequestException):
        return isinstance(
            exc,
            requests.exceptions.ConnectionError
            | requests.exceptions.Timeout
            | requests.exceptions.ChunkedEncodingError,
        )
    if isinstance(exc, BentoError):  # "Error streaming response: ..." (body cut short)
        return True
    return isinstance(exc, _Truncated | ConnectionError | TimeoutError)


class _Truncated(Exception):
    """A downloaded body failed verification (treated as transient)."""


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class _Retry:
    retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = time.sleep


def _with_retries(
    what: str,
    fn: Callable[[], Any],
    *,
    key: str | None,
    policy: _Retry,
    on_attempt: Callable[[], None] | None = None,
) -> Any:
    """Call ``fn`` up to ``retries + 1`` times, sleeping ``backoff * 2**i`` (capped) in between."""
    retries, backoff, max_backoff = policy.retries, policy.backoff, policy.max_backoff
    for attempt in range(retries + 1):
        if on_attempt is not None:
            on_attempt()
        try:
            return fn()
        except Exception as exc:
            reason = _scrub(f"{type(exc).__name__}: {exc}", key)
            if not _is_transient(exc):
                raise DataError(f"{what} failed: {reason}") from None
            if attempt == retries:
                raise DataError(
                    f"{what} failed after {retries + 1} attempts; last error: {reason}"
                ) from None
            delay = min(max_backoff, backoff * 2**attempt)
            hinted = _retry_after(exc)
            if hinted is not None:
                delay = min(max_backoff, max(delay, hinted))
            logger.warning("%s: %s; retrying in %.1f s", what, reason, delay)
            policy.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# cost and download
# --------------------------------------------------------------------------------------------
def estimate_cost(
    client: Any, requests: Iterable[FetchRequest], *, policy: _Retry | None = None
) -> float:
    """Sum of ``client.metadata.get_cost`` over the requests, in US dollars."""
    key = _client_key(client)
    total = 0.0
    for req in requests:

        def ask(req: FetchRequest = req) -> Any:
            return client.metadata.get_cost(
                dataset=DATASET,
                start=req.start,
                end=req.end,
                symbols=list(PARENTS),
                schema=req.schema,
                stype_in=STYPE_IN,
            )

        cost = _with_retries(
            f"cost estimate for {req.label}", ask, key=key, policy=policy or _Retry()
        )
        try:
            total += float(cost)
        except (TypeError, ValueError):
            raise DataError(
                f"cost estimate for {req.label}: expected a number, got {cost!r}."
            ) from None
    return total


def _download_one(client: Any, req: FetchRequest) -> tuple[int, int, str]:
    """Stream one request to ``<file>.part``, verify it, move it into place. Returns
    (size, records, sha256)."""
    part = req.path.with_name(req.path.name + ".part")
    req.path.parent.mkdir(parents=True, exist_ok=True)
    req.receipt.unlink(missing_ok=True)
    part.unlink(missing_ok=True)
    try:
        try:
            client.timeseries.get_range(
                dataset=DATASET,
                start=req.start,
                end=req.end,
                symbols=list(PARENTS),
                schema=req.schema,
                stype_in=STYPE_IN,
                path=part,
            )
        except Exception as exc:
            from databento.common.error import BentoHttpError

            if _is_transient(exc) or isinstance(exc, BentoHttpError | OSError):
                raise
            # The body arrived but databento's reader cannot open it: cut short or garbled.
            raise _Truncated(
                f"the downloaded body does not decode ({type(exc).__name__}: {exc})"
            ) from None
        try:
            records = verify_dbn_file(part, schema=req.schema)
        except DataError as exc:
            raise _Truncated(str(exc)) from None
        size, sha = part.stat().st_size, _sha256(part)
        with open(part, "rb") as f:
            os.fsync(f.fileno())
        os.replace(part, req.path)
    finally:
        part.unlink(missing_ok=True)
    return size, records, sha


def _write_receipt(req: FetchRequest, size: int, records: int, sha: str) -> None:
    info = {
        "version": _RECEIPT_VERSION,
        "dataset": DATASET,
        "schema": req.schema,
        "day": req.day.isoformat(),
        "symbols": list(PARENTS),
        "stype_in": STYPE_IN,
        "start": req.start.isoformat(),
        "end": req.end.isoformat(),
        "size": size,
        "records": records,
        "sha256": sha,
        "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    rec = req.receipt
    tmp = rec.with_name(rec.name + ".part")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, rec)


def fetch(
    store: Path | str,
    start: dt.date | str,
    end: dt.date | str,
    *,
    schemas: Sequence[str] = layout.RAW_SCHEMAS,
    max_cost: float = DEFAULT_MAX_COST,
    yes: bool = False,
    confirm: Callable[[float], bool] | None = None,
    client: Any = None,
    gateway: str | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    max_backoff: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> FetchReport:
    """Download OPRA.PILLAR ``SPX.OPT`` + ``SPXW.OPT`` for every session in ``[start, end]``.

    Parameters
    ----------
    store
        Data store root (see :mod:`quantlab.data.layout`).
    start, end
        First and last ET session date (inclusive); non-sessions are skipped.
    schemas
        Any of ``definition``, ``cbbo-1m``, ``statistics``.
    max_cost
        US dollars that may be spent without confirmation.
    yes
        Spend above ``max_cost`` without asking.
    confirm
        Called with the estimate when it is above ``max_cost`` and ``yes`` is false; return True
        to go ahead. Without it the run is refused.
    client
        A ``databento.Historical``; by default one is made by :func:`make_client` (key from
        ``DATABENTO_API_KEY``), pointed at ``gateway`` when given.
    retries, backoff, max_backoff, sleep
        Transient errors are retried ``retries`` times after ``min(max_backoff, backoff * 2**i)``
        seconds (or a larger ``Retry-After``).
    progress
        Receives one human-readable line per step (never containing the key).

    Returns
    -------
    FetchReport

    Raises
    ------
    CostRefused
        The estimate is above ``max_cost`` and was not confirmed; nothing was downloaded.
    DataError
        A download failed for good; files finished before it are kept and verified.
    ConfigError
        ``DATABENTO_API_KEY`` is not set.
    """
    if not (max_cost >= 0):
        raise InputError(
            f"max_cost must be a non-negative number of US dollars (got {max_cost!r})."
        )
    if retries < 0:
        raise InputError(f"retries must be >= 0 (got {retries!r}).")
    say = progress or (lambda msg: logger.info("%s", msg))
    requests_all = plan(store, start, end, schemas)
    report = FetchReport()
    pending = []
    for req in requests_all:
        why = check_receipt(req.path, req.receipt, schema=req.schema)
        if why is None:
            report.skipped.append(req.path)
        else:
            if req.path.exists() or req.receipt.exists():
                say(f"{req.label}: present but not verified ({why}); downloading again")
            pending.append(req)
    if report.skipped:
        say(f"{len(report.skipped)} file(s) already downloaded and verified; skipping them")
    if not pending:
        say("nothing to download")
        return report

    client = client if client is not None else make_client(gateway)
    key = _client_key(client)
    policy = _Retry(retries, backoff, max_backoff, sleep)
    cost = estimate_cost(client, pending, policy=policy)
    report.estimated_cost = cost
    days = len({r.day for r in pending})
    say(f"estimated cost: ${cost:,.2f} for {len(pending)} file(s) over {days} session(s)")
    if cost > max_cost and not yes:
        ok = confirm(cost) if confirm is not None else False
        if not ok:
            raise CostRefused(
                f"estimated cost ${cost:,.2f} is above the limit of ${max_cost:,.2f}; nothing was "
                "downloaded. Re-run with --yes (or a higher --max-cost) to spend it.",
                cost,
                max_cost,
            )

    def count_attempt() -> None:
        report.attempts += 1

    for i, req in enumerate(pending, 1):

        def download(req: FetchRequest = req) -> tuple[int, int, str]:
            return _download_one(client, req)

        size, records, sha = _with_retries(
            f"download of {req.label}", download, key=key, policy=policy, on_attempt=count_attempt
        )
        _write_receipt(req, size, records, sha)
        report.downloaded.append(req.path)
        report.bytes_written += size
        say(f"[{i}/{len(pending)}] {req.label}: {size:,} bytes, {records:,} records")
    return report
