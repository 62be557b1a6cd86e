"""The worker pool: a worker process that dies costs only the job it was on."""

from __future__ import annotations

import os

from avsr.parallel import run_jobs


def square_or_die(value: int) -> int:
    if value in (2, 7):
        os._exit(1)  # a native crash, as a decoder segfault would end the process
    return value * value


def test_a_crashing_worker_costs_one_job():
    for _ in range(3):  # which job shares the pool with the crash varies from run to run
        results = run_jobs(square_or_die, [(v,) for v in range(10)], workers=2,
                           on_crash=lambda job: f"crashed {job[0]}", progress=False)
        assert results == [0, 1, "crashed 2", 9, 16, 25, 36, "crashed 7", 64, 81]


def test_one_worker_runs_in_process():
    assert run_jobs(square_or_die, [(3,), (4,)], workers=1, on_crash=str, progress=False) == [9, 16]
