/* SPDX-License-Identifier: Apache-2.0 */
/* The QEMU backend's snapshot writer, which its tests drive directly. */
#ifndef CHVM_VMM_BACKEND_QEMU_H
#define CHVM_VMM_BACKEND_QEMU_H

#include <stddef.h>

#include "err.h"
#include "vmm/backend.h"

/* The shell command QEMU's exec: migration runs to write <dir>/<file>:
   the stream goes to <file>.part, renamed to <file> once the writer has it
   all, or <file>.failed appears. */
int qemu_writer_cmd (const char *dir, const char *file, char *out, size_t len, struct err **err);

/* Waits until that writer finished: 0 once <dir>/<file> exists, an error
   when <file>.failed does or after timeout_ms. */
int qemu_writer_wait (const char *dir, const char *file, int timeout_ms, struct err **err);

#endif
