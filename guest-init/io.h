/* SPDX-License-Identifier: Apache-2.0 */
/* Small file and time helpers shared by init's modules. */
#ifndef CHVM_INIT_IO_H
#define CHVM_INIT_IO_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"

/* Seconds since kernel start (CLOCK_BOOTTIME). */
double boot_seconds (void);

/* Logs "[T.TTTTTT] phase <name>" at the start of each boot phase. */
void phase (const char *name);

/* Reads at most max bytes of path; the result is NUL-terminated and *len
   (if not NULL) gets its length.  Returns NULL on error. */
char *read_file (const char *path, size_t max, size_t *len, struct err **err);

/* Creates or truncates path with mode and writes data; a symlink at path is
   replaced rather than followed (image /etc/resolv.conf often is one). */
int write_file (const char *path, const char *data, size_t len, mode_t mode, struct err **err);

/* mkdir -p with mode for each created component. */
int mkdir_p (const char *path, mode_t mode, struct err **err);

/* Copies the regular file src to dst (created with mode). */
int copy_file (const char *src, const char *dst, mode_t mode, struct err **err);

#endif
