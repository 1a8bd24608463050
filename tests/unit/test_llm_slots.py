"""SlotPool: first come first served, a bounded queue, and a session's own slot back."""

from __future__ import annotations

import asyncio

import pytest

from services.llm.engine import EngineBusyError
from services.llm.slots import SlotPool
from voice.errors import ResourceExhaustedError

pytestmark = pytest.mark.unit


async def hold(
    pool: SlotPool, session: str, got: list[tuple[str, int]], release: asyncio.Event
) -> None:
    async with pool.slot(session) as slot:
        got.append((session, slot))
        await release.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_session_gets_its_own_slot_back_when_it_is_free() -> None:
    pool = SlotPool(3, queue_limit=0)
    async with pool.slot("a") as first, pool.slot("b") as second:
        assert first != second
    async with pool.slot("c"):
        async with pool.slot("b") as again:
            assert again == second
        async with pool.slot("a") as again:
            assert again == first
    assert pool.busy == 0


async def test_a_new_session_gets_the_slot_idle_longest() -> None:
    pool = SlotPool(2, queue_limit=0)
    async with pool.slot("a") as a_slot:
        pass
    async with pool.slot("b") as b_slot:
        pass
    assert a_slot != b_slot
    # "a" was released first, so its slot has been idle longest.
    async with pool.slot("c") as c_slot:
        assert c_slot == a_slot
    assert pool.home_of("c") == a_slot
    assert pool.home_of("b") == b_slot


async def test_waiters_are_served_in_arrival_order() -> None:
    pool = SlotPool(1, queue_limit=3)
    release = {name: asyncio.Event() for name in "abcd"}
    got: list[tuple[str, int]] = []
    tasks = []
    for name in "abcd":
        tasks.append(asyncio.create_task(hold(pool, name, got, release[name])))
        await settle()
    assert [name for name, _ in got] == ["a"]
    assert (pool.busy, pool.waiting) == (1, 3)
    for name in "abcd":
        release[name].set()
        await settle()
    await asyncio.gather(*tasks)
    assert [name for name, _ in got] == ["a", "b", "c", "d"]
    assert (pool.busy, pool.waiting) == (0, 0)


async def test_a_full_queue_refuses_at_once_with_resource_exhausted() -> None:
    pool = SlotPool(1, queue_limit=1)
    release = asyncio.Event()
    got: list[tuple[str, int]] = []
    holder = asyncio.create_task(hold(pool, "a", got, release))
    waiter = asyncio.create_task(hold(pool, "b", got, release))
    await settle()
    with pytest.raises(EngineBusyError, match="LLM_QUEUE_LIMIT=1") as raised:
        async with pool.slot("c"):
            pass
    assert isinstance(raised.value, ResourceExhaustedError) and raised.value.retryable
    release.set()
    await asyncio.gather(holder, waiter)
    assert [name for name, _ in got] == ["a", "b"]


async def test_no_queue_means_refusal_whenever_every_slot_is_busy() -> None:
    pool = SlotPool(2, queue_limit=0)
    async with pool.slot("a"), pool.slot("b"):
        with pytest.raises(EngineBusyError, match="2 generating, 0 waiting"):
            async with pool.slot("c"):
                pass
    async with pool.slot("c"):
        assert pool.busy == 1


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    pool = SlotPool(1, queue_limit=1)
    release = asyncio.Event()
    got: list[tuple[str, int]] = []
    holder = asyncio.create_task(hold(pool, "a", got, release))
    waiter = asyncio.create_task(hold(pool, "b", got, release))
    await settle()
    assert pool.waiting == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert pool.waiting == 0
    # The place in the queue is free again.
    late = asyncio.create_task(hold(pool, "c", got, release))
    await settle()
    release.set()
    await asyncio.gather(holder, late)
    assert [name for name, _ in got] == ["a", "c"]
    assert pool.busy == 0


async def test_a_slot_handed_to_a_waiter_that_was_just_cancelled_is_passed_on() -> None:
    pool = SlotPool(1, queue_limit=2)
    got: list[tuple[str, int]] = []
    release = asyncio.Event()
    first = asyncio.Event()
    holder = asyncio.create_task(hold(pool, "a", got, first))
    doomed = asyncio.create_task(hold(pool, "b", got, release))
    patient = asyncio.create_task(hold(pool, "c", got, release))
    await settle()
    first.set()
    await asyncio.sleep(0)  # "a" releases: the slot goes to "b", which has not run yet
    doomed.cancel()
    await asyncio.gather(holder, doomed, return_exceptions=True)
    await settle()
    release.set()
    await asyncio.wait_for(patient, 2.0)  # hangs forever if the slot was lost
    assert [name for name, _ in got] == ["a", "c"]
    assert (pool.busy, pool.waiting) == (0, 0)


def test_a_pool_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        SlotPool(0, queue_limit=1)


async def test_a_waiter_cancelled_just_before_a_release_leaves_cleanly() -> None:
    pool = SlotPool(1, queue_limit=1)
    holding = pool.slot("a")
    await holding.__aenter__()
    got: list[tuple[str, int]] = []
    waiter = asyncio.create_task(hold(pool, "b", got, asyncio.Event()))
    await settle()
    waiter.cancel()  # the waiter has not run since: the slot is released before it does
    await holding.__aexit__(None, None, None)
    [outcome] = await asyncio.gather(waiter, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError)
    assert (pool.busy, pool.waiting, got) == (0, 0, [])
    async with pool.slot("c") as slot:
        assert slot == 0
