"""Stage 2's compiled replay decides exactly as the live runner's DecisionBook, rule by rule,
on random candidate streams (both call the same book kernels; this checks the glue: the order
of decide / count / exit, sizing from realized P&L, and the money of each trade)."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from quantlab import calendar
from quantlab.backtest import replay as rp
from quantlab.risk.scenarios import SPOT_MOVES, VOL_MOVES
from quantlab.strategy import StrategySpec
from quantlab.strategy import book_kernels as bk
from quantlab.strategy import kernels as k
from quantlab.strategy.book import DecisionBook, book_params, decision_reason
from quantlab.strategy.rules import FILTER_REASONS

DAYS = [dt.date(2024, 3, 7), dt.date(2024, 3, 8), dt.date(2024, 3, 11)]  # Thu, Fri, Mon
TIMES = [dt.time(10, 0), dt.time(11, 0), dt.time(12, 0)]


def no_greek_limits(n: int) -> tuple:
    """The replay's ``risk`` tuple of a strategy without greek limits."""
    z = np.zeros((n, 2))
    return (
        np.full(bk.L_SIZE, np.inf), False, 0.045, np.zeros(0), z, np.zeros(n), z,
        np.zeros((n, bk.K_SIZE)), np.zeros((n, 0)), SPOT_MOVES, VOL_MOVES,
    )  # fmt: skip


def _ns(day: dt.date, t: dt.time) -> int:
    return calendar.to_ns(dt.datetime.combine(day, t, tzinfo=calendar.ET))


rules = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["each", "first_valid"]),
        "max_open": st.integers(1, 4),
        "max_new": st.integers(1, 2),
        "no_new_after_stop": st.booleans(),
        "loss_limit": st.sampled_from([None, 50.0, 300.0]),
        "drawdown": st.sampled_from([None, None, 0.5, 2.0]),
        "weekly": st.sampled_from([None, None, 100.0]),
        "streak": st.sampled_from([None, None, 1, 2]),
        "pause": st.integers(0, 2),
        "sizing": st.sampled_from([("fixed", 2), ("risk_pct", 3.0), ("probability", 5)]),
    }
)
candidate = st.tuples(
    st.sampled_from([0, 0, 0, 0, 0, 4, 7]),  # filter code
    st.sampled_from([False, False, False, True]),  # gated
    st.integers(100, 4000),  # max loss per share, cents
    st.integers(0, 3),  # exit reason (TP, SL, time, settlement)
    st.one_of(st.integers(1, 50), st.integers(1, 3000)),  # minutes to the exit (often same day)
    st.integers(-300, 1500),  # the exit row's bid (<= 0: none), cents
    st.floats(0.0, 1.0),  # probability
    st.integers(0, 9),  # 0: no usable exit quote
)


