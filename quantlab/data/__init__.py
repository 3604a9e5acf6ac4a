"""Market data: Databento OPRA download, the synthetic OPRA market, ingest and the Parquet store."""
