"""Stage-1 path building: the open candidates of a pass and their growing CSR quote paths.

A candidate's path is every quote minute after its entry up to the minute its contract stops
trading (or the end of the sessions read). Its length is known when it is proposed, so each
candidate reserves its block of rows at once, in candidate order (the blocks are the CSR
offsets), and every session then fills the blocks of all open candidates in one numba call
(:func:`quantlab.backtest._path_kernels.extend_paths`), keyed on the OCC symbol because
Databento's instrument ids change from day to day.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

import numpy as np

from quantlab import calendar
from quantlab.backtest._path_kernels import extend_paths, minute_forwards
from quantlab.chain.snapshot import MIN_PER_YEAR, N_PAIRS
from quantlab.data.daycache import NO_CENTS
from quantlab.data.read import DayQuotes
from quantlab.errors import QuantlabError

MAX_LEGS = 4
#: what the forward of a path minute depends on: (root, expiry, rate, max quote age in s)
ForwardKey = tuple[str, dt.date, float, float]


class PathBook:
    """Open candidates and the path rows of every candidate of one stage-1 pass.

    Parameters
    ----------
    days : sequence of date
        The sessions the pass may read, ascending (paths stop where they stop).
    width : int
        Leg columns of the path arrays (the most legs any rule can propose).
    forwards : bool
        Keep each path minute's parity forward (``fwd``; without, ``fwd`` stays empty: a
        pass whose configs need no greeks skips that work).

    Call :meth:`allocate` with the rows to reserve at once (e.g. :meth:`bound` summed over the
    decisions to come) before adding candidates; the buffers grow if that was too little.
    """

    def __init__(self, days: Sequence[dt.date], width: int, *, forwards: bool = True) -> None:
        self.forwards = forwards
        self.days = list(days)
        self._day_index = {d: i for i, d in enumerate(self.days)}
        self._minutes: dict[dt.date, np.ndarray] = {}
        self._lengths: dict[tuple[int, int, int], int] = {}
        self.width = max(int(width), 1)
        self.offsets: list[int] = [0]
        self.allocate(0)
        self.day_ids: list[list[tuple[int, np.ndarray]]] = []
        # open candidates (struct of arrays) and those proposed but not yet added
        self._rows = np.empty(0, np.int64)
        self._start = np.empty(0, np.int64)
        self._close = np.empty(0, np.int64)
        self._cursor = np.empty(0, np.int64)
        self._n_legs = np.empty(0, np.int64)
        self._last_bid = np.empty((0, MAX_LEGS))
        self._last_ask = np.empty((0, MAX_LEGS))
        self._legs: list[tuple[str, ...]] = []
        self._fkeys: list[ForwardKey] = []
        self._new: list[tuple] = []

    # -- sizes ------------------------------------------------------------------------------
    def minutes(self, day: dt.date) -> np.ndarray:
        """Quote minutes of a session (cached)."""
        m = self._minutes.get(day)
        if m is None:
            m = self._minutes[day] = calendar.quote_minutes_ns(day)
        return m

    def path_length(self, day: dt.date, start_ns: int, close_ns: int) -> int:
        """Rows of a path from ``start_ns`` (exclusive, on ``day``) to ``close_ns`` (inclusive)
        over the sessions of this pass: what :meth:`extend` will write for it."""
        k0 = self._day_index[day]
        key = (k0, start_ns, close_ns)
        n = self._lengths.get(key)
        if n is not None:
            return n
        n = 0
        for d in self.days[k0:]:
            m = self.minutes(d)
            lo = int(np.searchsorted(m, start_ns, side="right"))
            hi = int(np.searchsorted(m, close_ns, side="right"))
            n += max(hi - lo, 0)
            if close_ns <= m[-1]:
                break
        self._lengths[key] = n
        return n

    def allocate(self, rows: int) -> None:
        """Reserve ``rows`` path rows (before any candidate is added). Every row is written by
        :meth:`extend` (leg columns beyond a candidate's legs included), so the buffers are
        allocated empty: rows never written cost address space, not memory."""
        if self.offsets[-1]:
            raise QuantlabError("PathBook.allocate() must come before the first candidate")
        self.ts = np.empty(rows, np.int64)
        self.fwd = np.empty(rows if self.forwards else 0, np.float64)
        self.bid = np.empty((rows, self.width), np.int32)
        self.ask = np.empty((rows, self.width), np.int32)

    def bound(self, day: dt.date, entry_ns: int, last_expiry: dt.date) -> int:
        """Most rows a candidate entered at ``entry_ns`` on ``day`` can need when its expiry
        is at most ``last_expiry`` (no contract trades past 16:15 ET of its expiry date)."""
        end = dt.datetime.combine(last_expiry, dt.time(16, 15), tzinfo=calendar.ET)
        return self.path_length(day, entry_ns, calendar.to_ns(end))

    def _reserve(self, n: int) -> int:
        start = self.offsets[-1]
        need = start + n
        cap = self.ts.shape[0]
        if need > cap:
            new = max(need, int(cap * 1.5))
            ts = np.empty(new, np.int64)
            ts[:start] = self.ts[:start]
            fwd = np.empty(new if self.forwards else 0, np.float64)
            fwd[: self.fwd.size] = self.fwd[:start]
            bid = np.empty((new, self.width), np.int32)
            bid[:start] = self.bid[:start]
            ask = np.empty((new, self.width), np.int32)
            ask[:start] = self.ask[:start]
            self.ts, self.fwd, self.bid, self.ask = ts, fwd, bid, ask
        self.offsets.append(need)
        return start

    # -- candidates -------------------------------------------------------------------------
    @property
    def n_open(self) -> int:
        return int(self._rows.size) + len(self._new)

    def add(
        self,
        row: int,
        day: dt.date,
        legs: tuple[str, ...],
        entry_ns: int,
        close_ns: int,
        entry_bid: np.ndarray,
        entry_ask: np.ndarray,
        fwd_key: ForwardKey,
    ) -> None:
        """Open candidate ``row`` (rows are added in order) entered at ``entry_ns`` on ``day``;
        ``entry_bid``/``entry_ask`` are its legs' quotes then (carried until a leg quotes);
        ``fwd_key`` says which parity forward its path minutes carry."""
        if row != len(self.day_ids):
            raise QuantlabError(
                f"candidates must be added in row order (got {row}, expected {len(self.day_ids)})"
            )
        self._reserve(self.path_length(day, entry_ns, close_ns))
        self.day_ids.append([])
        self._new.append((row, legs, entry_ns, close_ns, entry_bid, entry_ask, fwd_key))

    def _commit(self) -> None:
        if not self._new:
            return
        k = len(self._new)
        rows = np.array([x[0] for x in self._new], np.int64)
        self._rows = np.concatenate([self._rows, rows])
        self._start = np.concatenate([self._start, np.array([x[2] for x in self._new], np.int64)])
        self._close = np.concatenate([self._close, np.array([x[3] for x in self._new], np.int64)])
        offs = np.asarray(self.offsets, np.int64)
        self._cursor = np.concatenate([self._cursor, offs[rows]])
        self._n_legs = np.concatenate(
            [self._n_legs, np.array([len(x[1]) for x in self._new], np.int64)]
        )
        lb = np.full((k, MAX_LEGS), np.nan)
        la = np.full((k, MAX_LEGS), np.nan)
        for i, x in enumerate(self._new):
            lb[i] = x[4]
            la[i] = x[5]
        self._last_bid = np.concatenate([self._last_bid, lb])
        self._last_ask = np.concatenate([self._last_ask, la])
        self._legs.extend(x[1] for x in self._new)
        self._fkeys.extend(x[6] for x in self._new)
        self._new = []

    def extend(self, day: dt.date, dq: DayQuotes, sym_pos: dict[str, int]) -> None:
        """Append ``day``'s minutes (the :class:`~quantlab.data.read.DayQuotes` ``dq``) to every
        open candidate's path and close those whose contract stopped trading today."""
        self._commit()
        n = self._rows.size
        if n == 0:
            return
        minutes = self.minutes(day)
        leg_pos = np.full((n, MAX_LEGS), -1, np.int64)
        for c, legs in enumerate(self._legs):
            for j, occ in enumerate(legs):
                leg_pos[c, j] = sym_pos.get(occ, -1)
        before = self._cursor.copy()
        appended = np.zeros(n, bool)
        q_t, scale, q_bid, q_ask, cents = dq.kernel_arrays()
        extend_paths(
            minutes,
            minutes // np.int64(scale),
            q_t,
            dq.lo,
            dq.hi,
            q_bid,
            q_ask,
            cents,
            NO_CENTS,
            leg_pos,
            self._n_legs,
            self._start,
            self._close,
            self._last_bid,
            self._last_ask,
            self._cursor,
            self.ts,
            self.bid,
            self.ask,
            appended,
        )
        ids = np.where(leg_pos >= 0, dq.instrument_id[np.maximum(leg_pos, 0)], 0).astype(np.uint32)
        offs = self.offsets
        keys = {self._fkeys[c] for c in np.flatnonzero(appended)} if self.forwards else set()
        fwds = day_forwards(dq, minutes, keys)
        for c in np.flatnonzero(appended).tolist():
            row = int(self._rows[c])
            self.day_ids[row].append((int(before[c]) - offs[row], ids[c]))
            if not self.forwards:
                continue
            a, b = int(before[c]), int(self._cursor[c])
            lo = int(np.searchsorted(minutes, self.ts[a]))
            self.fwd[a:b] = fwds[self._fkeys[c]][lo : lo + b - a]
        keep = self._close > minutes[-1]
        if not keep.all():
            done = ~keep
            if np.any(self._cursor[done] != np.asarray(offs, np.int64)[self._rows[done] + 1]):
                raise QuantlabError(f"stage-1 paths on {day} were not filled as reserved")
            self._rows, self._start, self._close = (
                self._rows[keep],
                self._start[keep],
                self._close[keep],
            )
            self._cursor, self._n_legs = self._cursor[keep], self._n_legs[keep]
            self._last_bid, self._last_ask = self._last_bid[keep], self._last_ask[keep]
            self._legs = [legs for legs, k in zip(self._legs, keep.tolist(), strict=True) if k]
            self._fkeys = [f for f, k in zip(self._fkeys, keep.tolist(), strict=True) if k]

    # -- result -----------------------------------------------------------------------------
    def arrays(
        self, width: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(offsets, path_ts, path_bid, path_ask, path_fwd)`` with ``width`` leg columns."""
        self.check_filled()
        offsets = np.asarray(self.offsets, np.int64)
        total = int(offsets[-1])
        ts, bid, ask = self.ts[:total], self.bid[:total], self.ask[:total]
        if width != self.width:
            bid, ask = np.ascontiguousarray(bid[:, :width]), np.ascontiguousarray(ask[:, :width])
        return offsets, ts, bid, ask, self.fwd[: total if self.forwards else 0]

    def check_filled(self) -> None:
        """Raise if an open candidate's block was not filled to its reserved length (a bug)."""
        self._commit()
        if self._rows.size:
            offs = np.asarray(self.offsets, np.int64)
            ends = offs[self._rows + 1]
            # open at the end of the sessions: the reserved length counted the same sessions
            if np.any(self._cursor != ends):
                bad = int(self._rows[np.flatnonzero(self._cursor != ends)[0]])
                raise QuantlabError(f"stage-1 path of candidate {bad} was not filled as reserved")


def _parity_pairs(dq: DayQuotes, root: str, expiry: dt.date) -> tuple[np.ndarray, ...]:
    """``(strikes, call positions, put positions)`` of one expiry's listed strikes with both
    rights (the pairs the decision snapshot's parity fit looks at)."""
    pos = np.flatnonzero((dq.root == root) & (dq.expiry == np.datetime64(expiry, "D")))
    calls, puts = pos[dq.is_call[pos]], pos[~dq.is_call[pos]]
    ks = np.intersect1d(dq.strike[calls], dq.strike[puts])
    ci = calls[np.searchsorted(dq.strike[calls], ks)]
    pi = puts[np.searchsorted(dq.strike[puts], ks)]
    return ks, ci.astype(np.int64), pi.astype(np.int64)


def day_forwards(
    dq: DayQuotes, minutes: np.ndarray, keys: set[ForwardKey]
) -> dict[ForwardKey, np.ndarray]:
    """The parity forward of each ``(root, expiry, rate, max_age_s)`` at every one of the
    session's ``minutes``: what the decision snapshot
    (:class:`quantlab.chain.snapshot.ChainView`) would fit at that minute (NaN where no
    call/put pair is fresh, or once the expiry has settled)."""
    q_t, scale, q_bid, q_ask, cents = dq.kernel_arrays()
    out: dict[ForwardKey, np.ndarray] = {}
    for key in sorted(keys):
        root, expiry, rate, max_age_s = key
        ks, ci, pi = dq.derived(
            ("parity_pairs", root, expiry), functools.partial(_parity_pairs, dq, root, expiry)
        )
        f = np.full(minutes.size, np.nan)
        t = (calendar.settlement_ns(root, expiry) - minutes) / calendar.NS_PER_MINUTE / MIN_PER_YEAR
        live = t > 0
        if ks.size and live.any():
            m = minutes[live]
            g = np.empty(m.size)
            minute_forwards(
                m, m // np.int64(scale), np.int64(scale), q_t, dq.lo, dq.hi, q_bid, q_ask, cents,
                NO_CENTS, ci, pi, ks, np.exp(-rate * t[live]), np.int64(round(max_age_s * 1e9)),
                N_PAIRS, g,
            )  # fmt: skip
            f[live] = g
        out[key] = f
    return out
