#!/bin/bash
# nightly_e2e_test.sh — end to end: a nightly run over a scratch tree whose one fuzz target has a
# planted bug must find the crash, store it once under corpus/<target>/regressions/ with the
# metadata lines, and exit 1; a second run must count it as known, store nothing, and exit 0.
# The first run also prunes a grown working corpus with the real fuzzer (-merge=1); the second
# finds it under the limit.
#   nightly_e2e_test.sh NIGHTLY_PY PLANTED_FUZZER_C PRIVATE_DATA_TEXT
# The planted target (testdata/planted_fuzzer.c) is compiled here with clang 14 as
# hw/planted/planted.c, as a libFuzzer binary (ASan + UBSan) and as a coverage binary, and
# handed to nightly through ALLOCLAB_NIGHTLY_PREBUILT; it reads private_data's input format, so
# the real private_data_text gives the stored crash its text form. ALLOCLAB_NIGHTLY_ROOT points
# nightly at the scratch tree: the repository's corpus/ is never touched.
set -euo pipefail

nightly=$(realpath "$1")
planted=$(realpath "$2")
pdtext=$(realpath "$3")
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/nightly_e2e.XXXXXX")
export HOME=$tmp
fail() { echo "FAIL: $*" >&2; exit 1; }

# The planted target, compiled the way Bazel names sources (/proc/self/cwd/hw/...).
mkdir -p "$tmp/src/hw/planted" "$tmp/prebuilt/fuzz" "$tmp/prebuilt/coverage"
cp "$planted" "$tmp/src/hw/planted/planted.c"
(cd "$tmp/src" &&
  clang -g -O1 -fno-omit-frame-pointer -fdebug-prefix-map="$tmp/src"=/proc/self/cwd \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    hw/planted/planted.c -o "$tmp/prebuilt/fuzz/private_data_raw" &&
  clang -O0 -fcoverage-prefix-map="$tmp/src"=/proc/self/cwd -fprofile-instr-generate -fcoverage-mapping \
    -fsanitize=fuzzer hw/planted/planted.c -o "$tmp/prebuilt/coverage/private_data_raw")
ln -s "$pdtext" "$tmp/prebuilt/private_data_text"
ln -s /bin/false "$tmp/prebuilt/trace"   # program targets' tools: not used by this target
ln -s /bin/false "$tmp/prebuilt/encode"

# The scratch tree: one fuzz target, one seed, no regressions yet, a commit.
root=$tmp/root
mkdir -p "$root/fuzz/targets" "$root/corpus/private_data/seeds" "$root/corpus/private_data/regressions"
printf 'FUZZ_TARGETS = [\n    "private_data",\n]\n' >"$root/fuzz/targets/BUILD.bazel"
printf 'max_len = 64\n' | sed '1i [libfuzzer]' >"$root/fuzz/targets/private_data.options"
printf '# A plain buffer.\nkind = buffer\nwidth = 4096\nalignment = 4096\n' >"$root/corpus/private_data/seeds/buffer.txt"
"$pdtext" encode "$root/corpus/private_data/seeds/buffer.txt" "$root/corpus/private_data/seeds/buffer.bin"
git -C "$root" init -q
git -C "$root" add -A
git -C "$root" -c user.name=test -c user.email=test@example.com commit -qm scratch
commit=$(git -C "$root" rev-parse HEAD)

# A working corpus grown the way fork mode grows it: 1500 inputs of a few features (sizes 0-79,
# no planted priority), over prune.py's 1000-file limit: run 1 prunes it with the real fuzzer.
/usr/bin/python3 - "$root/.lab/fuzz/private_data/corpus" <<'PY'
import os, random, sys
random.seed(7)
os.makedirs(sys.argv[1])
for i in range(1500):
    data = bytes(random.randrange(256) for _ in range(random.randrange(80)))
    open(os.path.join(sys.argv[1], "grown-%04d" % i), "wb").write(data[:52] + b"\0" * 4 + data[56:])
PY

run_nightly() {
  local rc=0
  # timeout: a hang fails here, with nightly's output, instead of at Bazel's test timeout.
  ALLOCLAB_NIGHTLY_ROOT=$root ALLOCLAB_NIGHTLY_PREBUILT=$tmp/prebuilt \
    timeout 90 /usr/bin/python3 "$nightly" --budget 8s --jobs 1 --no-bench >"$tmp/run$1.log" 2>&1 || rc=$?
  echo "$rc"
}

