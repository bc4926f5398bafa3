#!/usr/bin/env bash
# The YSB-like example job (plugins/examples/ysb.cc) through `weir local`, once without and once
# with checkpoints every second, back to back in this script; prints events/s of both and their
# ratio. Run through `bench/run.sh ysb-checkpoint [...]`, which builds weir and the ysb plugin.
#
#   ysb_checkpoint.sh [--events N] [--rocksdb-events M] [--backend heap|rocksdb|both]
#                     [--interval DURATION] [--runs R]
#
# heap runs use N events (default 4e8), rocksdb runs (--arg state.backend=rocksdb) M (default
# 6e6). The checkpointed run adds `--checkpoint-dir DIR --arg
# execution.checkpointing.interval=1s`. Wall time of the whole `weir local` command (plugin
# load, start-up and shut-down included). Both runs' printed window counts are compared and the
# script fails if they differ. A run shorter than 10 s is flagged. With --runs R the pair runs R
# times, alternating, and the best time of each side counts.
#
# Environment: BUILD_DIR (default <repo>/build-bench).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
WEIR="$BUILD_DIR/bin/weir"
PLUGIN="$BUILD_DIR/plugins/ysb.so"

heap_events=400000000
rocksdb_events=6000000
backend=both
interval=1s
runs=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --events) heap_events="$(printf '%.0f' "$2")"; shift 2 ;;
    --rocksdb-events) rocksdb_events="$(printf '%.0f' "$2")"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --help) sed -n 2,15p "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "ysb_checkpoint.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x "$WEIR" && -f "$PLUGIN" ]] || { echo "missing $WEIR or $PLUGIN (build first)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/weir-ysb-checkpoint-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Runs `weir local` with the given extra arguments; sets $seconds. Output lines go to $1.
run_job() {
  local out="$1"
  shift
  local start end
  start=$(date +%s%N)
  local rc=0
  "$WEIR" local "$PLUGIN" "$@" >"$out" 2>"$out.err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "weir local $* failed (exit $rc):" >&2
    cat "$out.err" >&2
    exit 1
  fi
  end=$(date +%s%N)
  seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
}

printf '%-8s %-22s %12s %10s %16s %7s\n' backend run events seconds events/s ratio
run_backend() {
  local name="$1" events="$2"
  local args=(--arg "events=$events" --arg "state.backend=$name")
  local ckdir="$work/$name-checkpoints"
  local plain="" ckpt="" plain_all="" ckpt_all=""
  for ((r = 1; r <= runs; r++)); do
    run_job "$work/$name-plain.out" "${args[@]}"
    plain_all+=" $seconds"
    if [[ -z "$plain" ]] || awk -v a="$seconds" -v b="$plain" 'BEGIN { exit !(a < b) }'; then
      plain=$seconds
    fi
    rm -rf "$ckdir"
    run_job "$work/$name-ckpt.out" "${args[@]}" --checkpoint-dir "$ckdir" \
      --arg "execution.checkpointing.interval=$interval"
    ckpt_all+=" $seconds"
    if [[ -z "$ckpt" ]] || awk -v a="$seconds" -v b="$ckpt" 'BEGIN { exit !(a < b) }'; then
      ckpt=$seconds
    fi
    if ! cmp -s <(sort "$work/$name-plain.out") <(sort "$work/$name-ckpt.out"); then
      echo "$name: the window counts differ between the plain and the checkpointed run" >&2
      exit 1
    fi
  done
  local lines
  lines=$(wc -l <"$work/$name-plain.out")
  # The coordinator logs "completed checkpoint N of attempt A in X ms (...)" at info level.
  local completed
  completed=$(grep -c 'completed checkpoint' "$work/$name-ckpt.out.err" || true)
  local durations
  durations=$(grep -o 'completed checkpoint [0-9]* of attempt [0-9]* in [0-9]* ms' \
    "$work/$name-ckpt.out.err" | awk '{ s += $(NF-1); if ($(NF-1) > m) m = $(NF-1) }
      END { if (NR) printf "mean %.0f ms, max %d ms", s / NR, m }')
  awk -v n="$name" -v e="$events" -v p="$plain" -v c="$ckpt" -v i="$interval" 'BEGIN {
    printf "%-8s %-22s %12d %9.2fs %14.2f M %7s\n", n, "no checkpoints", e, p, e / p / 1e6, ""
    printf "%-8s %-22s %12d %9.2fs %14.2f M %7.3f\n", n, "checkpoints every " i, e, c,
      e / c / 1e6, p / c
  }'
  echo "         $lines window lines, identical in both runs; $completed checkpoints completed" \
    "in the last checkpointed run (${durations:-none})"
  if [[ $runs -gt 1 ]]; then
    echo "         best of $runs (alternating); all runs, plain:$plain_all s;" \
      "checkpoints:$ckpt_all s"
  fi
  for s in "$plain" "$ckpt"; do
    awk -v s="$s" 'BEGIN { if (s < 10) print "         note: a run took " s " s, under 10 s" }'
  done
}

case "$backend" in
  heap) run_backend heap "$heap_events" ;;
  rocksdb) run_backend rocksdb "$rocksdb_events" ;;
  both) run_backend heap "$heap_events"; run_backend rocksdb "$rocksdb_events" ;;
  *) echo "--backend must be heap, rocksdb or both" >&2; exit 2 ;;
esac
