"""`download` against a loopback HTTP server laid out like Binance's public data site: real HTTP,
real .zip files and .CHECKSUM files made here; verified, resumable, skips what is verified."""
import hashlib
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from binance_site import Site, csv_text, put_archive, trade_rows
from pipeline.data import download as dl

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)

DAY = "spot/daily/trades/BTCUSDT/BTCUSDT-trades-{}.zip"


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    for d in ("2024-08-07", "2024-08-08"):
        put_archive(root, DAY.format(d), csv_text(trade_rows(6000, 1723075200000)))
    put_archive(root, "spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-08-07.zip",
                csv_text(trade_rows(50, 1723075200000, agg=True)))
    put_archive(root, "spot/monthly/trades/ETHUSDT/ETHUSDT-trades-2024-07.zip",
                csv_text(trade_rows(30, 1719792000000)))
    with Site(root) as s:
        yield s


def fetch(site, dest, items, **kw):
    return dl.download(items, dest, site.url, progress=False, backoff_s=0.01, **kw)


def test_plan_daily_and_monthly():
    items = dl.plan(["btcusdt"], ["trades", "aggTrades"], date(2024, 8, 30), date(2024, 9, 1))
    assert [i.rel for i in items[:3]] == [
        "spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-08-30.zip",
        "spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-08-31.zip",
        "spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-09-01.zip"]
    assert len(items) == 6
    months = dl.plan(["ETHUSDT"], ["trades"], date(2024, 11, 20), date(2025, 1, 3), "monthly")
    assert [i.period for i in months] == ["2024-11", "2024-12", "2025-01"]
    with pytest.raises(ValueError, match="before start"):
        dl.plan(["BTCUSDT"], ["trades"], date(2024, 8, 2), date(2024, 8, 1))
    with pytest.raises(ValueError, match="unknown kind"):
        dl.plan(["BTCUSDT"], ["klines"], date(2024, 8, 1), date(2024, 8, 1))
    with pytest.raises(ValueError, match="not a symbol"):
        dl.plan(["../etc"], ["trades"], date(2024, 8, 1), date(2024, 8, 1))


def test_downloads_verify_and_a_second_run_fetches_nothing(site, tmp_path):
    dest = tmp_path / "dest"
    items = (dl.plan(["BTCUSDT"], ["trades", "aggTrades"], date(2024, 8, 7), date(2024, 8, 8))
             + dl.plan(["ETHUSDT"], ["trades"], date(2024, 7, 1), date(2024, 7, 1), "monthly"))
    rep = fetch(site, dest, items)
    assert sorted(rep.downloaded) == sorted([
        DAY.format("2024-08-07"), DAY.format("2024-08-08"),
        "spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-08-07.zip",
        "spot/monthly/trades/ETHUSDT/ETHUSDT-trades-2024-07.zip"])
    # no aggTrades on the 8th: reported as not on the site, not an error
    assert rep.missing == ["spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-08-08.zip"]
    assert rep.failed == {} and rep.skipped == []
    for rel in rep.downloaded:
        served = site.root / "data" / rel
        assert (dest / rel).read_bytes() == served.read_bytes()
        assert (dest / (rel + ".CHECKSUM")).exists()
        assert not (dest / (rel + ".part")).exists()
    zips_before = len([e for e in site.log if e[0].endswith(".zip")])
    rep2 = fetch(site, dest, items)
    assert sorted(rep2.skipped) == sorted(rep.downloaded) and rep2.downloaded == []
    # only the checksums were fetched again (the missing day's 404 is on its .CHECKSUM)
    assert len([e for e in site.log if e[0].endswith(".zip")]) == zips_before
    assert rep2.bytes == 0