# ---- Run 1: the planted crash is found, stored once, exit 1 ----
rc=$(run_nightly 1)
cat "$tmp/run1.log"
[[ $rc == 1 ]] || fail "first run: exit $rc, expected 1 (new crash)"
regressions=$root/corpus/private_data/regressions
shopt -s nullglob
bins=("$regressions"/*.bin)
txts=("$regressions"/*.txt)
((${#bins[@]} == 1 && ${#txts[@]} == 1)) || fail "first run: expected one stored crash, found: $(ls "$regressions")"
txt=${txts[0]}
bin=${bins[0]}
[[ ${txt%.txt} == "${bin%.bin}" ]] || fail "stored .bin and .txt have different names"
expected_sig='heap-buffer-overflow | planted_write_past_end | planted_parse | LLVMFuzzerTestOneInput'
head -5 "$txt" >"$tmp/meta"
printf '%s\n' "# bug: found by nightly, not yet diagnosed" "# target: private_data" "# signature: $expected_sig" \
  "# first-seen: ${commit:0:12} $(date -u +%Y-%m-%d)" "# reproduced: 3/3" >"$tmp/meta.expected"
diff -u "$tmp/meta.expected" "$tmp/meta" || fail "metadata lines of $txt"
"$pdtext" encode "$txt" "$tmp/reencoded.bin"
cmp -s "$bin" "$tmp/reencoded.bin" || fail "$bin is not the canonical encoding of $txt"
if setarch -R "$tmp/prebuilt/fuzz/private_data_raw" "$bin" >/dev/null 2>&1; then
  fail "the stored input does not crash"
fi
report=$root/.lab/nightly/latest
[[ -f $report/report.html && -f $report/summary.md && -f $report/summary.json ]] || fail "report files missing in $report"
/usr/bin/python3 - "$report/summary.json" <<'PY' || fail "summary.json of run 1"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["exit_status"] == 1, s["exit_status"]
assert s["crash_counts"].get("new") == 1, s["crash_counts"]
new = [c for c in s["crashes"] if c["status"] == "new"]
assert new[0]["stored"].startswith("corpus/private_data/regressions/nightly-"), new[0]["stored"]
assert s["coverage"]["status"] == "ok" and s["coverage"]["lines"]["count"] > 0, s["coverage"]
assert s["fuzz"][0]["execs"] > 0, s["fuzz"]
p = s["fuzz"][0]["prune"]
assert p["status"] == "pruned" and p["files_before"] == 1501 and 0 < p["files_after"] < 100, p
assert p["log"] == "logs/prune-private_data.log", p
PY
grep -q 'nightly: private_data: pruned 1501 -> ' "$tmp/run1.log" || fail "no prune progress line in run 1"
[[ -f $root/.lab/fuzz/private_data/prune.json ]] || fail "no prune.json after the prune"
leftover=$(find "$root/.lab/fuzz/private_data" -maxdepth 1 -name 'corpus.prune-*')
[[ -z $leftover ]] || fail "the prune left $leftover"
[[ -f $root/.lab/fuzz/private_data/corpus/seeds-buffer.bin ]] || fail "the seed is not back in the working corpus"
cp "$txt" "$tmp/stored.txt"
cp "$bin" "$tmp/stored.bin"

# ---- Run 2: the same crash is known: counted, not stored again, exit 0 ----
rc=$(run_nightly 2)
cat "$tmp/run2.log"
[[ $rc == 0 ]] || fail "second run: exit $rc, expected 0 (only a known crash)"
bins=("$regressions"/*.bin)
txts=("$regressions"/*.txt)
((${#bins[@]} == 1 && ${#txts[@]} == 1)) || fail "second run stored again: $(ls "$regressions")"
cmp -s "$tmp/stored.txt" "$txt" && cmp -s "$tmp/stored.bin" "$bin" || fail "second run changed the stored crash"
/usr/bin/python3 - "$root/.lab/nightly/latest/summary.json" <<'PY' || fail "summary.json of run 2"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["exit_status"] == 0, s["exit_status"]
assert "new" not in s["crash_counts"] and s["crash_counts"].get("known", 0) >= 1, s["crash_counts"]
assert s["fuzz"][0]["prune"]["status"] == "not needed", s["fuzz"][0]["prune"]
PY

# ---- Run 3: --update-corpus writes inputs that add coverage to seeds/ as canonical pairs, never
# a crashing one (the known crash is in the working corpus) ----
rc=0
ALLOCLAB_NIGHTLY_ROOT=$root ALLOCLAB_NIGHTLY_PREBUILT=$tmp/prebuilt \
  timeout 90 /usr/bin/python3 "$nightly" --budget 5s --jobs 1 --no-bench --update-corpus >"$tmp/run3.log" 2>&1 || rc=$?
cat "$tmp/run3.log"
[[ $rc == 0 ]] || fail "third run (--update-corpus): exit $rc, expected 0"
grep -q 'input(s) that add coverage written to corpus/private_data/seeds' "$tmp/run3.log" || fail "no --update-corpus line"
added=0
for seed in "$root"/corpus/private_data/seeds/nightly-*.bin; do
  added=$((added + 1))
  "$pdtext" encode "${seed%.bin}.txt" "$tmp/seed.bin"
  cmp -s "$seed" "$tmp/seed.bin" || fail "$seed is not the canonical encoding of its text"
  if ! setarch -R "$tmp/prebuilt/fuzz/private_data_raw" "$seed" >/dev/null 2>&1; then
    fail "--update-corpus wrote a crashing seed $seed"
  fi
done
echo "--update-corpus added $added seed(s)"
echo "PASS: planted crash found, stored once, then counted as known; the grown corpus pruned; --update-corpus seeds are canonical"
