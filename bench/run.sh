#!/usr/bin/env bash
# Builds weir_bench in Release (in build-bench/ next to the sources) and runs it.
#
#   bench/run.sh                      default record counts, best of 3 runs
#   bench/run.sh 100000000            N records for both the chain and the hash-exchange benchmark
#   bench/run.sh -- --chain-records 3e8 --hash-records 5e7 --runs 5    any weir_bench arguments
#   bench/run.sh cluster [--records N] [--runs R]   the shuffle between two TaskManager processes
#                                                    next to a raw TCP pump (weir_cluster_bench)
#   bench/run.sh ysb [--events N] [--runs R] [--backend heap|rocksdb|both]
#                                                    the YSB-like job on one thread next to a
#                                                    hash-map loop (weir_ysb_bench)
#   bench/run.sh checkpoint [--size-mb M]... [--change-percent P]
#                                                    RocksDB state checkpoints (full, incremental)
#                                                    and restore next to plain copies
#                                                    (weir_checkpoint_bench; default 100 MB)
#   bench/run.sh heap-snapshot [--keys N]... [--payload-bytes B] [--runs R]
#                                                    heap keyed state checkpoints: the
#                                                    copy-on-write freeze next to serialising every
#                                                    key group on the task thread
#                                                    (weir_heap_snapshot_bench)
#   bench/run.sh ysb-checkpoint [--events N] [--rocksdb-events M] [--backend B] [--runs R]
#                                                    the ysb example through `weir local` without
#                                                    and with checkpoints every 1 s
#                                                    (bench/ysb_checkpoint.sh)
#   bench/run.sh backpressure [--sleep-us U] [--checkpoints N]
#                                                    checkpoints through a back-pressured
#                                                    pipeline next to the same one without
#                                                    (weir_backpressure_bench)
#   bench/run.sh sources [--records N] [--runs R]
#                                                    a rescaled generator (several strides) next
#                                                    to a fresh one (weir_source_bench)
#   bench/run.sh recovery [--runs R] [--backend heap|rocksdb] [-D key=value]...
#                                                    time to recover from kill -9 of a TaskManager
#                                                    (weir_recovery_bench)
#
# Environment: JOBS (build parallelism, default 2), BUILD_DIR (default <repo>/build-bench).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
JOBS="${JOBS:-2}"

target=weir_bench
args=()
if [[ $# -gt 0 && "$1" == "cluster" ]]; then
  shift
  target=weir_cluster_bench
  args=("$@")
elif [[ $# -gt 0 && "$1" == "ysb" ]]; then
  shift
  target=weir_ysb_bench
  args=("$@")
elif [[ $# -gt 0 && "$1" == "checkpoint" ]]; then
  shift
  target=weir_checkpoint_bench
  args=("$@")
elif [[ $# -gt 0 && "$1" == "heap-snapshot" ]]; then
  shift
  target=weir_heap_snapshot_bench
  args=("$@")
elif [[ $# -gt 0 && "$1" == "backpressure" ]]; then
  shift
  target=weir_backpressure_bench
  args=("$@")
elif [[ $# -gt 0 && "$1" == "sources" ]]; then
  shift
  target=weir_source_bench
  args=("$@")
elif [[ $# -gt 0 && "$1" == "recovery" ]]; then
  shift
  target=weir_recovery_bench
  args=("$@")
elif [[ $# -gt 0 && "$1" == "ysb-checkpoint" ]]; then
  shift
  target=ysb-checkpoint
  args=("$@")
elif [[ $# -gt 0 && "$1" == "--" ]]; then
  shift
  args=("$@")
elif [[ $# -eq 1 && "$1" =~ ^[0-9.eE+]+$ ]]; then
  args=(--records "$1")
elif [[ $# -gt 0 ]]; then
  args=("$@")
fi

cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEIR_BUILD_TESTS=OFF \
  -DWEIR_BUILD_BENCH=ON >/dev/null
if [[ "$target" == "ysb-checkpoint" ]]; then
  cmake --build "$BUILD_DIR" --target weir ysb -j "$JOBS"
else
  cmake --build "$BUILD_DIR" --target "$target" -j "$JOBS"
fi

echo
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
if [[ "$target" == "ysb-checkpoint" ]]; then
  BUILD_DIR="$BUILD_DIR" exec "$ROOT/bench/ysb_checkpoint.sh" "${args[@]+"${args[@]}"}"
fi
exec "$BUILD_DIR/bin/$target" "${args[@]+"${args[@]}"}"
