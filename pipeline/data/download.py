"""Download Binance public market data (the data.binance.vision layout), verified and resumable.

The public site serves, for spot:
  data/spot/daily/<kind>/<SYMBOL>/<SYMBOL>-<kind>-<YYYY-MM-DD>.zip      (+ .CHECKSUM)
  data/spot/monthly/<kind>/<SYMBOL>/<SYMBOL>-<kind>-<YYYY-MM>.zip       (+ .CHECKSUM)
with <kind> = trades or aggTrades; each .zip holds one CSV of the same stem and each .CHECKSUM one
line `<sha256 hex>  <file name>`. Files land under `dest` in the same layout
(`dest/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-08-08.zip`), so the backtester and `export`
read them where they are.

Resumable: a file is fetched into `<name>.part` (continued with an HTTP Range request when a
partial one is there), checked against its .CHECKSUM (SHA-256) and only then renamed into place.
A file already in place whose checksum matches is skipped without a download. A checksum mismatch
deletes the partial file and fetches once more from the start; a second mismatch is an error for
that file. A missing file (404: no trading that day, or not published yet) is reported, not
fatal. Every outcome is counted in the returned `Report`.

    python scripts/download.py --symbols BTCUSDT,ETHUSDT --kinds trades,aggTrades \
        --start 2024-08-01 --end 2024-08-07 --dest data/binance
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urljoin

import requests

log = logging.getLogger("pipeline.data.download")

BASE_URL = "https://data.binance.vision/"
KINDS = ("trades", "aggTrades")
INTERVALS = ("daily", "monthly")
CHUNK = 1 << 14          # a broken transfer resumes after the last whole chunk written
_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
_SHA = re.compile(r"^[0-9a-fA-F]{64}$")


class DownloadError(RuntimeError):
    """A file could not be fetched or verified; the message names the file and the cause."""


@dataclass(frozen=True)
class Item:
    """One archive: its path on the site (and under dest) without the leading `data/`."""
    symbol: str
    kind: str
    interval: str
    period: str                    # YYYY-MM-DD (daily) or YYYY-MM (monthly)
    market: str = "spot"

    @property
    def name(self) -> str:
        return f"{self.symbol}-{self.kind}-{self.period}.zip"

    @property
    def rel(self) -> str:
        return f"{self.market}/{self.interval}/{self.kind}/{self.symbol}/{self.name}"

    @property
    def url_path(self) -> str:
        return f"data/{self.rel}"


@dataclass
class Report:
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)      # already there and verified
    missing: list[str] = field(default_factory=list)      # 404 on the site
    failed: dict[str, str] = field(default_factory=dict)  # rel → reason
    resumed: int = 0                                      # downloads continued from a .part
    bytes: int = 0                                        # bytes received

    def summary(self) -> str:
        return (f"{len(self.downloaded)} downloaded ({self.bytes / 1e6:,.1f} MB, "
                f"{self.resumed} resumed), {len(self.skipped)} already verified, "
                f"{len(self.missing)} not on the site, {len(self.failed)} failed")


def parse_date(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {s!r}") from None


def plan(symbols, kinds, start: date, end: date, interval: str = "daily",
         market: str = "spot") -> list[Item]:
    """The archives covering [start, end] (inclusive): one per day, or one per month touched."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown kind(s) {', '.join(bad)} (known: {', '.join(KINDS)})")
    syms = [s.strip().upper() for s in symbols if s.strip()]
    for s in syms:
        if not _SYMBOL.match(s):
            raise ValueError(f"not a symbol: {s!r}")
    if not syms:
        raise ValueError("no symbols")
    periods = []
    if interval == "daily":
        d = start
        while d <= end:
            periods.append(d.isoformat())
            d += timedelta(days=1)
    else:
        y, m = start.year, start.month
        while (y, m) <= (end.year, end.month):
            periods.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return [Item(s, k, interval, p, market) for s in syms for k in kinds for p in periods]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_checksum(text: str, name: str) -> str:
    """The SHA-256 of a .CHECKSUM file's `<hex>  <name>` line; DownloadError if malformed."""
    parts = text.split()
    if not parts or not _SHA.match(parts[0]):
        raise DownloadError(f"{name}.CHECKSUM: not a SHA-256 line: {text[:80]!r}")
    if len(parts) > 1 and parts[1].lstrip("*") != name:
        raise DownloadError(f"{name}.CHECKSUM names {parts[1]!r}, not {name!r}")
    return parts[0].lower()


