"""Drivers: many shards or tables over worker processes or Ray Data, sizes.json and the run manifest."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from csr_core import _io
from csr_core.cs_shards._constants import MANIFEST_FILE, SIZES_FILE
from csr_core.cs_shards.jobs import FileResult, RunSummary, SwitchJob, SwitchStats, expand_braces
from csr_core.cs_shards.tables import switch_table
from csr_core.cs_shards.pool import _Pool, _shard_task
from csr_core.cs_shards.tar import switch_shard
from csr_core.errors import CSRError, DataError

def _ordered(pool: _Pool | None, job: SwitchJob, pairs: Iterable[tuple[str, str]]) -> Iterator[FileResult]:
    """Switch shards here or in the pool, at most 2 x workers submitted ahead, results in input order."""
    if pool is None:
        for source, output in pairs:
            yield switch_shard(source, output, job)
        return
    window: deque[Any] = deque()
    for source, output in pairs:
        window.append(pool.submit(_shard_task, (source, output)))
        if len(window) >= 2 * pool.workers:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


# --------------------------------------------------------------------------------------------------------------------
# Ray Data


class _RayFileSwitcher:
    """Ray Data callable class: one job per actor, one row = one input file."""

    def __init__(self, job: SwitchJob, kind: str) -> None:
        self.job = job
        self.kind = kind

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        try:
            if self.kind == "shards":
                result = switch_shard(row["source"], row["output"], self.job)
            else:
                result = switch_table(row["source"], row["output"], self.job)
        except CSRError as exc:  # user errors come back as rows, so the driver raises the message itself
            return {"index": row["index"], "error": str(exc), "error_type": type(exc).__name__, "result": ""}
        stats = result.stats
        payload = {"source": result.source, "output": result.output, "seconds": result.seconds,
                   "stats": {"n_samples": stats.n_samples, "n_skipped": stats.n_skipped, "n_content": stats.n_content,
                             "n_switched_content": stats.n_switched_content, "by_lang": stats.by_lang}}
        return {"index": row["index"], "error": "", "error_type": "", "result": json.dumps(payload)}


def _ray_env() -> dict[str, Any]:
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    env = {k: v for k, v in os.environ.items() if k.startswith(("CSR_", "HF_"))}
    env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    return {"env_vars": env}


def _ray_run(kind: str, pairs: list[tuple[str, str]], job: SwitchJob, workers: int,
             address: str | None) -> list[FileResult]:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise CSRError(f"--ray needs Ray ({exc}); pip install 'ray[data]'") from None
    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                                      runtime_env=_ray_env())
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers, **kwargs)
        started = True
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        items = [{"index": i, "source": s, "output": o} for i, (s, o) in enumerate(pairs)]
        dataset: Any = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        dataset = dataset.map(_RayFileSwitcher, fn_constructor_args=(job, kind), concurrency=workers, num_cpus=1)
        rows = sorted(dataset.take_all(), key=lambda row: row["index"])
    finally:
        if started:
            ray.shutdown()
    errors = [row for row in rows if row["error"]]
    if errors:
        first = errors[0]
        more = f" ({len(errors) - 1} more file(s) failed too)" if len(errors) > 1 else ""
        error_type = DataError if first["error_type"] in ("DataError", "LexiconError") else CSRError
        raise error_type(first["error"] + more)
    results = []
    for row in rows:
        payload = json.loads(row["result"])
        stats = SwitchStats(**payload["stats"])
        results.append(FileResult(payload["source"], payload["output"], stats, payload["seconds"]))
    return results


# --------------------------------------------------------------------------------------------------------------------
# runs over many files


def _check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise CSRError(f"workers must be a positive integer, got {workers!r}")
    return workers


def _shard_pairs(patterns: Sequence[str], out_dir: Path) -> Iterator[tuple[str, str]]:
    names: set[str] = set()
    any_shard = False
    for pattern in patterns:
        for shard in expand_braces(pattern):
            any_shard = True
            name = Path(shard).name
            if name in names:
                raise CSRError(f"two input shards are named {name}: their outputs in {out_dir} would collide")
            names.add(name)
            yield shard, str(out_dir / name)
    if not any_shard:
        raise CSRError("no shards: give a pattern such as 'data/{00000..00009}.tar'")


def switch_shards(patterns: str | Sequence[str], out_dir: str | os.PathLike, job: SwitchJob, *, workers: int = 1,
                  use_ray: bool = False, ray_address: str | None = None) -> RunSummary:
    """Switch every shard the pattern(s) name into `out_dir` (same file names), then merge their sample counts into
    `out_dir/sizes.json` (open_clip_train's dataset size) and the switching settings into `out_dir/codeswitch.json`.
    A folder holding shards switched with other settings is refused."""
    workers = _check_workers(workers)
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    out = Path(out_dir)
    manifest = _load_manifest(out, job)
    started = time.perf_counter()
    pairs = _shard_pairs(patterns, out)
    results: list[FileResult] = []
    if use_ray:
        results = _ray_run("shards", list(pairs), job, workers, ray_address)
    elif workers == 1:
        results = list(_ordered(None, job, pairs))
    else:
        with _Pool(job, workers) as pool:
            results = list(_ordered(pool, job, pairs))
    summary = _summary("shards", results, time.perf_counter() - started, job)
    _write_sizes(out, results)
    _write_manifest(out, manifest, job, results)
    return summary


def switch_tables(patterns: str | Sequence[str], job: SwitchJob, *, output: str | os.PathLike | None = None,
                  out_dir: str | os.PathLike | None = None, workers: int = 1, use_ray: bool = False,
                  ray_address: str | None = None) -> RunSummary:
    """Switch caption tables: one table into `output`, or each into `out_dir` under its own name. Locally the
    tables go one after another, each one's batches over `workers` processes; with Ray, one task per table."""
    workers = _check_workers(workers)
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    sources = [path for pattern in patterns for path in expand_braces(pattern)]
    if not sources:
        raise CSRError("no tables given")
    if (output is None) == (out_dir is None):
        raise CSRError("give either an output table (--out) or an output folder (--out-dir)")
    if output is not None:
        if len(sources) != 1:
            raise CSRError(f"{len(sources)} tables but one --out file; use --out-dir for several")
        pairs = [(sources[0], str(output))]
    else:
        folder = Path(out_dir)  # type: ignore[arg-type]
        names = [Path(s).name for s in sources]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise CSRError(f"several input tables are named {repeated[0]}: their outputs would collide")
        pairs = [(s, str(folder / n)) for s, n in zip(sources, names)]
    started = time.perf_counter()
    if use_ray:
        results = _ray_run("tables", pairs, job, workers, ray_address)
    elif workers == 1:
        results = [switch_table(s, o, job) for s, o in pairs]
    else:
        with _Pool(job, workers) as pool:
            results = [switch_table(s, o, job, pool) for s, o in pairs]
    return _summary("tables", results, time.perf_counter() - started, job)


def _summary(kind: str, results: list[FileResult], seconds: float, job: SwitchJob) -> RunSummary:
    total = SwitchStats()
    for result in results:
        total.add(result.stats)
    return RunSummary(kind, results, total, seconds, job.switcher.params)


def _write_sizes(out: Path, results: list[FileResult]) -> None:
    sizes: dict[str, int] = {}
    path = out / SIZES_FILE
    if path.is_file():
        try:
            loaded = _io.read_json_file(path, "shard sizes")
            sizes.update({str(k): int(v) for k, v in loaded.items()})
        except (OSError, ValueError, TypeError):
            sizes = {}
    for result in results:
        sizes[Path(result.output).name] = result.stats.n_samples
    _io.atomic_write_text(path, json.dumps(dict(sorted(sizes.items())), indent=1) + "\n")


def _settings(job: SwitchJob) -> dict[str, Any]:
    return {**job.switcher.params, "key": job.key, "caption_ext": job.caption_ext, "on_missing": job.on_missing}


def _load_manifest(out: Path, job: SwitchJob) -> dict[str, Any]:
    path = out / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        manifest = _io.read_json_file(path, "code-switching manifest")
    except DataError as exc:
        raise DataError(f"{exc}; remove it or use another --out-dir") from None
    if manifest.get("settings") != _settings(job):
        raise CSRError(f"{out} holds shards code-switched with other settings ({path}); use another --out-dir so "
                       "the two are not mixed")
    return manifest


def _write_manifest(out: Path, manifest: dict[str, Any], job: SwitchJob, results: list[FileResult]) -> None:
    shards = dict(manifest.get("shards", {}))
    for result in results:
        stats = result.stats
        shards[Path(result.output).name] = {"source": result.source, "samples": stats.n_samples,
                                            "skipped": stats.n_skipped, "content_words": stats.n_content,
                                            "switched_content_words": stats.n_switched_content,
                                            "switched_by_lang": stats.by_lang}
    record = {"settings": _settings(job), "shards": dict(sorted(shards.items()))}
    _io.atomic_write_text(out / MANIFEST_FILE, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
