#!/usr/bin/env bash
# Run a sweep in the background from a clean worktree of HEAD, so that editing this checkout never makes the
# running cells "dirty". Usage: scripts/sweep_bg.sh [experiments/pilot.yaml] [sweep options, e.g. --jobs 2]
# Each grid name gets its own worktree (../adaptive-lora-sweep-<name>) and log (../sweep-<name>.log), so two grids
# can run side by side (e.g. the main grid and a replication, --jobs 1 each) as long as their processes x threads
# fit the cores; a second sweep of the same grid is refused (it would run the same cells twice).
# Then, whenever cells land: scripts/sweep_sync.sh [pilot]   (copies results back and regenerates the paper).
set -euo pipefail
grid=${1:-experiments/pilot.yaml}
shift || true
grid_name() { local n; n=$(sed -n 's/^name: *\([A-Za-z0-9_.-]*\).*/\1/p' "$1" | head -1); echo "${n:-$(basename "$1" .yaml)}"; }
grid_threads() { local t; t=$(sed -n 's/^ *threads: *\([0-9][0-9]*\).*/\1/p' "$1" | head -1); echo "${t:-1}"; }
arg_jobs() { local j=1; while [ $# -gt 0 ]; do case $1 in --jobs) j=$2; shift;; --jobs=*) j=${1#--jobs=};; esac; shift; done; echo "$j"; }
name=$(grid_name "$grid")
root=$(git rev-parse --show-toplevel)
wt="$root/../adaptive-lora-sweep-$name"
# cores asked for = processes x threads, over the running sweeps (read from their command lines) and this one
used=0
while read -r pid; do
    other=""
    { mapfile -d "" -t argv < "/proc/$pid/cmdline"; } 2>/dev/null || continue   # it may have just ended
    cwd=$(readlink "/proc/$pid/cwd") || continue
    for i in "${!argv[@]}"; do [ "${argv[$i]}" = sweep ] && other="${argv[$((i + 1))]}"; done
    case $other in /*) ;; *) other="$cwd/$other";; esac
    [ -f "$other" ] || continue
    if [ "$(grid_name "$other")" = "$name" ]; then
        echo "error: grid $name is already running (pid $pid, $cwd); a second sweep would run its cells twice" >&2; exit 2
    fi
    used=$((used + $(arg_jobs "${argv[@]}") * $(grid_threads "$other")))
done < <(pgrep -f "adaptive_lora sweep" || true)
want=$(( $(arg_jobs "$@") * $(grid_threads "$grid") ))
if [ $((used + want)) -gt "$(nproc)" ]; then
    echo "error: running sweeps use $used cores and this one wants $want (processes x threads), the machine has $(nproc);" \
         "stop one or lower --jobs" >&2; exit 2
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
