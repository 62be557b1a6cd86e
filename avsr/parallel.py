"""Run one job per file in worker processes, so that no file can end the batch.

A job function returns its own result (success or a handled failure). A worker process that dies
(a native crash inside a decoder, say) costs only the file it was on: every worker marks the job it
starts in shared memory, so after a crash the jobs that were in flight are known exactly. Each of
them is re-run alone in a fresh process; one that kills its process again gets ``on_crash(job)``.
Everything else goes back into the pool.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

_STARTED = None  # per worker: the shared array of job states (0 waiting, 1 started, 2 returned)


def _init_worker(started) -> None:
    import warnings

    global _STARTED
    _STARTED = started
    warnings.simplefilter("ignore")


def _tracked(index: int, function: Callable[..., Any], job: tuple) -> Any:
    _STARTED[index] = 1
    result = function(*job)
    _STARTED[index] = 2
    return result


def _run_pool(function, jobs, indices, workers, context, started, bar) -> tuple[dict[int, Any], bool]:
    """Run ``indices`` in one pool; return the results it produced and whether a worker died."""
    results: dict[int, Any] = {}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(started,)) as pool:
        futures = {pool.submit(_tracked, i, function, jobs[i]): i for i in indices}
        not_done = set(futures)
        crashed = False
        while not_done and not crashed:
            done, not_done = wait(not_done, return_when="FIRST_COMPLETED")
            for future in done:
                try:
                    results[futures[future]] = future.result()
                    bar.update()
                except BrokenProcessPool:
                    crashed = True
    return results, crashed


def run_jobs(function: Callable[..., Any], jobs: Sequence[tuple], workers: int, on_crash: Callable[[tuple], Any],
             progress: bool = True, unit: str = "file") -> list[Any]:
    """``[function(*job) for job in jobs]``, in order, with ``workers`` processes (1: in this one).

    ``function`` must be importable by name (a module-level function), as worker processes are spawned.
    """
    from tqdm import tqdm

    results: list[Any] = [None] * len(jobs)
    finished = [False] * len(jobs)
    with tqdm(total=len(jobs), unit=unit, disable=not progress, dynamic_ncols=True) as bar:
        if workers <= 1:
            for i, job in enumerate(jobs):
                results[i] = function(*job)
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")  # MediaPipe's threads do not survive fork
        started = context.Array("b", len(jobs), lock=False)
        pending = list(range(len(jobs)))
        while pending:
            produced, crashed = _run_pool(function, jobs, pending, workers, context, started, bar)
            for i, result in produced.items():
                results[i], finished[i] = result, True
            if crashed:
                # The jobs in flight when the pool broke: the one that killed its worker is among them.
                suspects = [i for i in pending if not finished[i] and started[i] == 1]
                for i in suspects:
                    started[i] = 0
                    alone, crashed_alone = _run_pool(function, jobs, [i], 1, context, started, bar)
                    if crashed_alone:
                        results[i] = on_crash(jobs[i])
                        bar.update()
                    else:
                        results[i] = alone[i]
                    finished[i] = True
            pending = [i for i in pending if not finished[i]]
            for i in pending:
                started[i] = 0
    return results
