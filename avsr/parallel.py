"""Run one job per file in worker processes, so that no file can end the batch.

A job function returns its own result (success or a handled failure). A worker process that dies
(a native crash inside a decoder, say) costs only the file it was on: every worker marks the job it
starts in shared memory, so after a crash the jobs that were in flight are known exactly. Each of
them is re-run alone in a fresh process; one that kills its process again gets ``on_crash(job)``.
Everything else goes back into the pool.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

_STARTED = None  # per worker: the shared array of job states (0 waiting, 1 started, 2 returned)


class Cancelled(Exception):
    """A job stopped because its caller stopped early (the ``cancel`` event of :func:`imap_jobs`)."""


def _die_with_parent(parent: int) -> None:
    """Ask Linux to end this process when its parent dies (even by SIGKILL), so that no worker
    outlives a killed batch (workers otherwise wait on a job queue that other workers keep open).
    A parent that died before the request was made is caught by the check after it."""
    import contextlib
    import ctypes
    import os
    import signal
    import sys

    # Without prctl (another libc, another OS) the parent check below is the only guard.
    with contextlib.suppress(OSError, AttributeError):
        if sys.platform.startswith("linux"):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(started, parent: int) -> None:
    import warnings

    from threadpoolctl import threadpool_limits

    global _STARTED
    _STARTED = started
    _die_with_parent(parent)
    warnings.simplefilter("ignore")
    threadpool_limits(limits=1, user_api="blas")  # the processes are the parallelism (see model_threads)


@contextmanager
def model_threads(preparing_beside: int):
    """Thread pools for a process that alternates numpy work and a torch model with
    ``preparing_beside`` preparations running next to it (a worker process or a thread each, whose
    MediaPipe landmarker keeps one core busy): within the block numpy's BLAS runs on one thread,
    and torch on the cores it had less those, at least one.

    Why, measured on 2 cores (docs/history/2026-12-01.md, 3cb86a0…622ea5f): OpenBLAS's helper threads
    keep spinning after a call, and torch's threads wait on each other, so on a shared core the
    model ran at half its speed right after a file's preparation (119 against 66 ms a short clip)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(limits=1, user_api="blas"):
        torch.set_num_threads(max(1, before - preparing_beside))
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _tracked(index: int, function: Callable[..., Any], job: tuple) -> Any:
    _STARTED[index] = 1
    result = function(*job)
    _STARTED[index] = 2
    return result


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


MAX_PREFETCH = 4  # measured on 2 cores only (docs/history/2026-12-01.md, 3cb86a0…622ea5f)


MAX_LANDMARKERS = 4  # per file; measured on 2 cores only (docs/history/2026-12-02.md, 19a37f3…f5889b5)


