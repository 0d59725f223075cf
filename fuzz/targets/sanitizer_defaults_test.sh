#!/usr/bin/env bash
# sanitizer_defaults_test.sh FUZZ_RAW... — every fuzz target binary starts with the ASan defaults
# of fuzz/common/sanitizer_defaults.c (a 10 MB quarantine), and ASAN_OPTIONS still overrides
# them. In a build without ASan (gcc, tsan) there is nothing to check: it says so and passes;
# `./lab test` runs it in the asan config too.
set -euo pipefail
input="${TEST_TMPDIR:-/tmp}/sanitizer_defaults_input"
head -c 56 /dev/zero >"$input"
quarantine() { # BINARY [ASAN_OPTIONS]: the quarantine size ASan reports, or "none" without ASan
  local out
  out=$(ASAN_OPTIONS="help=1${2:+:$2}" "$1" "$input" 2>&1 >/dev/null) || {
    echo "FAIL: $1 exited non-zero on a zero input:" >&2
    printf '%s\n' "$out" | tail -5 >&2
    exit 1
  }
  if ! grep -q 'Available flags for AddressSanitizer' <<<"$out"; then
    echo none
    return
  fi
  grep -A1 '^[[:space:]]*quarantine_size_mb$' <<<"$out" | sed -n 's/.*(Current Value: \(-\{0,1\}[0-9]*\)).*/\1/p'
}
for bin in "$@"; do
  got=$(quarantine "$bin")
  if [[ $got == none ]]; then
    echo "skip: $(basename "$bin") is built without AddressSanitizer"
    continue
  fi
  [[ $got == 10 ]] || { echo "FAIL: $(basename "$bin") starts with quarantine_size_mb=$got, want 10" >&2; exit 1; }
  got=$(quarantine "$bin" quarantine_size_mb=33)
  [[ $got == 33 ]] || { echo "FAIL: ASAN_OPTIONS=quarantine_size_mb=33 gave $got for $(basename "$bin")" >&2; exit 1; }
  echo "ok: $(basename "$bin"): quarantine 10 MB, ASAN_OPTIONS overrides it"
done
