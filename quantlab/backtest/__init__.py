"""The replay backtester: candidates from decision snapshots (stage 1) and the portfolio pass
with risk rules and sizing (stage 2)."""
