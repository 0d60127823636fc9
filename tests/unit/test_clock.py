"""The services' clock: the wall clock, or a simulated one that moves only when its file is rewritten."""

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from services.runtime.clock import SimulatedClock, WallClock, set_simulated_time

START = datetime(2026, 1, 5, 8, tzinfo=UTC)


def test_the_wall_clock_is_now():
    assert abs(WallClock().now() - datetime.now(UTC)) < timedelta(seconds=1)


def test_a_simulated_clock_tells_the_time_its_file_holds(tmp_path):
    file = tmp_path / "clock"
    set_simulated_time(file, START)
    simulated = SimulatedClock(file)
    assert simulated.now() == START
    set_simulated_time(file, START + timedelta(days=3))
    assert simulated.now().date() == date(2026, 1, 8)


async def test_a_loop_sleeping_in_simulated_time_wakes_when_the_file_passes_its_time(tmp_path):
    file = tmp_path / "clock"
    set_simulated_time(file, START)
    simulated = SimulatedClock(file)
    sleeper = asyncio.create_task(simulated.sleep(3600))
    await asyncio.sleep(0.3)
    set_simulated_time(file, START + timedelta(minutes=59))
    await asyncio.sleep(0.3)
    assert not sleeper.done()  # real time passed, simulated time not yet
    set_simulated_time(file, START + timedelta(hours=1))
    await asyncio.wait_for(sleeper, 2)


async def test_a_loop_wakes_on_the_grid_of_its_period_however_late_it_went_back_to_sleep(tmp_path):
    file = tmp_path / "clock"
    set_simulated_time(file, START)
    simulated = SimulatedClock(file)
    set_simulated_time(file, START + timedelta(hours=30))  # the loop ran at START + 24 h, and slept again late
    sleeper = asyncio.create_task(simulated.sleep(24 * 3600))
    set_simulated_time(file, START + timedelta(hours=47, minutes=59))
    await asyncio.sleep(0.3)
    assert not sleeper.done()
    set_simulated_time(file, START + timedelta(hours=48))
    await asyncio.wait_for(sleeper, 2)


def test_a_service_does_not_start_on_a_missing_or_unreadable_clock(tmp_path):
    with pytest.raises(FileNotFoundError):
        SimulatedClock(tmp_path / "missing")
    (tmp_path / "naive").write_text("2026-01-05T08:00:00")
    with pytest.raises(ValueError, match="time zone"):
        SimulatedClock(tmp_path / "naive")


async def test_a_file_spoiled_after_start_stops_the_clock_instead_of_failing_the_service(tmp_path):
    """Written by hand (truncated before the new time is in it) or removed by mistake: the time stays the last
    one read, so a handler asking for the day does not fail (and its messages get dead-lettered) and a loop
    sleeping in simulated time does not die; it wakes once the file holds a later time again."""
    file = tmp_path / "clock"
    set_simulated_time(file, START)
    simulated = SimulatedClock(file)
    sleeper = asyncio.create_task(simulated.sleep(3600))
    for spoiled in ("", "not a time", "2026-01-05T09:00:00"):  # empty, garbage, no time zone
        file.write_text(spoiled)
        assert simulated.now() == START
        await asyncio.sleep(0.2)
        assert not sleeper.done()
    file.unlink()
    assert simulated.now() == START
    set_simulated_time(file, START + timedelta(hours=1))
    await asyncio.wait_for(sleeper, 2)
    assert simulated.now() == START + timedelta(hours=1)


def test_the_simulated_business_day_is_the_utc_day_as_on_the_wall_clock(tmp_path):
    """The wall clock's day is the UTC day; a simulated time written with another offset is the same instant."""
    file = tmp_path / "clock"
    set_simulated_time(file, datetime.fromisoformat("2026-01-05T22:00:00-05:00"))
    assert SimulatedClock(file).now().date() == date(2026, 1, 6)
