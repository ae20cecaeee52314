/* SPDX-License-Identifier: Apache-2.0 */
/* Early mounts, the overlay root and the switch from the initramfs to it. */
#ifndef CHVM_INIT_MOUNT_H
#define CHVM_INIT_MOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

#define NEWROOT "/newroot"
#define RUN_CHVM "/run/chvm"

/* Mounts /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /run, /tmp and
   cgroup2.  Idempotent: an already mounted target is kept. */
int mnt_early (struct err **err);

/* Mounts the root disk read-only at /run/chvm/lower (ext4, else erofs;
   with dax, a pmem device, with DAX where the kernel can, else without it,
   saying so in one console line), the upper layer (size-limited tmpfs, or
   upper_dev when not NULL) and the overlay on NEWROOT. */
int mnt_overlay_root (const char *root_dev, bool dax, const char *upper_dev, uint64_t tmpfs_size,
                      struct err **err);

/* Moves the API filesystems under NEWROOT, frees the initramfs by deleting
   its files, and makes NEWROOT the root (MS_MOVE + chroot). */
int mnt_switch_root (struct err **err);

/* Thaws the writable filesystems init mounted (the upper layer, and the
   root), repeating FITHAW until it fails since freezes nest, so that a
   freeze the agent holds (Quiesce) cannot outlive it or block the
   shutdown.  Logs how many thaws worked, if any. */
void mnt_thaw (void);

/* Best-effort teardown before poweroff: unmounts what it can, deepest
   first, and remounts / read-only. */
void mnt_teardown (void);

#endif
