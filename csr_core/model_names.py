"""csr-mini model names as one value type: parsed and formatted here only.

Grammar (what users type, what runs record, what head files are called):

    csr-mini | csr-mini-m                         the default heads: arm "en", seed 0
    <base>:<arm>                                  an arm, seed 0          e.g. csr-mini:mlcs-de-fr-cs
    <base>:<arm>/s<seed>                          an arm and seed         e.g. csr-mini-m:translate-train/s2
    <base>:<arm>/s<seed>+top<N>                   heads trained together with the text tower's top N layers

base `csr-mini` = MiniLM text tower (file prefix `minilm`), `csr-mini-m` = multilingual-e5-small (`e5`). Head files
are `<tower>-<arm>[-top<N>]-s<seed>.safetensors` (+ `.tower.safetensors` with the N trained layers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from csr_core.errors import ModelError

BASE_OF_TOWER = {"minilm": "csr-mini", "e5": "csr-mini-m"}
TOWER_OF_BASE = {base: tower for tower, base in BASE_OF_TOWER.items()}
DEFAULT_ARM = "en"
_ARM = r"[a-z0-9][a-z0-9-]*?"
_NAME_RE = re.compile(rf"(?P<base>csr-mini(?:-m)?)(?::(?P<arm>{_ARM})(?:/s(?P<seed>\d+))?(?:\+top(?P<top>\d+))?)?")
_FILE_RE = re.compile(rf"(?P<tower>minilm|e5)-(?P<arm>{_ARM})(?:-top(?P<top>\d+))?-s(?P<seed>\d+)\.safetensors")


@dataclass(frozen=True, order=True)
class CsrMiniName:
    """One trained csr-mini model: text tower, arm, seed and how many top text layers were trained with it."""

    tower: str
    arm: str = DEFAULT_ARM
    seed: int = 0
    top_layers: int = 0

    def __post_init__(self) -> None:
        if self.tower not in BASE_OF_TOWER:
            raise ModelError(f"unknown csr-mini text tower {self.tower!r}; choose {', '.join(BASE_OF_TOWER)}")
        if not re.fullmatch(_ARM, self.arm) or self.arm.endswith("-"):
            raise ModelError(f"arm {self.arm!r} must be lowercase letters, digits and '-'")
        if int(self.seed) < 0 or int(self.top_layers) < 0:
            raise ModelError(f"seed and top layers must be >= 0, got {self.seed}, {self.top_layers}")

    # -- parsing
    @classmethod
    def parse(cls, name: str) -> "CsrMiniName":
        m = _NAME_RE.fullmatch(str(name).strip())
        if not m:
            raise ModelError(
                f"{name!r} is not a csr-mini name; use csr-mini, csr-mini-m, csr-mini:<arm>, csr-mini:<arm>/s<seed> "
                "or csr-mini:<arm>/s<seed>+top<N> (arm: lowercase letters, digits and '-')"
            )
        return cls(TOWER_OF_BASE[m["base"]], m["arm"] or DEFAULT_ARM, int(m["seed"] or 0), int(m["top"] or 0))

    @classmethod
    def try_parse(cls, name: str) -> "CsrMiniName | None":
        try:
            return cls.parse(name)
        except ModelError:
            return None

    @classmethod
    def from_file(cls, file_name: str) -> "CsrMiniName | None":
        """The name a head file holds (`minilm-blcs-de-s1.safetensors`), or None for other files."""
        m = _FILE_RE.fullmatch(file_name)
        if not m:
            return None
        return cls(m["tower"], m["arm"], int(m["seed"]), int(m["top"] or 0))

    # -- formatting
    @property
    def base(self) -> str:
        return BASE_OF_TOWER[self.tower]

    @property
    def canonical(self) -> str:
        """The shortest name that loads it: `csr-mini` for MiniLM/en/s0, no `/s0`."""
        if self.arm == DEFAULT_ARM and self.seed == 0 and not self.top_layers:
            return self.base
        return f"{self.base}:{self.arm}" + (f"/s{self.seed}" if self.seed or self.top_layers else "") + self._top

    @property
    def explicit(self) -> str:
        """Always arm and seed (what training runs record): `csr-mini:en/s0`."""
        return f"{self.base}:{self.arm}/s{int(self.seed)}{self._top}"

    @property
    def _top(self) -> str:
        return f"+top{self.top_layers}" if self.top_layers else ""

    @property
    def heads_filename(self) -> str:
        top = f"-top{self.top_layers}" if self.top_layers else ""
        return f"{self.tower}-{self.arm}{top}-s{int(self.seed)}.safetensors"

    @property
    def tower_layers_filename(self) -> str:
        """The trained text layers beside the heads (only when top_layers > 0)."""
        return self.heads_filename.replace(".safetensors", ".tower.safetensors")

    def __str__(self) -> str:
        return self.canonical


def model_family(model: str) -> str:
    """The base model a run's model name belongs to, for comparing arms within one model: `csr-mini-m:en/s3` →
    `csr-mini-m`; a checkpoint after `@` is an arm's weights (`x.json@arm.safetensors` → `x.json`)."""
    parsed = CsrMiniName.try_parse(model)
    if parsed is not None:
        return parsed.base
    return str(model).split("@", 1)[0]


def file_stem(model_id: str) -> str:
    """A model id or path as a file/folder-name part (`org/name@v1` → `org-name-v1`): training runs name their
    output folders with it, so it must be one path component on every OS."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-")
