#!/usr/bin/env python3
"""Download Binance public market data (daily/monthly trades and aggTrades .zip files with their
.CHECKSUM), verified (SHA-256) and resumable. A thin wrapper of pipeline.data.download."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipeline.data.download import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="download.py"))
