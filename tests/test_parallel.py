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


def test_prefetch_runs_the_next_job_in_a_thread_while_the_caller_works_on_a_result():
    """One job ahead, never more: while the caller holds result i, job i + 1 runs (it starts even
    though the caller waits for it) and job i + 2 has not started; results come in order."""
    import threading

    from avsr.parallel import imap_jobs

    started = {index: threading.Event() for index in range(4)}

    def job(index: int) -> tuple[int, str]:
        started[index].set()
        return index, threading.current_thread().name

    seen = []
    for index, (value, thread) in imap_jobs(job, [(i,) for i in range(4)], workers=1, on_crash=str, prefetch=True):
        assert index == value and thread != threading.main_thread().name
        if index + 1 < 4:
            assert started[index + 1].wait(timeout=10)  # the next one runs while this result is held
        if index + 2 < 4:
            assert not started[index + 2].is_set()
        seen.append(index)
    assert seen == [0, 1, 2, 3]
    assert list(imap_jobs(job, [], workers=1, on_crash=str, prefetch=True)) == []


def test_prefetch_of_two_runs_the_next_two_jobs_in_threads_and_keeps_the_order():
    """``prefetch=2``: while the caller holds result i, jobs i + 1 and i + 2 run at once in two
    threads (each waits until the other has started) and i + 3 has not started."""
    import threading

    from avsr.parallel import imap_jobs

    started = {index: threading.Event() for index in range(6)}

    def job(index: int) -> int:
        started[index].set()
        partner = index + 1 if index % 2 else index - 1  # 1 with 2, 3 with 4: they overlap
        if index and 0 < partner < 6:
            assert started[partner].wait(timeout=10)
        return index

    seen = []
    for index, value in imap_jobs(job, [(i,) for i in range(6)], workers=1, on_crash=str, prefetch=2):
        assert value == index
        if index + 3 < 6:
            assert not started[index + 3].is_set()
        seen.append(index)
    assert seen == list(range(6))


def test_a_prefetch_stopped_early_cancels_the_next_job_or_discards_its_result():
    """The caller stops after the first result: the job already running (the second) is handed to
    ``discard`` when it is done, and the third never starts."""
    import threading

    from avsr.parallel import imap_jobs

    started, discarded = [], []
    running, release = threading.Event(), threading.Event()

    def job(index: int) -> int:
        started.append(index)
        if index == 1:
            running.set()
            release.wait(timeout=10)
        return index

    jobs = imap_jobs(job, [(i,) for i in range(3)], workers=1, on_crash=str, prefetch=True,
                     discard=discarded.append)
    assert next(jobs) == (0, 0)
    assert running.wait(timeout=10)
    jobs.close()  # while job 1 runs
    release.set()
    for _ in range(100):
        if discarded:
            break
        threading.Event().wait(0.05)
    assert discarded == [1] and started == [0, 1]


def test_a_prefetch_stopped_early_tells_the_running_job_to_stop_and_waits_for_it():
    """With ``cancel``: closing the results sets it, and returns only once the running job has seen it
    and ended (so that it can release a landmarker in its own thread); its result is discarded."""
    import threading

    from avsr.parallel import imap_jobs

    cancel, running, ended, discarded = threading.Event(), threading.Event(), threading.Event(), []

    def job(index: int) -> int:
        if index == 1:
            running.set()
            assert cancel.wait(timeout=10)  # works until told to stop
            ended.set()
        return index

    jobs = imap_jobs(job, [(i,) for i in range(3)], workers=1, on_crash=str, prefetch=True,
                     discard=discarded.append, cancel=cancel)
    assert next(jobs) == (0, 0)
    assert running.wait(timeout=10)
    jobs.close()
    assert cancel.is_set() and ended.is_set() and discarded == [1]


def test_model_threads_leave_torch_the_cores_the_preparations_do_not_take_and_restore_them():
    import torch
    from threadpoolctl import threadpool_info

    from avsr.parallel import model_threads

    before = torch.get_num_threads()
    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    for beside in (0, 1, 64):
        with model_threads(beside):
            assert torch.get_num_threads() == max(1, before - beside)
            assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
        assert torch.get_num_threads() == before
        assert [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"] == blas


def test_the_cores_are_shared_among_the_files_prepared_at_once():
    from avsr.parallel import MAX_LANDMARKERS, landmarkers_per_file, usable_cores

    cores = min(usable_cores(), MAX_LANDMARKERS)
    assert landmarkers_per_file(1) == landmarkers_per_file(0) == cores
    assert landmarkers_per_file(2) == max(1, cores // 2)
    assert landmarkers_per_file(cores) == landmarkers_per_file(cores + 5) == 1