@settings(max_examples=60, deadline=None)
@given(rules, st.lists(candidate, min_size=1, max_size=9))
def test_the_replay_decides_as_the_decision_book(r: dict, cands: list[tuple]) -> None:
    mode, size = r["sizing"]
    sizing = {"mode": mode, "capital": 20_000}
    sizing |= {"risk_pct": size} if mode == "risk_pct" else {"contracts": size}
    s = StrategySpec.from_dict(
        {
            "name": "replay",
            "dte": {"target": 1},
            "entry": {"times": ["10:00", "11:00", "12:00"], "mode": r["mode"]},
            "short_delta": 0.2,
            "width": 10,
            "risk": {
                "max_open_trades": r["max_open"],
                "max_new_trades_per_day": r["max_new"],
                "no_new_after_stop": r["no_new_after_stop"],
                "daily_loss_limit": r["loss_limit"],
                "max_drawdown_pct": r["drawdown"],
                "weekly_loss_limit": r["weekly"],
                "max_consecutive_losses": r["streak"],
                "loss_pause_days": r["pause"],
            },
            "sizing": sizing,
        }
    )
    n = len(cands)
    slots = [(d, t) for d in DAYS for t in TIMES][:n]
    ts = np.array([_ns(d, t) for d, t in slots], np.int64)
    day = np.array([d.toordinal() for d, _ in slots], np.int64)
    fcode = np.array([c[0] for c in cands], np.int64)
    gated = np.array([c[1] for c in cands], bool)
    max_loss = np.array([c[2] for c in cands], np.int64)
    reason = np.array([c[3] for c in cands], np.int64)
    no_quote = np.array([c[7] == 0 for c in cands])
    exit_at = ts + np.array([c[4] for c in cands], np.int64) * 60_000_000_000
    prob = np.array([c[6] for c in cands])
    qty = np.tile(np.array([[-1, 1]], np.int64), (n, 1))
    bid = np.tile(np.array([[310, 120]], np.int64), (n, 1))
    ask = bid + 20
    strike = np.tile(np.array([[500_000, 499_000]], np.int64), (n, 1))
    # one path row per candidate, at its exit time; rules that make it exit as drawn
    path_bid = np.array([[min(c[5], 999), 0] if c[5] > 0 else [0, 0] for c in cands], np.int32)
    path_ask = path_bid + 10
    path_ask[no_quote, 0] = -1
    rules = np.zeros((n, k.RULE_SIZE), np.int64)
    rules[:, k.R_CREDIT] = 180
    rules[:, k.R_DEADLINE] = np.where(reason == k.REASON_TIME_EXIT, 0, 2**62)
    rules[:, k.R_USE_TP] = reason == k.REASON_TAKE_PROFIT
    rules[:, k.R_TP] = 2**60
    rules[:, k.R_USE_SL] = reason == k.REASON_STOP_LOSS
    rules[:, k.R_SL] = -(2**60)
    rules[:, k.R_HI] = 1000
    settle_cost = np.array([max(min(c[5], 1000), 0) for c in cands], np.int64)
    can_settle = (reason == k.REASON_SETTLEMENT) & ~no_quote
    midnights, ordinals = calendar.et_midnights(DAYS[0], DAYS[-1] + dt.timedelta(days=4))
    code = np.zeros(n, np.int64)
    money = np.zeros((n, rp.M_SIZE), np.int64)
    entry_px = np.zeros((n, 2), np.int64)
    exit_px = np.zeros((n, 2), np.int64)
    exits = np.zeros((n, 5), np.int64)
    exit_ts = np.zeros(n, np.int64)
    st_, pend = bk.new_state(n + 1)
    fail = rp.replay(
        st_, pend, book_params(s), ts, day, fcode, gated, max_loss, prob,
        np.full(n, 180, np.int64), qty, np.full(n, 2, np.int64), bid, ask, strike,
        np.zeros((n, 2), bool), np.full(n, 499_500, np.int64), np.arange(n, dtype=np.int64),
        np.ones(n, np.int64), exit_at, path_bid, path_ask, s.fills.params, s.fees.params,
        rules, settle_cost, can_settle, exit_at, midnights, ordinals,
        code, money, entry_px, exit_px, exits, exit_ts, no_greek_limits(n),
    )  # fmt: skip
    assert fail == -1
    book = DecisionBook(s)
    for j in range(n):
        d = book.decide(
            int(ts[j]),
            slots[j][0],
            filter_reason=FILTER_REASONS[fcode[j]],
            gate_reason="filtered_by_model" if gated[j] else "",
            max_loss_c=int(max_loss[j]),
            probability=float(prob[j]),
        )
        if code[j] == rp.D_NO_EXIT_QUOTES:
            assert d.taken
            continue
        want = FILTER_REASONS[fcode[j]] if code[j] == bk.D_FILTER else decision_reason(code[j])
        assert d.reason == want, (j, d, code[j])
        if not d.taken:
            assert money[j].tolist() == [0, 0, 0, 0]
            continue
        assert money[j, rp.M_CONTRACTS] == d.contracts
        assert exits[j, 1] == reason[j] and exit_ts[j] == exit_at[j]
        pnl = (180 - exits[j, 2]) * d.contracts * 100_000 - money[j, rp.M_FEES]
        assert money[j, rp.M_PNL] == pnl
        settled = exits[j, 1] == k.REASON_SETTLEMENT
        exit_fees = money[j, rp.M_FEES] - money[j, rp.M_ENTRY_FEES]
        assert exit_fees == 0 if settled else exit_fees > 0  # no fees at cash settlement
        book.open_trade(str(j), slots[j][0])
        book.close_trade(str(j), int(exit_at[j]), int(pnl), k.REASONS[reason[j]])
