/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict unsigned decimal parsing, shared by the config, passwd, CLI and
 * HTTP parsers.  strtoul() is too lenient for them: it skips leading
 * blanks, takes a sign (and negates "-1" into ULONG_MAX) and needs a NUL.
 * Here the whole span must be ASCII digits: no blanks, no sign, no empty
 * string, and a value above max (2^64 included) is an error, not clamped.
 * Leading zeros are accepted ("007" is 7); a format that wants canonical
 * numbers checks for them itself.
 */
#ifndef CHVM_NUM_H
#define CHVM_NUM_H

#include <stddef.h>
#include <stdint.h>

/* Parses the len bytes at s (not NUL-terminated; nothing past s + len is
   read).  Returns 0 and sets *out, or -1 leaving *out untouched. */
int num_parse_u64 (const char *s, size_t len, uint64_t max, uint64_t *out);

/* The same for a whole NUL-terminated string. */
int num_parse_u64_str (const char *s, uint64_t max, uint64_t *out);

#endif
