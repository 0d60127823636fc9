"""The short chaos run of `make chaos`, on a broker and a database of its own: two instances of each service
under a steady mixed load, more than 20 SIGKILLs, the broker stopped for 30 s and PostgreSQL restarted;
once quiet, no invariant is broken."""

import pytest

from infra.chaos.run import Options, chaos

pytestmark = pytest.mark.timeout(900)


async def test_no_invariant_breaks_under_kills_a_stopped_broker_and_a_database_restart():
    outcome = await chaos(Options())

    print("\n".join(outcome.summary))
    assert len(outcome.faults.kills) >= 20, outcome.faults.kills
    assert sum("relay leader)" in kill for kill in outcome.faults.kills) >= 3, outcome.faults.kills
    assert outcome.faults.skipped == []  # a fault that could not be done is not a fault that was survived
    assert any(f.startswith("broker stopped (SIGSTOP)") for f in outcome.faults.injected), outcome.faults.injected
    assert any(f.startswith("database restarted") for f in outcome.faults.injected), outcome.faults.injected
    assert outcome.quiet_after_s is not None
    assert outcome.violations == [], "\n".join(map(str, outcome.violations))
