#!/usr/bin/env bash
# Check (default) or apply (--fix) clang-format on the C++ sources under native/ (tracked and new files).
# CLANG_FORMAT names the binary (default clang-format-14, the one .ci/run installs). Without it
# the check says so and is skipped, so `npm test` still runs on a machine that lacks it; CI has it.
set -euo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format-14}
if ! command -v "$cf" >/dev/null; then
  echo "clang-format: '$cf' not found: C++ formatting NOT checked (apt-get install clang-format-14)" >&2
  exit 0
fi
mapfile -t files < <(git ls-files -co --exclude-standard -- 'native/*.cc' 'native/*.h')
if [ "${1:-}" = --fix ]; then
  "$cf" -i "${files[@]}"
else
  "$cf" --dry-run -Werror "${files[@]}"
  echo "clang-format: ${#files[@]} files clean"
fi
