"""Run one job per file in worker processes, so that no file can end the batch.

A job function returns its own result (success or a handled failure). A worker process that dies
(a native crash inside a decoder, say) costs only the file it was on: unfinished jobs are retried
in a fresh pool, and a job that was in flight during two crashes gets ``on_crash(job)``.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any


def _quiet_worker() -> None:
    import warnings

    warnings.simplefilter("ignore")


def run_jobs(function: Callable[..., Any], jobs: Sequence[tuple], workers: int, on_crash: Callable[[tuple], Any],
             progress: bool = True, unit: str = "file") -> list[Any]:
    """``[function(*job) for job in jobs]``, in order, with ``workers`` processes (1: in this one)."""
    from tqdm import tqdm

    results: list[Any] = [None] * len(jobs)
    with tqdm(total=len(jobs), unit=unit, disable=not progress, dynamic_ncols=True) as bar:
        if workers <= 1:
            for i, job in enumerate(jobs):
                results[i] = function(*job)
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")  # MediaPipe's threads do not survive fork
        crashes = [0] * len(jobs)
        pending = list(range(len(jobs)))
        while pending:
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_worker) as pool:
                futures = {pool.submit(function, *jobs[i]): i for i in pending}
                for future in as_completed(futures):
                    try:
                        results[futures[future]] = future.result()
                    except BrokenProcessPool:  # a worker died: what is unfinished is retried below
                        break
                    bar.update()
            pending = [i for i in pending if results[i] is None]
            # The pool hands out jobs in order, so the crash happened in one of the first few left.
            for i in pending[: workers + 1]:
                crashes[i] += 1
                if crashes[i] >= 2:
                    results[i] = on_crash(jobs[i])
                    bar.update()
            pending = [i for i in pending if results[i] is None]
    return results
