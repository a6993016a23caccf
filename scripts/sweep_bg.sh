#!/usr/bin/env bash
# Run a sweep in the background from a clean worktree of HEAD, so that editing this checkout never makes the
# running cells "dirty". Usage: scripts/sweep_bg.sh [experiments/pilot.yaml]   (log: ../sweep-<name>.log)
# Then, whenever cells land: scripts/sweep_sync.sh [pilot]   (copies results back and regenerates the paper).
set -euo pipefail
grid=${1:-experiments/pilot.yaml}
shift || true
name=$(sed -n 's/^name: *\([A-Za-z0-9_.-]*\).*/\1/p' "$grid" | head -1)
name=${name:-$(basename "$grid" .yaml)}
root=$(git rev-parse --show-toplevel)
wt="$root/../adaptive-lora-sweep"
if pgrep -f "adaptive_lora sweep" >/dev/null; then
    echo "error: a sweep is already running (pgrep -f 'adaptive_lora sweep'); two would share the cores" >&2; exit 2
fi
if [ -d "$wt" ]; then
    # cells finished there but not yet synced are kept (copied back, never overwritten); then -f lets the
    # checkout replace untracked copies of files that HEAD now tracks
    mkdir -p "$root/results/$name"
    cp -pn "$wt/results/$name"/*.json "$root/results/$name/" 2>/dev/null || true
    git -C "$wt" checkout -q -f --detach "$(git -C "$root" rev-parse HEAD)"
else
    git -C "$root" worktree add -q --detach "$wt" HEAD
fi
mkdir -p "$wt/results/$name"
cp -p "$root/results/$name"/*.json "$wt/results/$name/" 2>/dev/null || true   # cells done elsewhere stay done
cp -rp "$root/results/default" "$wt/results/" 2>/dev/null || true
cd "$wt"
ADAPTIVE_LORA_CACHE="$root/.cache" HF_HUB_OFFLINE=1 nohup "$root/.venv/bin/python" -m adaptive_lora sweep "$grid" \
    "$@" > "$root/../sweep-$name.log" 2>&1 &
echo "sweep $name running in $wt (pid $!), log $root/../sweep-$name.log"
