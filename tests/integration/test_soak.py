"""A short chaos soak with real processes (the simulator, the launcher and its roles): a gateway
kill (the launcher ends and is started again), a collector kill (healed by its restart policy),
dropped connections and stopped roles; at the end the venue and the journal agree on every order
and position, every venue order traces back to a passed risk check, and nothing is left behind."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_chaos_soak_ends_with_the_books_agreeing_and_nothing_left_behind(tmp_path):
    out = tmp_path / "soak.json"
    # seed 2: a gateway kill at ~7 s, a collector kill at ~10 s, then a drop and a stop
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak.py"), "--minutes", "0.5",
                        "--seed", "2", "--rss-warmup-s", "5", "--out", str(tmp_path / "run"),
                        "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads(out.read_text())["results"]
    for key in ("orders_mismatched", "untraced_venue_orders", "leaked_segments", "orphans",
                "torn_reads"):
        assert res[key] == 0, (key, res)
    assert res["faults"].get("kill_gateway", 0) >= 1 and res["launcher_runs"] >= 2, res
    assert res["faults"].get("kill_collector", 0) >= 1
    assert res["recovered_without_manual_reset"] >= 1, res
    assert res["venue_orders"] > 0 and res["ticks_verified"] > 0, res
    assert res["max_rss_growth_pct"] is not None
    # the process behind each role's growth figure, split heap / mapped files
    assert set(res["rss_detail_by_role"]) == set(res["rss_growth_pct_by_role"]), res
    for d in res["rss_detail_by_role"].values():
        assert d["to_age_s"] > d["from_age_s"] >= 5 and min(d["anon_mb"]) > 0, d
