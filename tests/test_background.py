"""Periodic: runs its job every interval, survives a failing run, and stops when closed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from interlock.background import Periodic


async def test_runs_repeatedly_logs_failures_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    third = asyncio.Event()

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the store is away")
        if len(runs) == 3:
            third.set()

    periodic = Periodic(job, 0.001, name="test-periodic", failure="test job failed", log=logging.getLogger("t"))
    assert not periodic.running
    periodic.start()
    periodic.start()  # a second start keeps the one task
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "test-periodic"]
    assert len(tasks) == 1 and periodic.running
    await asyncio.wait_for(third.wait(), 5)
    await periodic.close()
    assert not periodic.running and tasks[0].cancelled()  # nothing runs after close
    failures = [r for r in caplog.records if r.message == "test job failed"]
    assert len(failures) == 1 and failures[0].name == "t" and failures[0].exc_info is not None
    await periodic.close()  # closing twice is fine


async def test_an_interval_of_zero_never_runs() -> None:
    async def job() -> None:
        raise AssertionError("must not run")

    periodic = Periodic(job, 0, name="never", failure="-")
    periodic.start()
    assert not periodic.running
    await periodic.close()


async def test_begin_runs_at_once_and_a_failure_starts_nothing() -> None:
    runs: list[str] = []

    async def job() -> None:
        runs.append("run")

    async def broken() -> None:
        raise RuntimeError("the store is away")

    periodic = Periodic(job, 3600, name="begun", failure="-")
    await periodic.begin()
    assert runs == ["run"] and periodic.running
    await periodic.close()
    failing = Periodic(broken, 3600, name="failing", failure="-")
    with pytest.raises(RuntimeError):
        await failing.begin()
    assert not failing.running


async def test_failures_go_to_the_jobs_logger_by_default(caplog: pytest.LogCaptureFixture) -> None:
    failed = asyncio.Event()

    async def job() -> None:
        failed.set()
        raise RuntimeError("the store is away")

    periodic = Periodic(job, 0.001, name="logged", failure="job failed")
    periodic.start()
    await asyncio.wait_for(failed.wait(), 5)
    await periodic.close()
    assert any(r.name == job.__module__ and r.message == "job failed" for r in caplog.records)
