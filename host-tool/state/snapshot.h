/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A VM's snapshot directory: <dir>/snapshot.tmp-<pid>-XXXXXX while standby
 * writes it, <dir>/snapshot once complete and durable.
 */
#ifndef CHVM_STATE_SNAPSHOT_H
#define CHVM_STATE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Makes <dir>/snapshot.tmp-<our pid>-XXXXXX; out gets its path. */
int vm_snapshot_tmp (const char *dir, char *out, size_t len, struct err **err);

/* A complete snapshot in tmp becomes snap (which must not exist): every
   file and tmp fsynced, renamed, the parent fsynced. */
int vm_snapshot_commit (const char *tmp, const char *snap, struct err **err);

/* The bytes of the files in snapshot dir: *logical their sizes, *allocated
   what the filesystem holds for them (a sparse memory-ranges has holes). */
int vm_snapshot_size (const char *dir, uint64_t *logical, uint64_t *allocated, struct err **err);

/* Removes <dir>/snapshot.tmp-* left by interrupted standbys: those whose
   pid is not alive, and those without a pid (older chvm).  The caller holds
   the state lock.  *removed (may be NULL) gets how many. */
int vm_sweep_snapshot_tmp (const char *dir, unsigned *removed, struct err **err);

#endif
