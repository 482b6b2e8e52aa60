#!/usr/bin/env python3
"""Export recordings (.npy record files, raw .txt.gz replayed through the real parsers) and
downloaded Binance .zip files as Parquet, partitioned by venue/symbol/date, for DuckDB, pandas,
polars or Spark. A thin wrapper of pipeline.data.export."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipeline.data.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="export.py"))
