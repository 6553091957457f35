"""Constants of the shard/table code-switchers (names of members, columns and files they write)."""

from __future__ import annotations

import re
import tarfile
import zlib

KEY_MODES = ("sample", "text", "index")
ON_MISSING = ("error", "skip")
ORIG_SUFFIX = "orig"  # <key>.orig.txt
SIDECAR_SUFFIX = "cs.json"  # <key>.cs.json
SIDECAR_COLUMN = "cs_json"
SIZES_FILE = "sizes.json"  # open_clip_train's get_dataset_size reads it
MANIFEST_FILE = "codeswitch.json"
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)
_KEY_SPLIT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext: key up to the first dot
_CANCEL_EVERY = 64
