#!/usr/bin/env bash
# The second experiment (close vs distant languages), design `experiment-2` in csr_core/experiment.py: every arm x
# text tower x seed, heads trained on cached tower features, evaluated on the 237 test photos in en de fr pt cs zh ar
# (and XTD10 text for seed 0). One process per text tower, one torch thread each. Runs append to results/runs/ tagged
# run_set=experiment-2; the training log is results/experiment-2/training_log.json. Resumable: a (tower, arm, seed)
# whose evaluations are stored is skipped, so rerunning after an interruption continues where it stopped.
# Run it from a clean checkout (the manifests record the commit and git_dirty).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0,1,2,3,4}
export TOKENIZERS_PARALLELISM=false
mkdir -p results/experiment-2
pids=()
for tower in ${TOWERS:-e5 minilm}; do
  "$PY" -m csr_core experiment --design experiment-2 --towers "$tower" --seeds "$SEEDS" --threads 1 \
    > "results/experiment-2/grid-$tower.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