class _Progress:
    """tqdm over bytes when available and wanted; silent otherwise."""

    def __init__(self, enabled: bool | None):
        self.bar = None
        if enabled is False:
            return
        try:
            from tqdm import tqdm
        except ImportError:        # progress is a convenience: the download works without it
            return
        # enabled None: tqdm decides (a bar on a terminal, nothing in a pipe or CI log)
        self.bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024,
                        disable=None if enabled is None else False, file=sys.stderr,
                        dynamic_ncols=True)

    def expect(self, n: int) -> None:
        if self.bar is not None:
            self.bar.total = (self.bar.total or 0) + n
            self.bar.refresh()

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def label(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Downloader:
    """Fetches `Item`s from `base_url` into `dest`. One requests.Session (keep-alive)."""

    def __init__(self, dest: str | Path, base_url: str = BASE_URL, *, timeout: float = 30.0,
                 retries: int = 3, backoff_s: float = 1.0, progress: bool | None = None,
                 session: requests.Session | None = None):
        self.dest = Path(dest)
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "pipeline-download/0.1")
        self.progress = _Progress(progress)

    # -- one request, with bounded retries on connection errors and 5xx
    def _get(self, path: str, headers: dict | None = None, stream: bool = False):
        url = urljoin(self.base, path)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                r = self.session.get(url, headers=headers or {}, stream=stream,
                                     timeout=self.timeout)
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
                log.warning("GET %s failed (attempt %d/%d): %s", url, attempt + 1,
                            self.retries + 1, last)
                continue
            if r.status_code >= 500:
                last = f"HTTP {r.status_code}"
                r.close()
                log.warning("GET %s: HTTP %d (attempt %d/%d)", url, r.status_code, attempt + 1,
                            self.retries + 1)
                continue
            return r
        raise DownloadError(f"{url}: {last} after {self.retries + 1} attempts")

    def expected_sha(self, item: Item) -> str | None:
        """The site's SHA-256 for the item (also saved beside it); None when the site has no
        such file."""
        r = self._get(item.url_path + ".CHECKSUM")
        with r:
            if r.status_code == 404:
                return None
            if r.status_code != 200:
                raise DownloadError(f"{item.rel}.CHECKSUM: HTTP {r.status_code}")
            text = r.text
        sha = parse_checksum(text, item.name)
        ck = self.dest / (item.rel + ".CHECKSUM")
        ck.parent.mkdir(parents=True, exist_ok=True)
        ck.write_text(text)
        return sha

    def _fetch(self, item: Item, part: Path, report: Report) -> None:
        """Into `part`, continuing it when it holds a prefix (Range), else from the start."""
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        r = self._get(item.url_path, headers=headers, stream=True)
        with r:
            if r.status_code == 416 and have:          # the part is already complete
                return
            if r.status_code == 404:
                raise FileNotFoundError(item.rel)
            if r.status_code == 206 and have:
                mode = "ab"
                report.resumed += 1
            elif r.status_code == 200:
                mode, have = "wb", 0                    # the server ignored Range: start over
            else:
                raise DownloadError(f"{item.rel}: HTTP {r.status_code}")
            size = r.headers.get("Content-Length")
            if size and size.isdigit():
                self.progress.expect(int(size))
            self.progress.label(item.name)
            with open(part, mode) as f:
                for chunk in r.iter_content(CHUNK):
                    f.write(chunk)
                    report.bytes += len(chunk)
                    self.progress.advance(len(chunk))

    def _fetch_resuming(self, item: Item, part: Path, report: Report) -> None:
        """`_fetch`, continued from what arrived when the connection breaks mid-body."""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                self._fetch(item, part, report)
                return
            except requests.RequestException as exc:
                have = part.stat().st_size if part.exists() else 0
                log.warning("%s: transfer broke after %d bytes (attempt %d/%d): %s; resuming",
                            item.rel, have, attempt + 1, self.retries + 1, exc)
        raise DownloadError(f"{item.rel}: transfer kept breaking ({self.retries + 1} attempts)")

    def get(self, item: Item, report: Report) -> None:
        """Fetch and verify one item; the outcome goes into `report`."""
        final = self.dest / item.rel
        part = final.with_name(final.name + ".part")
        try:
            sha = self.expected_sha(item)
            if sha is None:
                report.missing.append(item.rel)
                log.info("%s: not on the site (404)", item.rel)
                return
            if final.exists():
                if sha256_of(final) == sha:
                    report.skipped.append(item.rel)
                    return
                log.warning("%s: present but its checksum does not match: fetching again",
                            item.rel)
                final.unlink()
            final.parent.mkdir(parents=True, exist_ok=True)
            for attempt in (1, 2):
                self._fetch_resuming(item, part, report)
                got = sha256_of(part)
                if got == sha:
                    os.replace(part, final)
                    report.downloaded.append(item.rel)
                    log.info("%s: downloaded and verified", item.rel)
                    return
                part.unlink()
                log.warning("%s: SHA-256 %s, expected %s (attempt %d/2)", item.rel, got, sha,
                            attempt)
            raise DownloadError(f"{item.rel}: SHA-256 mismatch twice (expected {sha})")
        except FileNotFoundError:
            report.missing.append(item.rel)
            log.info("%s: not on the site (404)", item.rel)
        except (DownloadError, OSError) as exc:
            report.failed[item.rel] = str(exc)
            log.error("%s: %s", item.rel, exc)

    def run(self, items: list[Item]) -> Report:
        report = Report()
        try:
            for item in items:
                self.get(item, report)
        finally:
            self.progress.close()
        return report


