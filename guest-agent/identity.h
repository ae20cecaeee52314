/* SPDX-License-Identifier: Apache-2.0 */
/* Identity: what a VM forked from a template must not share with it
   (identity.c). */
#ifndef CHVM_IDENTITY_H
#define CHVM_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

#define IDENTITY_ENTROPY_MAX 512

void identity_handle (struct conn *c, const Frame *f);

/* Whether s is a hostname sethostname takes and that is safe to log:
   1-64 of [A-Za-z0-9.-], not starting with '-' or '.'.  Pure. */
bool identity_hostname_ok (const char *s);

/* Whether s is a machine-id: 32 lowercase hex digits, not all zero.  Pure. */
bool identity_machine_id_ok (const char *s);

#endif
