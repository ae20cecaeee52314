/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The container's root filesystem as chvm's read-only root disk.
 * containerd hands it as mounts from its snapshotter: overlayfs gives one
 * `overlay` mount (lowerdir=TOP:...:BOTTOM, the image's layers, plus the
 * container's empty upperdir), or a `bind` of the only layer.  The layers
 * are merged by a read-only overlay mount and made into an ext4 cache entry
 * of chvm's image cache keyed by the layer chain (each lower directory's
 * path, device, inode and ctime), so a second container of the same image
 * makes nothing.  The container's upperdir is not used: the VM writes to
 * its own overlay (tmpfs or disk).
 */
#ifndef CHVM_SHIM_ROOTFS_H
#define CHVM_SHIM_ROOTFS_H

#include <stddef.h>

#include "err.h"
#include "github.com/containerd/containerd/api/types/mount.pb-c.h"
#include "image/image.h"

#define ROOTFS_LAYERS_MAX 128

/* The lower directories of mounts, top first (pure: no I/O).  No mounts is
   no layers (the bundle's rootfs/ is then the tree). */
int rootfs_layers (Containerd__Types__Mount *const *mounts, size_t n, char ***dirs, size_t *n_dirs,
                   struct err **err);
void rootfs_layers_free (char **dirs, size_t n);

/* The cached root disk of mounts (building it on a miss, in bundle), with
   the image's own exec fields empty; *built tells it was made now. */
int rootfs_prepare (const char *state_root, const char *bundle,
                    Containerd__Types__Mount *const *mounts, size_t n, struct image **out,
                    bool *built, struct err **err);

#endif
