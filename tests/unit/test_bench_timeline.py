"""The benchmark's series: completions counted per second, latency percentiles per second of completion."""

from benchmarks.timeline import latency_per_second, per_second, percentile


def test_completions_are_counted_in_the_whole_second_they_fall_in():
    assert per_second([10.0, 10.99, 11.0, 13.5, 9.9, 14.0], start=10.0, seconds=4) == [2, 1, 0, 1]


def test_latency_is_bucketed_by_when_the_order_was_done_and_seconds_without_any_are_empty():
    sent = {"a": 0.0, "b": 0.0, "c": 0.5, "never done": 0.1}
    done = {"a": 0.25, "b": 2.5, "c": 2.75, "not ours": 1.0}
    per = latency_per_second(sent, done, start=0.0, seconds=3)
    assert per[0] == (250.0, 250.0)
    assert per[1] is None
    assert per[2] == (2375.0, 2497.5)  # a: 250 ms; b and c: 2,500 and 2,250 ms; the stray ones ignored


def test_percentiles_of_a_hundred_values_and_of_one():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert percentile(values, 99) == 99.01
    assert percentile([1.0, 1000.0], 99) <= 1000.0  # never beyond the largest
    assert percentile([7.0], 99) == 7.0
