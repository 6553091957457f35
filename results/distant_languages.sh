#!/usr/bin/env bash
# The shipped seed-0 csr-mini heads of each training arm, re-evaluated on every language of the flickr8k-multi30k
# test photos (en de fr pt cs zh ar, en-x-f8k zh-x-f8k), then the summary page. Runs append to results/runs/
# (--skip-existing: a finished run is not redone). About 1 minute per run on 2 CPU cores once images are cached.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for arm in en mlcs-de-fr-cs translate-train blcs-de blcs-fr blcs-cs mlcs-de-fr dict-de-fr-cs; do
  for tower in csr-mini-m csr-mini; do
    TOKENIZERS_PARALLELISM=false "$PY" -m csr_core eval --model "$tower:$arm" --dataset flickr8k-multi30k \
      --split test --langs en,de,fr,pt,cs,zh,ar,en-x-f8k,zh-x-f8k \
      --settings monolingual,multilingual,cross,cs-queries --cs-langs de,fr,cs,pt,zh,ar --cs-modes bl,ml \
      --cs-ps 0 0.5 1 --k 1 5 10 --seed 0 --skip-existing --quiet
  done
done
"$PY" -m csr_core gaps --summary results/distant-languages.md
