"""Worker processes for the code-switchers: a process pool that switches whole shards or batches of captions.

The task functions import the switchers when they run (in the worker), so `tables` can use this pool without an
import cycle."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from csr_core.cs_shards.jobs import FileResult, SwitchJob, SwitchStats
from csr_core.errors import CancelledError

# --------------------------------------------------------------------------------------------------------------------
# worker processes


_WORKER: dict[str, Any] = {}


def _init_worker(job: SwitchJob, cancel: Any) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _WORKER["job"] = job
    _WORKER["cancel"] = cancel


def _cancelled() -> bool:
    cancel = _WORKER.get("cancel")
    return bool(cancel is not None and cancel.is_set())


def _shard_task(source: str, output: str) -> FileResult:
    if _cancelled():
        raise CancelledError(f"switching {source} was cancelled")
    from csr_core.cs_shards.tar import switch_shard

    return switch_shard(source, output, _WORKER["job"], cancel=_cancelled)


def _switch_captions_task(captions: list[str], seed_keys: list[str | None],
                          record_keys: list[str | None]) -> tuple[list[str], list[str], SwitchStats]:
    if _cancelled():
        raise CancelledError("switching was cancelled")
    from csr_core.cs_shards.tables import switch_captions

    return switch_captions(_WORKER["job"], captions, seed_keys, record_keys)


class _Pool:
    """`workers` spawned processes holding the job (the switcher is sent once per worker). On an error the others
    are told to stop; each stops at its next sample, and its unfinished temp file is removed. A worker that dies
    (killed, out of memory) fails the run with BrokenProcessPool instead of hanging it."""

    def __init__(self, job: SwitchJob, workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # never fork a process that may hold torch threads
        self.workers = workers
        self._cancel = context.Event()
        self._executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                             initargs=(job, self._cancel))

    def submit(self, fn: Callable[..., Any], args: tuple) -> Any:
        return self._executor.submit(fn, *args)

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if error is not None:
            self._cancel.set()  # running tasks stop at their next sample; queued ones are dropped
        interrupted = error is not None and not isinstance(error, Exception)  # Ctrl-C: workers got it too
        self._executor.shutdown(wait=not interrupted, cancel_futures=error is not None)
