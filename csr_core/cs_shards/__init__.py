"""Code-switching of CLIP training data at scale: webdataset tar shards and caption tables, streamed.

Inputs, as CLIP pretraining pipelines store them:

- webdataset tar shards in img2dataset layout (`<key>.jpg`, `<key>.txt` caption, optional `<key>.json`), plain or
  gzip-compressed. Each output shard has the same members in the same order; the caption member holds the switched
  caption, the original follows as `<key>.orig.txt` and a sidecar `<key>.cs.json` records the spans, languages, p,
  mode, seed and the key that seeded the caption. open_clip_train reads the shards unchanged (it takes `.txt` as the
  caption; the extra members are ignored), and `sizes.json` beside them gives it the sample counts.
- caption tables: CSV/TSV (open_clip_train's `CsvDataset`, tab-separated by default) and parquet (img2dataset's
  metadata). The output is the same table with the caption column switched in place (so `--csv-caption-key` stays
  what it was), plus `<caption>_orig` (the original) and `cs_json` (the sidecar as JSON). A parquet input can be
  written as a CSV/TSV for open_clip_train (`--out train.tsv`).

Streaming: a tar shard is read member by member (one sample in memory at a time), a table batch by batch (CSV rows
or parquet row-group batches); shard patterns (`{00000..00999}`) are expanded with `braceexpand`, as webdataset/open_clip do.
Every output file is written atomically (`csr_core._io.atomic_write`): a killed job leaves at most a hidden
`.<name>.*.tmp`, never a half-written shard under its final name.

Parallelism: `workers > 1` switches shards in that many processes (one output shard per input shard); a table's
batches are switched in the worker processes while this process reads and writes in order. `use_ray=True` runs one
Ray Data task per shard or table (a cluster reads and writes a shared file system). Determinism: each caption's
draws depend only on (seed, key) -- the sample key (`__key__` of the tar, the `key` column of img2dataset parquet,
else the row number) or, with `key="text"`, the caption text as in the line CLI -- so the output bytes are the same
whatever the number of workers, the backend or the order shards finish in.
"""

from __future__ import annotations

# One module per concern: `jobs` (settings, counters, sidecar records), `tar` (webdataset shards), `tables` (CSV/TSV,
# parquet), `pool` (worker processes), `run` (many files over processes or Ray, sizes.json, the run manifest).
from csr_core.cs_shards._constants import MANIFEST_FILE, ORIG_SUFFIX, SIDECAR_COLUMN, SIDECAR_SUFFIX, SIZES_FILE
from csr_core.cs_shards.jobs import FileResult, RunSummary, SwitchJob, SwitchStats, expand_braces, sidecar
from csr_core.cs_shards.run import switch_shards, switch_tables
from csr_core.cs_shards.tables import switch_captions, switch_table, table_format
from csr_core.cs_shards.tar import read_sidecars, switch_shard

__all__ = [
    "MANIFEST_FILE", "ORIG_SUFFIX", "SIDECAR_COLUMN", "SIDECAR_SUFFIX", "SIZES_FILE", "FileResult", "RunSummary",
    "SwitchJob", "SwitchStats", "expand_braces", "read_sidecars", "sidecar", "switch_captions", "switch_shard",
    "switch_shards", "switch_table", "switch_tables", "table_format",
]
