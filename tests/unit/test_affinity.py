import tomllib

from pipeline.launcher.affinity import Placement, apply_to_toml, enumerate_placements

ROLES = {"sim": "sim", "collector": "collector", "strategy": "strategy", "gateway": "gateway"}


def test_fewer_cores_than_roles_on_two_cores():
    ps = enumerate_placements(ROLES, [0, 1])
    assert ps, "no placement proposed"
    for p in ps:
        assert set(p.cores) == set(ROLES) and set(p.cores.values()) <= {0, 1}
        for spinner in ("strategy", "gateway"):       # a spinner never shares its core
            if p.waits[spinner] == "busy_spin":
                others = [r for r in ROLES if r != spinner]
                assert all(p.cores[r] != p.cores[spinner] for r in others)
    # canonical up to relabelling: everything on core 0 and everything on core 1 are one placement
    all_same = [p for p in ps if len(set(p.cores.values())) == 1]
    assert len(all_same) == 1
    # spinning placements come first; either waiting role may be the one that spins
    assert "busy_spin" in ps[0].waits.values()
    assert any(p.waits["gateway"] == "busy_spin" for p in ps)
    assert any(p.waits["strategy"] == "busy_spin" for p in ps)


def test_one_core_means_nobody_spins():
    ps = enumerate_placements(ROLES, [3])
    assert len(ps) == 1 and ps[0].waits == {"strategy": "blocking", "gateway": "blocking"}


def test_apply_to_toml_keeps_comments_and_adds_missing_keys():
    text = '''# demo
[roles.sim]
kind = "sim"   # the simulator
cores = [0, 1]

[roles.strategy]
kind = "strategy"
wait = "blocking"  # was

[other]
x = 1
'''
    p = Placement({"sim": 1, "strategy": 0}, {"strategy": "busy_spin"})
    new = apply_to_toml(text, p)
    cfg = tomllib.loads(new)
    assert cfg["roles"]["sim"]["cores"] == [1]
    assert cfg["roles"]["strategy"] == {"kind": "strategy", "wait": "busy_spin", "cores": [0]}
    assert cfg["other"] == {"x": 1}
    assert "# demo" in new and "# the simulator" in new
