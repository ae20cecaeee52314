/* SPDX-License-Identifier: Apache-2.0 */
/* Files on the host: mkdir -p, bounded reads, durable writes and renames,
   fsync of trees, removal of trees, flock with a timeout. */
#ifndef CHVM_SYS_FS_H
#define CHVM_SYS_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* mkdir -p with mode for each directory it makes. */
int fs_mkdir_p (const char *path, mode_t mode, struct err **err);

/* Reads path whole into *out (NUL-terminated, *len bytes); fails when it is
   larger than max bytes. */
int fs_read_small (const char *path, size_t max, char **out, size_t *len, struct err **err);

/* Writes len bytes to path atomically and durably: tmp + fsync + rename +
   fsync of the directory. */
int fs_write_atomic (const char *path, const void *data, size_t len, mode_t mode, struct err **err);

/* Test seam: when set, called with each path right after its fsync(2)
   succeeded (files, directories), in order. */
extern void (*fs_fsync_hook) (const char *path);

/* fsync(2) of a file or directory by path. */
int fs_fsync_path (const char *path, struct err **err);

/* rename(2), then fsync of the directory of to (and of from's when it
   differs), so that the new name survives a crash. */
int fs_rename_durable (const char *from, const char *to, struct err **err);

/* fsync of every regular file under dir, then of each directory after its
   contents, dir last. */
int fs_fsync_tree (const char *dir, struct err **err);

/* Removes a tree (ENOENT is success). */
int fs_rmtree (const char *path, struct err **err);

/* An exclusive flock(2) on fd, waiting at most timeout_ms for its holder:
   0, or -1 with errno (ETIMEDOUT when the wait ran out). */
int fs_flock_wait (int fd, int timeout_ms);

#endif
