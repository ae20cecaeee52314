/* SPDX-License-Identifier: Apache-2.0 */
/* The QEMU backend's snapshot writer, which its tests drive directly. */
#ifndef CHVM_VMM_BACKEND_QEMU_H
#define CHVM_VMM_BACKEND_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "vmm/backend.h"

/* The shell command QEMU's exec: migration runs to write <dir>/<file>:
   the stream goes to <file>.part, renamed to <file> once the writer has it
   all, or <file>.failed appears. */
int qemu_writer_cmd (const char *dir, const char *file, char *out, size_t len, struct err **err);

/* Waits until that writer finished: 0 once <dir>/<file> exists, an error
   when <file>.failed does or after timeout_ms. */
int qemu_writer_wait (const char *dir, const char *file, int timeout_ms, struct err **err);

/* QEMU user-net's forwards that chvm made for its own use (the agent's on
   127.0.0.1:agent_port, the root_only publishes: the DevTools port the
   supervisor proxies) take only root's connections: an nft table of the VM
   (`ip chvm_fwd_<dev>_<inode>` of dir in hex, output hook: any other uid's connection
   is reset), made anew with on, removed without; one transaction each, and
   removing a missing one is no error.  Nothing to guard: nothing is done
   (nft is not needed).  The backend guards before QEMU starts; whoever sees
   the VMM gone removes it (vmctl_vmm_gone). */
int backend_qemu_guard (const char *dir, const struct publish *pub, size_t n, uint16_t agent_port,
                        bool on, struct err **err);

#endif
