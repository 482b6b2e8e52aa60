"""CI check: nothing in the pipeline turns TLS verification off."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|"
                       r"_create_unverified_context|cert_reqs\s*[=:]\s*['\"]?CERT_NONE")


def test_no_code_disables_certificate_verification():
    hits = []
    for root in ("pipeline", "ext"):
        for p in sorted((REPO / root).rglob("*")):
            if p.suffix not in (".py", ".pyx", ".pxd", ".h") or not p.is_file():
                continue
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
                if FORBIDDEN.search(line):
                    hits.append(f"{p.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, "TLS verification disabled:\n" + "\n".join(hits)


def test_the_check_would_catch_each_form():
    for bad in ("requests.get(u, verify=False)", "ctx.verify_mode = ssl.CERT_NONE",
                "ctx.check_hostname = False", "ssl._create_unverified_context()"):
        assert FORBIDDEN.search(bad), bad
