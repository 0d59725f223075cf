#!/bin/bash
# corpus_text_test.sh — every corpus input is exactly the encoding of its text form, so the
# .txt (what people read and edit) and the .bin (what the fuzzers run) never drift apart.
#   corpus_text_test.sh ENCODE PRIVATE_DATA_TEXT SCHEDULES_TEXT GPU_TEXT
# For each corpus/<target>/{seeds,regressions}/NAME.bin there must be NAME.txt, and NAME.bin
# must equal `encode NAME.txt` (fuzz/tools:encode; for private_data, schedules and gpu, fuzz/targets:private_data_text / schedules_text / gpu_text
# encode). A seed NAME.txt needs its NAME.bin too. Every target folder needs at least one seed.
# Fix a drift with corpus/encode.sh (re-encodes every .txt).
set -uo pipefail

encode=$1
pdtext=$2
schedtext=$3
gputext=$4
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
checked=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

shopt -s nullglob
targets=0
for target_dir in corpus/*/; do
  target=$(basename "$target_dir")
  [[ -d $target_dir/seeds ]] || continue
  targets=$((targets + 1))
  seeds=("$target_dir"seeds/*.bin)
  ((${#seeds[@]} > 0)) || fail "$target: no seed in ${target_dir}seeds/"
  for dir in "${target_dir}seeds" "${target_dir}regressions"; do
    [[ -d $dir ]] || continue
    for bin in "$dir"/*.bin; do
      txt=${bin%.bin}.txt
      if [[ ! -f $txt ]]; then
        fail "$bin has no text form $txt"
        continue
      fi
      if [[ $target == private_data ]]; then
        "$pdtext" encode "$txt" "$tmp/out.bin" 2>"$tmp/err"
      elif [[ $target == schedules ]]; then
        "$schedtext" encode "$txt" "$tmp/out.bin" 2>"$tmp/err"
      elif [[ $target == gpu ]]; then
        "$gputext" encode "$txt" "$tmp/out.bin" 2>"$tmp/err"
      else
        "$encode" "$txt" "$tmp/out.bin" >/dev/null 2>"$tmp/err"
      fi || {
        fail "$txt does not encode: $(cat "$tmp/err")"
        continue
      }
      if ! cmp -s "$bin" "$tmp/out.bin"; then
        fail "$bin is not the encoding of $txt (re-encode with corpus/encode.sh)"
      fi
      checked=$((checked + 1))
    done
    if [[ $dir == *seeds ]]; then
      for txt in "$dir"/*.txt; do
        [[ -f ${txt%.txt}.bin ]] || fail "$txt has no encoding ${txt%.txt}.bin (run corpus/encode.sh)"
      done
    fi
  done
done
((targets > 0)) || fail "no corpus/<target>/seeds folder found (run from the workspace root)"

if ((failures > 0)); then
  echo "$failures failures ($checked inputs checked)" >&2
  exit 1
fi
echo "PASS: $checked inputs of $targets targets match their text form"
