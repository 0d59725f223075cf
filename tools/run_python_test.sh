#!/bin/sh
# Runs a Python test file with Debian's Python (the tools' interpreter, not a pyenv shim).
exec /usr/bin/python3 "$@"
