#!/bin/bash
# emit_c_build_command.sh — prints the command that builds a program written by emit_c as a
# standalone binary with plain clang and the fuzz config's sanitizers (ASan + UBSan), and runs it:
#   emit_c_build_command.sh ROOT SOURCES PROGRAM.c OUT_BIN
# ROOT: the source tree; SOURCES: //fuzz/tools:emit_c_sources (a bazel query of the port's, the
# sim miniport's, the simulated GPU's and the fault injector's source files, one label a line:
# what Bazel compiles for them, so no test-only file is ever listed). Its .c files are compiled;
# the include folders are the public ones of those packages. ./lab repro --emit-c prints and
# runs this command; emit_c_standalone_test runs it on a generated program.
# Exit 2 (with a message) when SOURCES cannot be read or lists no .c file.
set -euo pipefail
(($# == 4)) || { echo "usage: emit_c_build_command.sh ROOT SOURCES PROGRAM.c OUT_BIN" >&2; exit 2; }
root=$1 sources=$2 program=$3 out=$4
[[ -r $sources ]] || { echo "emit_c_build_command: cannot read the source list '$sources'" >&2; exit 2; }
srcs=()
while IFS= read -r label; do
  # //core:src/adapter.c -> core/src/adapter.c
  path=${label#//}
  path=${path/://}
  [[ $path == *.c ]] && srcs+=("$root/$path")
done < <(sort "$sources")
((${#srcs[@]})) || { echo "emit_c_build_command: '$sources' lists no .c file" >&2; exit 2; }
cmd="clang -std=c17 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined"
cmd+=" -fno-sanitize-recover=all"
for dir in core/include hw/include hw/sim/include hw/gpu/include hw/fault/include; do
  cmd+=" -I$root/$dir"
done
cmd+=" $program ${srcs[*]} -lpthread -o $out && setarch -R $out"
printf '%s\n' "$cmd"
