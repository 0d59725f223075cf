#!/bin/bash
# corpus/encode.sh — (re-)encode every corpus text file into the input the fuzzers run:
# corpus/<target>/{seeds,regressions}/NAME.txt -> NAME.bin. Programs go through fuzz/tools:encode,
# private_data, schedules and gpu inputs through fuzz/targets:private_data_text, :schedules_text and :gpu_text. Run after editing or adding a .txt;
# corpus_text_test fails while a .bin differs from its .txt.
#   corpus/encode.sh [FILE.txt...]     (default: every .txt under corpus/*/seeds and regressions)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
env -u CC -u CXX bazel build --color=no --noshow_progress //fuzz/tools:encode //fuzz/targets:private_data_text //fuzz/targets:schedules_text //fuzz/targets:gpu_text >&2
bin=$(env -u CC -u CXX bazel info bazel-bin 2>/dev/null)
shopt -s nullglob
files=("$@")
((${#files[@]})) || files=(corpus/*/seeds/*.txt corpus/*/regressions/*.txt)
for txt in "${files[@]}"; do
  out=${txt%.txt}.bin
  case $txt in
    *corpus/private_data/*) "$bin/fuzz/targets/private_data_text" encode "$txt" "$out" ;;
    *corpus/schedules/*) "$bin/fuzz/targets/schedules_text" encode "$txt" "$out" ;;
    *corpus/gpu/*) "$bin/fuzz/targets/gpu_text" encode "$txt" "$out" ;;
    *) "$bin/fuzz/tools/encode" "$txt" "$out" >/dev/null ;;
  esac
done
echo "encode.sh: ${#files[@]} files encoded" >&2
