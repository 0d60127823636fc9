"""The faults of a chaos run, at planned moments of the load: SIGKILLs of service instances (the relay's
leader of each service in turn, and any instance), a broker stopped with SIGSTOP for a while, and a
PostgreSQL restart. Each fault done is recorded; one that could not be done is recorded as skipped, with why."""

import asyncio
import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass, field

from infra import kafka
from infra.chaos.stack import Database, Instances, relay_leader
from infra.services import SERVICES


@dataclass
class Fault:
    at_s: float  # from the start of the load
    kind: str  # "kill", "broker stop", "broker kill", "database restart"
    target: str = ""  # for a kill: a service's relay leader ("order leader") or "any"


@dataclass
class Done:
    kills: list[str] = field(default_factory=list)  # "12.3 s order-2 (order relay leader)"
    injected: list[str] = field(default_factory=list)  # the other faults, as done
    skipped: list[str] = field(default_factory=list)  # with why


def plan(duration_s: float, kills: int, broker_stop_s: float, rng: random.Random, brokers: int = 1) -> list[Fault]:
    """Kills at random moments over the load, three of each four at a relay leader (order, inventory,
    notification in turn), the fourth at any instance; the broker stopped at a third of the load (on a
    cluster, one of its nodes), the database restarted at two thirds; on a cluster, a node killed and
    restarted half-way."""
    targets = [f"{s} leader" for s in SERVICES] + ["any"]
    moments = sorted(rng.uniform(0.05, 0.95) * duration_s for _ in range(kills))
    faults = [Fault(t, "kill", targets[i % len(targets)]) for i, t in enumerate(moments)]
    faults.append(Fault(duration_s / 3, "broker stop"))
    faults.append(Fault(duration_s * 2 / 3, "database restart"))
    if brokers > 1:
        faults.append(Fault(duration_s / 2, "broker kill"))
    return sorted(faults, key=lambda f: f.at_s)


class Injector:
    def __init__(self, instances: Instances, broker: kafka.Broker | kafka.Cluster, database: Database, broker_stop_s: float,
                 rng: random.Random) -> None:
        self._instances = instances
        self._broker = broker
        self._database = database
        self._broker_stop_s = broker_stop_s
        self._rng = rng
        self.done = Done()
        self._broker_stopped = False

    async def run(self, faults: list[Fault], started: float) -> None:
        """Inject `faults` at their moments from `started` (a monotonic time). A broker stop runs beside the
        others: kills go on while the broker is away."""
        stops = []
        for fault in faults:
            await asyncio.sleep(max(0.0, started + fault.at_s - time.monotonic()))
            if fault.kind == "kill":
                await self._kill(fault.target, time.monotonic() - started)
            elif fault.kind == "broker stop":
                stops.append(asyncio.create_task(self._stop_broker(time.monotonic() - started)))
            elif fault.kind == "broker kill":
                stops.append(asyncio.create_task(self._kill_broker(time.monotonic() - started)))
            else:
                await self._restart_database(time.monotonic() - started)
        await asyncio.gather(*stops)

    async def _kill(self, target: str, at_s: float) -> None:
        service, _, leader = target.partition(" ")
        instance, why = None, "any instance"
        if leader:
            instance, why = await self._leader(service), f"{service} relay leader"
            if instance is None:
                why = f"an instance of {service}: no relay held the lock"
        if instance is None:
            # Both instances of the service may be down at once (restarting): then one of another service.
            alive = self._instances.alive(service if leader else None) or self._instances.alive()
            if not alive:
                self.done.skipped.append(f"kill at {at_s:.1f} s: no instance alive")
                return
            instance = self._rng.choice(alive)
        self._instances.kill(instance)
        self.done.kills.append(f"{at_s:6.1f} s  {instance} ({why})")

    async def _leader(self, service: str, tries: int = 4) -> str | None:
        """The live instance whose relay holds the lock; a relay that just lost it (its broker or database
        went away) takes it again within a second or two."""
        for _ in range(tries):
            with contextlib.suppress(Exception):  # the database restarting
                leader = await relay_leader(self._database.admin_url, service)
                if leader in self._instances.alive(service):
                    return leader
            await asyncio.sleep(0.5)
        return None

    async def _stop_broker(self, at_s: float) -> None:
        self._signal_broker(signal.SIGSTOP)
        self._broker_stopped = True
        try:
            await asyncio.sleep(self._broker_stop_s)
        finally:
            self._signal_broker(signal.SIGCONT)
            self._broker_stopped = False
        which = "node 1 of the cluster" if isinstance(self._broker, kafka.Cluster) else "broker"
        self.done.injected.append(f"{which} stopped (SIGSTOP) at {at_s:.1f} s for {self._broker_stop_s:.0f} s")

    def _signal_broker(self, signum: int) -> None:
        if isinstance(self._broker, kafka.Cluster):
            self._broker.nodes[1].signal(signum)
        else:
            os.killpg(self._broker.process.pid, signum)

    async def _kill_broker(self, at_s: float) -> None:
        """A cluster's last node SIGKILLed, and started again on its data a while later."""
        node = max(self._broker.nodes)
        self._broker.kill(node)
        await asyncio.sleep(self._broker_stop_s / 2)
        began = time.monotonic()
        await asyncio.to_thread(self._broker.restart, node)
        self.done.injected.append(f"node {node} of the cluster SIGKILLed at {at_s:.1f} s, restarted "
                                  f"{self._broker_stop_s / 2:.0f} s later (back in {time.monotonic() - began:.1f} s)")

    def resume_broker(self) -> None:
        """For a run cut short: never leave the broker stopped."""
        if self._broker_stopped:
            self._signal_broker(signal.SIGCONT)

    async def _restart_database(self, at_s: float) -> None:
        if self._database.restart_command is None:
            self.done.skipped.append(f"database restart skipped: {self._database.why_not}")
            return
        began = time.monotonic()
        await asyncio.to_thread(self._database.restart)
        self.done.injected.append(f"database restarted at {at_s:.1f} s (took {time.monotonic() - began:.1f} s)")