def test_a_partial_file_is_continued_with_a_range_request(site, tmp_path):
    dest = tmp_path / "dest"
    rel = DAY.format("2024-08-07")
    full = (site.root / "data" / rel).read_bytes()
    part = dest / (rel + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(full[:1000])               # what an interrupted earlier run left
    rep = fetch(site, dest, [dl.Item("BTCUSDT", "trades", "daily", "2024-08-07")])
    assert rep.downloaded == [rel] and rep.resumed == 1
    assert rep.bytes == len(full) - 1000
    assert site.gets(".zip") == [("/data/" + rel, "bytes=1000-", 206)]
    assert (dest / rel).read_bytes() == full and not part.exists()


def test_a_connection_broken_mid_file_resumes_in_the_same_run(site, tmp_path):
    dest = tmp_path / "dest"
    rel = DAY.format("2024-08-08")
    full = (site.root / "data" / rel).read_bytes()
    assert len(full) > 2 * dl.CHUNK
    site.truncate_once["/data/" + rel] = dl.CHUNK + 1000    # the connection drops mid-file
    rep = fetch(site, dest, [dl.Item("BTCUSDT", "trades", "daily", "2024-08-08")])
    assert rep.downloaded == [rel] and rep.failed == {} and rep.resumed == 1
    (_, r1, s1), (_, r2, s2) = site.gets(".zip")
    assert (r1, s1, s2) == (None, 200, 206)
    # continued from the whole chunks it had written; no byte received twice
    assert r2 == f"bytes={dl.CHUNK}-" and rep.bytes == len(full)
    assert (dest / rel).read_bytes() == full


def test_a_checksum_mismatch_fails_that_file_only_and_leaves_nothing_in_place(site, tmp_path):
    rel = DAY.format("2024-08-09")
    put_archive(site.root, rel, csv_text(trade_rows(10, 1723161600000)), checksum_of=b"other")
    dest = tmp_path / "dest"
    items = dl.plan(["BTCUSDT"], ["trades"], date(2024, 8, 8), date(2024, 8, 9))
    rep = fetch(site, dest, items)
    assert rep.downloaded == [DAY.format("2024-08-08")]
    assert list(rep.failed) == [rel] and "SHA-256 mismatch" in rep.failed[rel]
    assert len(site.gets(rel)) == 2             # fetched again once from the start, then given up
    assert not (dest / rel).exists() and not (dest / (rel + ".part")).exists()


def test_a_corrupted_local_copy_is_fetched_again(site, tmp_path):
    dest = tmp_path / "dest"
    item = dl.Item("BTCUSDT", "trades", "daily", "2024-08-07")
    fetch(site, dest, [item])
    (dest / item.rel).write_bytes(b"not the archive")
    rep = fetch(site, dest, [item])
    assert rep.downloaded == [item.rel]
    got = hashlib.sha256((dest / item.rel).read_bytes()).hexdigest()
    assert (dest / (item.rel + ".CHECKSUM")).read_text().split()[0] == got


def test_an_unreachable_site_is_a_failure_per_file_not_a_crash(tmp_path):
    with Site(tmp_path) as s:
        url = s.url                             # a port nobody listens on once closed
    rep = dl.download([dl.Item("BTCUSDT", "trades", "daily", "2024-08-07")], tmp_path / "d", url,
                      progress=False, retries=1, backoff_s=0.01, timeout=2)
    assert list(rep.failed) == ["spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-08-07.zip"]
    assert "after 2 attempts" in next(iter(rep.failed.values()))


def test_command_line_with_a_progress_bar(site, tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "download.py"), "--symbols",
                        "BTCUSDT", "--start", "2024-08-07", "--end", "2024-08-08", "--dest",
                        str(dest), "--base-url", site.url], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 downloaded" in r.stdout and "0 failed" in r.stdout
    # tqdm stays quiet when stderr is not a terminal; the API can force it on
    rep = dl.download([dl.Item("BTCUSDT", "trades", "daily", "2024-08-08")], tmp_path / "d2",
                      site.url, progress=True)
    assert rep.downloaded
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "download.py"), "--symbols",
                          "BTCUSDT", "--start", "2024-08-09", "--end", "2024-08-01"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "before start" in bad.stderr
