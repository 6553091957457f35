"""Reading the published caption files: decoding, line checks, locating a dataset under the data root."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csr_core import _io
from csr_core.errors import DataError


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file (plain or .gz), CRLF-safe, split on '\\n' only (never on U+2028 and the like,
    which would shift line alignment); errors name the file and line."""
    data = _io.read_input_bytes(path, "data file")
    if path.suffix == ".gz" and data[:2] != b"\x1f\x8b":
        raise DataError(f"{path}: not a valid gzip file (no gzip header)")
    text, _ = _io.decode_text(data, str(path))
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _read_caption_file(path: Path) -> list[str]:
    """One caption per line; a blank line is a missing caption, reported with its line number."""
    lines = _read_lines(path)
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"{path}:{i}: empty caption line (each line must hold the caption of one image)")
    return [line.strip() for line in lines]


def _jsonl_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`file:line`, object) for each non-blank line of a JSON-lines file; bad JSON names the file and line."""
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        obj = _io.loads_json(line, where, one_line=True)
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object")
        yield where, obj


def _caption_list(value: Any, where: str, label: str) -> list[str]:
    """A caption or list of captions from JSON, checked: non-empty strings only."""
    caps = [value] if isinstance(value, str) else value
    if not isinstance(caps, list) or not all(isinstance(c, str) and c.strip() for c in caps):
        raise DataError(f"{where}: {label} must be a list of non-empty strings")
    return [c.strip() for c in caps]


def _same_length(files: Mapping[Path, Sequence[Any]], what: str = "line i of each describes the same image") -> None:
    """Raise a DataError naming both files and both line counts when aligned files differ in length."""
    items = list(files.items())
    ref_path, ref = items[0]
    for path, lines in items[1:]:
        if len(lines) != len(ref):
            raise DataError(
                f"caption files differ in length: {ref_path} has {len(ref)} lines but {path} has {len(lines)} "
                f"({what}); fix or re-download the files"
            )


def _first_existing(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


@dataclass(frozen=True)
class Location:
    """Where a dataset's files live under the data root: `<root>/<folder>` (or the root itself) holding a marker.

    The loader finds its folder with `find`, and `csr-lab datasets` / the dashboard call `exists`, so "present here"
    and "loads here" cannot disagree."""

    folder: str
    markers: tuple[str, ...]

    def find(self, data_root: str | os.PathLike | None) -> Path:
        """The dataset folder, or a DataError naming where it looked."""
        from csr_core.paths import data_dir

        root = Path(data_root).expanduser() if data_root is not None else data_dir()
        for cand in (root / self.folder, root):
            if any((cand / m).exists() for m in self.markers):
                return cand
        raise DataError(
            f"{self.folder} data not found: no {' or '.join(self.markers)} in {root / self.folder} or {root} "
            f"(pass data_root=... or set CSR_DATA_DIR)"
        )

    def exists(self, data_root: str | os.PathLike | None) -> bool:
        try:
            self.find(data_root)
        except DataError:
            return False
        return True


