/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Names the shim derives, the same in the daemon and in `delete` (which
 * has only the bundle and the flags): the VM's name, the ids of cache
 * entries, the socket's name.  No I/O.
 */
#ifndef CHVM_SHIM_NAMES_H
#define CHVM_SHIM_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The longest name of a clone (`chvm run --from`): its network namespace,
   "chvm-NAME", has at most 63 characters. */
#define NAMES_CLONE_MAX 58

/* 64 hex digits of a hash of n NUL-separated parts (four FNV-1a 64 lanes
   with different offsets): a key for local inputs (paths, ids), not a
   defence against collisions someone crafts. */
void names_hash_hex (const char *const parts[], size_t n, char out[65]);

/* The VM of container id in namespace ns: "ctr-NS-ID" when that is a valid
   chvm name shorter than len, else "ctr-" and 16 hex digits of their
   hash. */
int names_vm (const char *ns, const char *id, char *out, size_t len, struct err **err);

/* The socket of the shim serving id (a pod's: its sandbox's id) for the
   containerd at address (absolute) in namespace ns: beside containerd's
   socket, as containerd's own shims put theirs, or in /run/chvm-shim when
   that is too long for a unix socket's name. */
void names_socket (const char *address, const char *ns, const char *id, char *out, size_t len);

#endif
