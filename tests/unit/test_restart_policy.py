"""The restart policy's bookkeeping (backoff, hourly cap) and its strict config."""
import pytest

from pipeline import config
from pipeline.config import ConfigError, RestartPolicy
from pipeline.launcher.restart import RestartTracker


def test_backoff_doubles_to_its_cap_and_recovery_resets_it():
    t = RestartTracker(RestartPolicy(backoff_s=0.5, backoff_max_s=3.0, max_per_hour=100))
    assert [t.on_failure(float(i)) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    t.on_recovered()
    assert t.on_failure(10.0) == 0.5


def test_more_than_max_per_hour_gives_up_in_any_sliding_hour():
    t = RestartTracker(RestartPolicy(max_per_hour=3))
    assert all(t.on_failure(x) is not None for x in (0.0, 100.0, 200.0))
    assert t.on_failure(3599.0) is None            # a 4th within the hour of the 1st
    assert t.on_failure(3600.0) is not None        # the 1st has left the window
    assert t.in_last_hour(3600.0) == 3


def test_restart_policy_is_strict_toml():
    c = config.loads('[roles.c]\nkind = "collector"\nrestart = "on-failure"\n'
                     '[roles.c.restart_policy]\nbackoff_s = 0.2\nmax_per_hour = 4\n')
    assert c.roles["c"].restart_policy == RestartPolicy(backoff_s=0.2, max_per_hour=4)
    with pytest.raises(ConfigError, match="restart_policy.backof"):
        config.loads('[roles.c]\nkind = "collector"\n[roles.c.restart_policy]\nbackof = 1\n')
    with pytest.raises(ConfigError, match="max_per_hour"):
        config.loads('[roles.c]\nkind = "collector"\n[roles.c.restart_policy]\nmax_per_hour = 0\n')


@pytest.mark.parametrize("kind", ["strategy", "gateway"])
def test_strategy_and_gateway_never_restart_on_failure(kind):
    with pytest.raises(ConfigError, match=f"refused for a {kind}"):
        config.loads(f'[roles.x]\nkind = "{kind}"\nrestart = "on-failure"\n')
