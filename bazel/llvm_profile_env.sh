#!/bin/sh
# Test wrapper of the `coverage` config (.bazelrc: test:coverage --run_under=...).
# A test built with -fprofile-instr-generate writes default.profraw into its sandboxed working
# directory, which Bazel throws away. This points LLVM_PROFILE_FILE at the test's undeclared
# outputs instead, so the profiles survive in
# bazel-testlogs/<package>/<test>/test.outputs/outputs.zip for llvm-profdata / llvm-cov.
if [ -n "${TEST_UNDECLARED_OUTPUTS_DIR:-}" ]; then
  LLVM_PROFILE_FILE="$TEST_UNDECLARED_OUTPUTS_DIR/%p-%m.profraw"
  export LLVM_PROFILE_FILE
fi
exec "$@"
