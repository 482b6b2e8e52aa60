"""Market data tools: `download` (Binance public data, verified and resumable) and `export`
(recordings and downloads as Parquet, partitioned by venue/symbol/date). See docs/data.md."""
