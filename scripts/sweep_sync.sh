#!/usr/bin/env bash
# Copy finished cells of a background sweep (scripts/sweep_bg.sh) into results/, regenerate report, figures, numbers
# and the paper, and run the paper checks. Commit afterwards. Usage: scripts/sweep_sync.sh [pilot]
set -euo pipefail
name=${1:-pilot}
root=$(git rev-parse --show-toplevel)
wt="$root/../adaptive-lora-sweep"
cd "$root"
mkdir -p "results/$name"
cp -p "$wt/results/$name"/*.json "results/$name/" 2>/dev/null || true
if [ -d "$wt/results/$name/failed" ]; then mkdir -p "results/$name/failed"; cp -p "$wt/results/$name/failed"/*.json "results/$name/failed/"; fi
make --no-print-directory paper   # the pilot figures + the main grid (main-figures), whatever $name is
.venv/bin/python scripts/update_docs.py
.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_paper.py
echo "$(ls results/$name/*.json | wc -l) cells in results/$name; now: git add -A && git commit"
