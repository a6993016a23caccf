#!/usr/bin/env bash
# Copy finished cells of a background sweep (scripts/sweep_bg.sh) into results/, regenerate report, figures, numbers
# and the paper, and run the paper checks. Commit afterwards.
# Usage: scripts/sweep_sync.sh [pilot] [--cells]   (--cells: copy the cells only, ~1 s, so they can be committed at
# once; the full regeneration takes ~20 min on 2 busy cores)
set -euo pipefail
name=${1:-pilot}
cells_only=${2:-}
if [ -n "$cells_only" ] && [ "$cells_only" != "--cells" ]; then
    echo "error: unknown option '$cells_only' (usage: scripts/sweep_sync.sh [name] [--cells])" >&2; exit 2
fi
root=$(git rev-parse --show-toplevel)
wt="$root/../adaptive-lora-sweep-$name"   # scripts/sweep_bg.sh: one worktree per grid
cd "$root"
mkdir -p "results/$name"
cp -p "$wt/results/$name"/*.json "results/$name/" 2>/dev/null || true
# failure records mirror the sweep's: a cell that has since succeeded loses its record there, so here too
rm -rf "results/$name/failed"
if ls "$wt/results/$name/failed"/*.json >/dev/null 2>&1; then
    mkdir -p "results/$name/failed"; cp -p "$wt/results/$name/failed"/*.json "results/$name/failed/"
fi
echo "$(ls results/$name/*.json | wc -l) cells in results/$name"
.venv/bin/python scripts/update_docs.py   # README/EXPERIMENTS blocks that count cells (~2 s; CI checks them)
[ "$cells_only" = "--cells" ] && exit 0
make --no-print-directory paper   # the pilot figures + the main grid (main-figures), whatever $name is
.venv/bin/python scripts/update_docs.py
.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_paper.py
echo "now: git add -A && git commit"