def landmarkers_per_file(files_at_once: int) -> int:
    """Face landmarkers one file's preparation may run at once (``avsr.io.lip_roi.iter_lip_roi``): the
    cores this process may use, at most :data:`MAX_LANDMARKERS`, shared among the files prepared at
    once."""
    return max(1, min(usable_cores(), MAX_LANDMARKERS) // max(1, files_at_once))


def default_prefetch() -> int:
    """Jobs run ahead in threads by default (:func:`imap_jobs`' ``prefetch``): one per CPU core this
    process may use, at most :data:`MAX_PREFETCH` (their Python code shares the interpreter's lock)."""
    return min(usable_cores(), MAX_PREFETCH)


def imap_jobs(function: Callable[..., Any], jobs: Sequence[tuple], workers: int, on_crash: Callable[[tuple], Any],
              max_in_flight: int | None = None, prefetch: int = 0,
              discard: Callable[[Any], None] | None = None,
              cancel: threading.Event | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, function(*jobs[index]))`` as jobs finish, with ``workers`` processes (1: in this
    one, in order). At most ``max_in_flight`` jobs (default ``2 * workers``) are queued or running, so
    results never pile up faster than the caller takes them.

    ``prefetch`` (with one worker): that many next jobs run in threads of this process while the
    caller works on the result just yielded; results still come in order (their native code, a
    decoder or MediaPipe, runs beside the caller's). ``function`` must then catch its own failures,
    as a crash cannot be isolated in a thread. If the caller stops early, jobs not yet started are
    cancelled, and the results of those already running are handed to ``discard`` when ready (to
    remove what they hold). With ``cancel`` (an event the jobs watch, raising :class:`Cancelled`)
    those jobs are told to stop and waited for, so that they release what they hold in their own
    threads before the caller goes on (a MediaPipe landmarker left to the interpreter's exit is
    closed after MediaPipe's own shutdown, with a traceback).

    ``function`` must be importable by name (a module-level function), as worker processes are spawned.
    """
    if workers <= 1 and int(prefetch) > 0 and jobs:
        yield from _in_threads(function, jobs, int(prefetch), discard, cancel)
    elif workers <= 1:
        for index, job in enumerate(jobs):
            yield index, function(*job)
    else:
        yield from _in_processes(function, jobs, workers, on_crash, max_in_flight or 2 * workers)


def _in_threads(function: Callable[..., Any], jobs: Sequence[tuple], ahead_count: int,
                discard: Callable[[Any], None] | None, cancel: threading.Event | None) -> Iterator[tuple[int, Any]]:
    """:func:`imap_jobs` with one worker and ``ahead_count`` jobs run ahead in threads."""
    from concurrent.futures import ThreadPoolExecutor, wait

    threads = ThreadPoolExecutor(ahead_count, thread_name_prefix="avsr-prefetch")
    ahead = deque(threads.submit(function, *job) for job in jobs[:ahead_count])
    try:
        for index in range(len(jobs)):
            result = ahead[0].result()  # still in `ahead` while waited for: a Ctrl-C here stops it too
            ahead.popleft()
            if index + ahead_count < len(jobs):
                ahead.append(threads.submit(function, *jobs[index + ahead_count]))
            yield index, result
    finally:  # stopped early (an error, Ctrl-C, a closed generator)
        running = [future for future in ahead if not future.cancel()]
        if running and cancel is not None:
            cancel.set()
            wait(running)
        if discard is not None:
            for future in running:
                future.add_done_callback(lambda done: done.exception() is None and discard(done.result()))
        threads.shutdown(wait=False)


def _in_processes(function: Callable[..., Any], jobs: Sequence[tuple], workers: int, on_crash: Callable[[tuple], Any],
                  limit: int) -> Iterator[tuple[int, Any]]:
    """:func:`imap_jobs` with ``workers`` spawned processes, at most ``limit`` jobs in flight; a job whose
    worker dies is run again alone, and ``on_crash`` gives its result if it kills that one too."""
    import multiprocessing  # here, not at the top: `avsr --help` imports this module (for its constants)
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # MediaPipe's threads do not survive fork
    started = context.Array("b", len(jobs), lock=False)
    pending = deque(range(len(jobs)))

    def pool(size: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(size, mp_context=context, initializer=_init_worker,
                                   initargs=(started, os.getpid()))

    while pending:
        futures: dict = {}
        broken = False  # a worker died: the pool refuses new jobs and fails those not yet returned
        with pool(workers) as executor:
            while (pending or futures) and not broken:
                try:
                    while pending and len(futures) < limit:
                        futures[executor.submit(_tracked, pending[0], function, jobs[pending[0]])] = pending[0]
                        pending.popleft()
                except BrokenProcessPool:
                    broken = True
                    break
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    if isinstance(future.exception(), BrokenProcessPool):
                        broken = True
                        break
                    yield futures.pop(future), future.result()
        lost = []
        for future, index in futures.items():  # results that arrived before the break still count
            if future.done() and not isinstance(future.exception(), BrokenProcessPool):
                yield index, future.result()
            else:
                lost.append(index)
        # The jobs that had started when the pool broke: the one that killed its worker is among them.
        for index in [i for i in lost if started[i] == 1]:
            started[index] = 0
            with pool(1) as alone:
                try:
                    result = alone.submit(_tracked, index, function, jobs[index]).result()
                except BrokenProcessPool:
                    result = on_crash(jobs[index])
            yield index, result
        for index in reversed([i for i in lost if started[i] != 1]):
            started[index] = 0
            pending.appendleft(index)


def run_jobs(function: Callable[..., Any], jobs: Sequence[tuple], workers: int, on_crash: Callable[[tuple], Any],
             progress: bool = True, unit: str = "file") -> list[Any]:
    """``[function(*job) for job in jobs]``, in order, run as :func:`imap_jobs` does, with a progress bar."""
    from tqdm import tqdm

    results: list[Any] = [None] * len(jobs)
    with tqdm(total=len(jobs), unit=unit, disable=not progress, dynamic_ncols=True) as bar:
        for index, result in imap_jobs(function, jobs, workers, on_crash):
            results[index] = result
            bar.update()
    return results
