/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The state store: $STATE/vms/<name>/vm.json for each VM and the global
 * $STATE/lock held by every mutating command.
 */
#ifndef CHVM_STATE_VMSTATE_H
#define CHVM_STATE_VMSTATE_H

#include <stddef.h>

#include "err.h"
#include "state/vmrec.h"

/* Resolves the state root (opt, else $CHVM_STATE_DIR, else /var/lib/chvm for
   root, else $XDG_STATE_HOME/chvm or ~/.local/state/chvm) and creates
   <root>/vms. */
int vmstate_root (const char *opt, char *out, size_t len, struct err **err);

/* Takes an exclusive flock on <root>/lock, waiting at most timeout_ms;
   returns the fd (closing it releases the lock). */
int vmstate_lock (const char *root, int timeout_ms, struct err **err);

int vmstate_dir (const char *root, const char *name, char *out, size_t len, struct err **err);

int vmrec_load (const char *root, const char *name, struct vm_record *r, struct err **err);
/* Atomic: tmp file in the same dir, fsync, rename. */
int vmrec_save (const char *root, const struct vm_record *r, struct err **err);

/* Sorted names of every VM directory; free each and the array. */
int vmstate_list (const char *root, char ***names, size_t *n, struct err **err);
void vmstate_list_free (char **names, size_t n);

/* The VMs whose vm.json uses a file under image_dir (an image cache entry)
   as root disk, or cannot be read: *n of them, their names joined by ", "
   into out (truncated with "..." when out is too small). */
int vmstate_image_users (const char *root, const char *image_dir, char *out, size_t len, size_t *n,
                         struct err **err);

#endif
