/*
 * read_file.h — reading a whole file for the fuzz tools, with a message on failure.
 */
#ifndef ALLOCLAB_FUZZ_TOOLS_READ_FILE_H
#define ALLOCLAB_FUZZ_TOOLS_READ_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads @path into a malloc'ed buffer (NUL-terminated, not counted in *size). On failure
 * prints "TOOL: cannot read 'PATH': REASON" to stderr and returns false. */
bool fz_read_file(const char *tool, const char *path, uint8_t **data, size_t *size);

#endif /* ALLOCLAB_FUZZ_TOOLS_READ_FILE_H */