def download(items: list[Item], dest: str | Path, base_url: str = BASE_URL, **kw) -> Report:
    """Fetch and verify `items` into `dest` (see the module docstring); never raises for one
    file's failure: the `Report` lists it."""
    return Downloader(dest, base_url, **kw).run(items)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    ap.add_argument("--kinds", default="trades", help=f"comma-separated from {', '.join(KINDS)} "
                                                        "(default: trades)")
    ap.add_argument("--start", required=True, type=parse_date, help="first day, YYYY-MM-DD")
    ap.add_argument("--end", type=parse_date, help="last day, YYYY-MM-DD (default: --start)")
    ap.add_argument("--interval", choices=INTERVALS, default="daily",
                    help="daily files, or monthly files for the months the range touches")
    ap.add_argument("--dest", default="data/binance", help="where files go (default: %(default)s)")
    ap.add_argument("--base-url", default=BASE_URL, help="the public data site (default: "
                                                          "%(default)s)")
    ap.add_argument("--retries", type=int, default=3, help="retries per request on errors/5xx")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_args(args: argparse.Namespace) -> int:
    try:
        items = plan(args.symbols.split(","), [k.strip() for k in args.kinds.split(",")],
                     args.start, args.end or args.start, args.interval)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(items)} file(s) from {args.base_url} into {args.dest}", flush=True)
    rep = download(items, args.dest, args.base_url, retries=args.retries, timeout=args.timeout,
                   progress=False if args.no_progress else None)
    for rel in rep.missing:
        print(f"  not on the site: {rel}")
    for rel, why in rep.failed.items():
        print(f"  FAILED: {rel}: {why}")
    print(rep.summary())
    return 1 if rep.failed else 0


def main(argv=None, prog: str = "pipeline download") -> int:
    """`pipeline download` (and scripts/download.py): see --help."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_args(args)


if __name__ == "__main__":
    sys.exit(main())
