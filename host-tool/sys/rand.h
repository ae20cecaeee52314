/* SPDX-License-Identifier: Apache-2.0 */
/* Secrets and names from the kernel's random pool (getrandom). */
#ifndef CHVM_SYS_RAND_H
#define CHVM_SYS_RAND_H

#include <stddef.h>

#include "err.h"

/* bytes (at most 64) random bytes as 2 * bytes lowercase hex digits and a
   NUL into out. */
int rand_hex (char *out, size_t bytes, struct err **err);

#endif
