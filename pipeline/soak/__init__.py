"""The chaos soak (scripts/soak.py): the demo pipeline against a simulator that outlives it, roles
stopped and killed at random, venue faults injected, then every account checked.

    checks.py   what the soak verifies at the end (pure functions over the journal, the
                simulator's state, RSS samples and tick records), unit-tested on their own
    run.py      the run: config, simulator, launcher, chaos schedule, sampling, the report
"""
