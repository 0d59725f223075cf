#!/bin/bash
# repro_target.sh — which fuzz target an input is for (./lab repro's detection, testable alone).
#   repro_target.sh TARGETS_BUILD FILE [TARGET]
# TARGETS_BUILD: fuzz/targets/BUILD.bazel (its FUZZ_TARGETS list names the targets). The order:
# TARGET (--target) if given; else a '# target: T' line in FILE or in its sibling .txt (the
# nightly job's metadata); else a path through corpus/T/ or .lab/fuzz/T/.
# Prints "T<TAB>KIND<TAB>where it came from" and exits 0; exits 2 with a message naming the
# targets when FILE is missing, no rule applies, or the target found is not one of them.
# KIND, from the target's sources next to TARGETS_BUILD, says how ./lab repro shows an input:
#   program         a program (fuzz/tools:trace --run); the target drops fault requests
#   program-faults  a program with its fault requests armed
#   private_data    SIM_ALLOCATION_DATA bytes (private_data_text trace)
#   own-text        an input format of the target's own, with a text tool T_text.c (T_text
#                   trace), e.g. schedules: a schedule of logical threads, then a program
#   other           no text form: only replayed
set -uo pipefail
(($# == 2 || $# == 3)) || { echo "usage: repro_target.sh TARGETS_BUILD FILE [TARGET]" >&2; exit 2; }
build=$1 file=$2 target=${3:-}
sources=$(dirname -- "$build")
kind_of() {
  local src="$sources/$1.c"
  if [[ $1 == private_data ]]; then echo private_data
  elif grep -q 'FZT_FAULTS_REQUIRED' "$src" 2>/dev/null; then echo program-faults
  elif grep -q 'fzt_run_program_input' "$src" 2>/dev/null; then echo program
  elif [[ -f $sources/$1_text.c ]]; then echo own-text
  else echo other
  fi
}
mapfile -t targets < <(sed -n '/^FUZZ_TARGETS = \[/,/^\]/s/^ *"\([A-Za-z0-9_]*\)",* *$/\1/p' "$build" 2>/dev/null)
((${#targets[@]})) || { echo "no targets found in $build (FUZZ_TARGETS)" >&2; exit 2; }
[[ -f $file ]] || { echo "'$file' does not exist or is not a regular file" >&2; exit 2; }
abs=$(cd "$(dirname -- "$file")" && pwd)/$(basename -- "$file")

from=''
if [[ -n $target ]]; then
  from='--target'
else
  for meta in "$abs" "${abs%.*}.txt"; do
    [[ -f $meta ]] || continue
    line=$(grep -a -m1 -E '^# target:' "$meta" 2>/dev/null || true)
    [[ -n $line ]] || continue
    target=$(sed -E 's/^# target:[[:space:]]*//; s/[[:space:]]*$//' <<<"$line")
    from="the '# target:' line of $meta"
    break
  done
fi
if [[ -z $target ]]; then
  for t in "${targets[@]}"; do
    if [[ $abs == */corpus/$t/* || $abs == */.lab/fuzz/$t/* ]]; then
      target=$t from='the path'
      break
    fi
  done
fi
if [[ -z $target ]]; then
  echo "cannot tell which target '$file' is for: give --target T (one of: ${targets[*]}), or add a '# target: T' line to ${file%.*}.txt" >&2
  exit 2
fi
for t in "${targets[@]}"; do
  if [[ $t == "$target" ]]; then
    printf '%s\t%s\t%s\n' "$target" "$(kind_of "$target")" "$from"
    exit 0
  fi
done
echo "unknown target '$target' (from $from); the targets are: ${targets[*]}" >&2
exit 2
