/* SPDX-License-Identifier: Apache-2.0 */
/* Loads the kernel modules the initramfs carries. */
#ifndef CHVM_INIT_MODULES_H
#define CHVM_INIT_MODULES_H

#include "err.h"

/* The list written by the initrd builder: one module path per line
   (relative to /), dependencies first. */
#define MODULES_LOAD_LIST "/lib/modules/chvm.load"

/* Loads each listed module with finit_module().  Already loaded or built in
   (EEXIST) is fine; a failure is logged as a warning and loading goes on,
   since the later wait for disks reports what is really missing.  Returns the
   number loaded, or <0 when the list cannot be read. */
int modules_load (struct err **err);

#endif
