/* SPDX-License-Identifier: Apache-2.0 */
/* Files on the host: mkdir -p, bounded reads, durable writes and renames,
   fsync of trees, removal of trees, flock with a timeout. */
#ifndef CHVM_SYS_FS_H
#define CHVM_SYS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* mkdir -p with mode for each directory it makes. */
int fs_mkdir_p (const char *path, mode_t mode, struct err **err);

/* Reads path whole into *out (NUL-terminated, *len bytes); fails when it is
   larger than max bytes. */
int fs_read_small (const char *path, size_t max, char **out, size_t *len, struct err **err);

/* fs_read_small of a regular file only, opened as fs_open_read does (no
   symlink followed, no FIFO waited on): for a name in a directory another
   uid writes (a VMM's snapshot). */
int fs_read_small_regular (const char *path, size_t max, char **out, size_t *len, struct err **err);

/* Writes len bytes to path atomically and durably: tmp + fsync + rename +
   fsync of the directory. */
int fs_write_atomic (const char *path, const void *data, size_t len, mode_t mode, struct err **err);

/* Test seam: when set, called with each path right after its fsync(2)
   succeeded (files, directories), in order. */
extern void (*fs_fsync_hook) (const char *path);

/* rename(2), then fsync of the directory of to (and of from's when it
   differs), so that the new name survives a crash. */
int fs_rename_durable (const char *from, const char *to, struct err **err);

/* fsync of every regular file under dir, then of each directory after its
   contents, dir last.  Nothing is followed and only regular files and
   directories are opened: safe on a tree another uid writes. */
int fs_fsync_tree (const char *dir, struct err **err);

/* Removes a tree (ENOENT is success), by names relative to directories
   opened without following links: safe on a tree another uid writes. */
int fs_rmtree (const char *path, struct err **err);

/* Opens path, in a directory another uid may write, for appending as the
   caller (the console log): never through a symlink, never a FIFO,
   device, hard-linked or foreign file, whose name is removed and a new
   file made instead.  truncate empties it.  Returns the fd. */
int fs_open_log (const char *path, bool truncate, struct err **err);

/* Opens path for reading only when it is a regular file, without
   following a symlink or waiting on a FIFO; -1 with errno otherwise. */
int fs_open_read (const char *path);

/* chown (and chmod when mode >= 0) of path without following a symlink,
   and only of a directory or a regular file with one link: what another
   uid put under that name is refused, not changed.  A missing path is
   fine unless must. */
int fs_give (const char *path, uid_t uid, gid_t gid, int mode, bool must, struct err **err);

/* Copies the regular file src into dst (made with mode; it must not
   exist), keeping its holes, and fsyncs dst; removes it on failure. */
int fs_copy_file (const char *src, const char *dst, mode_t mode, struct err **err);

/* An exclusive flock(2) on fd, waiting at most timeout_ms for its holder:
   0, or -1 with errno (ETIMEDOUT when the wait ran out). */
int fs_flock_wait (int fd, int timeout_ms);

#endif
