"""Deadlines kept by one sweeper: late calls time out, others finish, foreign cancels stay cancels."""

from __future__ import annotations

import asyncio

import pytest

from gateway.deadlines import Deadlines


async def test_a_call_past_its_deadline_raises_timeout_error_soon_after():
    deadlines = Deadlines(resolution=0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await deadlines.run(0.05, asyncio.sleep(10))
    assert 0.05 <= loop.time() - started < 1.0
    assert len(deadlines) == 0


async def test_calls_within_their_deadline_return_and_leave_nothing_behind():
    deadlines = Deadlines(resolution=0.01)

    async def answer(delay: float, value: int) -> int:
        await asyncio.sleep(delay)
        return value

    results = await asyncio.gather(*(deadlines.run(5.0, answer(0.01 * i, i)) for i in range(20)))
    assert results == list(range(20))
    assert len(deadlines) == 0
    await asyncio.sleep(0.05)  # the sweeper stops once nothing is in flight
    assert deadlines._sweeper is None


async def test_only_the_late_call_times_out_among_many():
    deadlines = Deadlines(resolution=0.01)
    quick = [asyncio.create_task(deadlines.run(5.0, asyncio.sleep(0.05, result="ok"))) for _ in range(5)]
    late = asyncio.create_task(deadlines.run(0.03, asyncio.sleep(10)))
    assert await asyncio.gather(*quick) == ["ok"] * 5
    with pytest.raises(TimeoutError):
        await late


async def test_a_cancel_from_elsewhere_stays_a_cancel():
    deadlines = Deadlines(resolution=0.01)
    task = asyncio.create_task(deadlines.run(5.0, asyncio.sleep(10)))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(deadlines) == 0


async def test_aclose_stops_the_sweeper():
    deadlines = Deadlines(resolution=0.01)
    task = asyncio.create_task(deadlines.run(5.0, asyncio.sleep(10)))
    await asyncio.sleep(0.02)
    sweeper = deadlines._sweeper
    assert sweeper is not None and not sweeper.done()
    await deadlines.aclose()
    assert sweeper.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
