"""A benchmark run over time: latency percentiles and completions per second, and their chart."""

import math
import statistics
from pathlib import Path


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99) of at least one value, interpolated between the two values around it: never
    beyond the largest, as the exclusive method would be in a second of few orders."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def per_second(times: list[float], start: float, seconds: int) -> list[int]:
    """How many of `times` fell into each whole second from `start`, for `seconds` seconds."""
    counts = [0] * seconds
    for t in times:
        if 0 <= (i := math.floor(t - start)) < seconds:
            counts[i] += 1
    return counts


def latency_per_second(sent_at: dict[str, float], done_at: dict[str, float], start: float, seconds: int
                       ) -> list[tuple[float, float] | None]:
    """(p50, p99) in ms from sent to done of the orders done in each second from `start`; None for a second
    in which none was. By when they were done, not sent: a burst sent in one second shows how its latency
    grew as it drained."""
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    for order, done in done_at.items():
        if order in sent_at and 0 <= (i := math.floor(done - start)) < seconds:
            buckets[i].append((done - sent_at[order]) * 1000)
    return [(percentile(b, 50), percentile(b, 99)) if b else None for b in buckets]


def plot(path: Path, title: str, sent_at: dict[str, float], allocated_at: dict[str, float],
         status_at: dict[str, float], mailed_at: dict[str, float], start: float) -> None:
    """Two panels over the seconds of the run: PlaceOrder -> allocation latency (p50, p99) of the orders
    allocated in each second, and orders sent, allocated, given a status and mailed in each second."""
    import matplotlib

    matplotlib.use("Agg")  # a file, no display
    from matplotlib import pyplot

    end = max([*sent_at.values(), *allocated_at.values(), *status_at.values(), *mailed_at.values()], default=start)
    seconds = math.floor(end - start) + 1
    figure, (latency, throughput) = pyplot.subplots(2, 1, sharex=True, figsize=(10, 7))
    percentiles = latency_per_second(sent_at, allocated_at, start, seconds)
    for index, label in ((0, "p50"), (1, "p99")):
        xs = [s for s, p in enumerate(percentiles) if p]
        latency.plot(xs, [percentiles[s][index] for s in xs], marker=".", label=label)
    latency.set_ylabel("PlaceOrder -> allocation, ms\n(orders allocated in that second)")
    latency.set_yscale("log")
    latency.legend()
    latency.grid(True, which="both", alpha=0.3)
    done = {label: per_second(list(times.values()), start, seconds)
            for label, times in (("allocated", allocated_at), ("status", status_at), ("mailed", mailed_at))}
    sent = per_second(list(sent_at.values()), start, seconds)
    most_done = max(max(counts, default=0) for counts in done.values())
    # A burst is sent far faster than anything is done: its spike would flatten the curves that matter.
    burst = max(sent, default=0) > 3 * most_done
    throughput.plot(range(seconds), sent, label="sent (off the scale)" if burst else "sent")
    for label, counts in done.items():
        throughput.plot(range(seconds), counts, label=label)
    throughput.set_ylim(0, 1.15 * (most_done if burst else max(most_done, *sent)) or 1)
    throughput.set_ylabel("orders per second")
    throughput.set_xlabel("seconds since the first PlaceOrder")
    throughput.legend()
    throughput.grid(True, alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
