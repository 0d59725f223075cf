#!/bin/bash
# fuzz_run.sh — what `bazel run //pkg:<name>_run -- [libFuzzer flags]` runs (bazel/fuzz.bzl).
#
#   fuzz_run.sh RAW NAME DICT|- OPTIONS|- CORPUS_FILE... -- [USER ARGS...]
#
# Copies the corpus into a writable directory ($ALLOCLAB_FUZZ_DIR, default
# ${TMPDIR:-/tmp}/alloclab_fuzz/NAME; new inputs found by libFuzzer accumulate there across
# runs), then runs RAW with: the options file's [libfuzzer] `key = value` lines as -key=value,
# -dict=DICT, -artifact_prefix=<dir>/artifacts/, the user's arguments (last, so they win), and
# the corpus directory. In a build without libFuzzer RAW is the replay driver: it replays the
# corpus and ignores the flags.
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "fuzz_run: usage: $0 RAW NAME DICT|- OPTIONS|- CORPUS... -- [ARGS...]" >&2
  exit 2
fi
abs() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
raw=$(abs "$1")
name=$2
dict=$3
options=$4
shift 4
seeds=()
while [[ $# -gt 0 && $1 != "--" ]]; do
  seeds+=("$(abs "$1")")
  shift
done
[[ $# -gt 0 ]] && shift # the "--"

flags=()
if [[ $options != "-" ]]; then
  options=$(abs "$options")
  section=""
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%%#*}
    line=$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
    [[ -z $line ]] && continue
    if [[ $line =~ ^\[(.*)\]$ ]]; then
      section=${BASH_REMATCH[1]}
      continue
    fi
    if [[ $section == libfuzzer && $line =~ ^([A-Za-z_0-9]+)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
      flags+=("-${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
    fi
  done <"$options"
fi
if [[ $dict != "-" ]]; then
  flags+=("-dict=$(abs "$dict")")
fi

dir=${ALLOCLAB_FUZZ_DIR:-${TMPDIR:-/tmp}/alloclab_fuzz/$name}
mkdir -p "$dir/corpus" "$dir/artifacts"
dir=$(cd "$dir" && pwd)
for s in "${seeds[@]}"; do
  dest="$dir/corpus/seed-$(basename "$s")"
  cp -L "$s" "$dest.tmp" && chmod u+w "$dest.tmp" && mv -f "$dest.tmp" "$dest"
done
flags+=("-artifact_prefix=$dir/artifacts/")

echo "fuzz_run: $name: corpus $dir/corpus (${#seeds[@]} seeds), artifacts $dir/artifacts" >&2
if [[ -n ${BUILD_WORKING_DIRECTORY:-} ]]; then
  cd "$BUILD_WORKING_DIRECTORY"
fi
exec "$raw" "${flags[@]}" "$@" "$dir/corpus"
