#!/usr/bin/env bash
# npm run fuzz: build the libFuzzer targets (native/fuzz/Makefile, clang-14) and run each for
# FUZZ_SECONDS (default 600), nice'd, starting from the corpus kept in the repo
# (native/fuzz/corpus/<target>). New inputs go to build-fuzz/corpus/<target>, crashes (and
# timeouts, OOMs) to build-fuzz/crashes/<target>/, each run's output to build-fuzz/logs/.
# Ends with one line `fuzz: N execs, N crashes` and exits non-zero on any crash.
#
#   FUZZ_SECONDS=30 npm run fuzz             every target, 30 s each
#   FUZZ_TARGETS="fuzz_device" npm run fuzz  a subset
#   bash native/fuzz/run.sh merge            minimise: seeds + build-fuzz/corpus + the kept
#                                            corpus -> native/fuzz/corpus/<target> (-merge=1)
#   bash native/fuzz/run.sh coverage         llvm-cov line coverage of native/core from the corpora
#   build-fuzz/<target> <crash file>         replay one input (VHC_FUZZ_TRACE=1 shows the ops)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=$ROOT/build-fuzz
SECONDS_PER_TARGET=${FUZZ_SECONDS:-600}
TARGETS=${FUZZ_TARGETS:-fuzz_vhost_user fuzz_device fuzz_virtqueue}

if ! command -v clang++-14 >/dev/null; then
  echo "fuzz: clang++-14 not found (Debian: apt-get install clang-14 libclang-rt-14-dev llvm-14)" >&2
  echo "fuzz: 0 execs, 1 crashes"
  exit 1
fi
mkdir -p "$OUT/logs"
if ! nice -n 19 make -s -C native/fuzz -j"$(nproc)" all >"$OUT/logs/build.log" 2>&1; then
  cat "$OUT/logs/build.log" >&2
  echo "fuzz: build failed" >&2
  echo "fuzz: 0 execs, 1 crashes"
  exit 1
fi

if [ "${1:-}" = merge ]; then
  nice -n 19 make -s -C native/fuzz seeds >/dev/null || exit 1
  for t in $TARGETS; do
    mkdir -p "$OUT/corpus/$t" native/fuzz/corpus/$t
    rm -rf "$OUT/merged/$t" && mkdir -p "$OUT/merged/$t"
    nice -n 19 "$OUT/$t" -merge=1 -timeout=10 -rss_limit_mb=2048 "$OUT/merged/$t" \
      native/fuzz/corpus/$t "$OUT/seeds/$t" "$OUT/corpus/$t" >"$OUT/logs/$t.merge.log" 2>&1 || {
      tail -20 "$OUT/logs/$t.merge.log"; exit 1; }
    rm -rf native/fuzz/corpus/$t && mv "$OUT/merged/$t" native/fuzz/corpus/$t
    echo "$t: $(ls native/fuzz/corpus/$t | wc -l) inputs, $(cat native/fuzz/corpus/$t/* | wc -c) bytes"
  done
  exit 0
fi

if [ "${1:-}" = coverage ]; then
  # Line coverage of native/core from the corpora (the kept one and build-fuzz/corpus).
  nice -n 19 make -s -C native/fuzz -j"$(nproc)" cov >"$OUT/logs/build-cov.log" 2>&1 || { cat "$OUT/logs/build-cov.log"; exit 1; }
  rm -rf "$OUT/cov/profiles" && mkdir -p "$OUT/cov/profiles"
  for t in $TARGETS; do
    mkdir -p "$OUT/corpus/$t"
    LLVM_PROFILE_FILE="$OUT/cov/profiles/$t.profraw" nice -n 19 "$OUT/cov/$t" -runs=0 -timeout=10 \
      native/fuzz/corpus/$t "$OUT/corpus/$t" >"$OUT/logs/$t.cov.log" 2>&1
  done
  llvm-profdata-14 merge -sparse "$OUT"/cov/profiles/*.profraw -o "$OUT/cov/all.profdata"
  objs=()
  for t in $TARGETS; do objs+=(-object "$OUT/cov/$t"); done
  llvm-cov-14 report "${objs[@]:1}" -instr-profile="$OUT/cov/all.profdata" native/core/*.cc
  exit 0
fi

total=0 crashes=0
for t in $TARGETS; do
  mkdir -p "$OUT/corpus/$t" "$OUT/crashes/$t"
  before=$(ls "$OUT/crashes/$t" | wc -l)
  log=$OUT/logs/$t.log
  # -timeout: one input may not run 10 s (a loop the guest or front-end can cause);
  # -rss_limit_mb: nor grow the process beyond 2 GiB.
  nice -n 19 "$OUT/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t/" "$OUT/corpus/$t" native/fuzz/corpus/$t >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
  found=$(( $(ls "$OUT/crashes/$t" | wc -l) - before ))
  if [ "$rc" -ne 0 ] && [ "$found" -eq 0 ]; then found=1; fi
  total=$(( total + ${execs:-0} ))
  crashes=$(( crashes + found ))
  echo "$t: ${execs:-0} execs, $found crashes, ${cov:-no coverage line} (log: ${log#$ROOT/})"
  if [ "$found" -gt 0 ]; then
    grep -E 'VIOLATION|ERROR: |SUMMARY' "$log" | head -5 | sed 's/^/  /'
    echo "  inputs: build-fuzz/crashes/$t/ (replay: build-fuzz/$t FILE)"
  fi
done
echo "fuzz: $total execs, $crashes crashes"
[ "$crashes" -eq 0 ]
