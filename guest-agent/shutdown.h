/* SPDX-License-Identifier: Apache-2.0 */
/* Shutdown (shutdown.c). */
#ifndef CHVM_SHUTDOWN_H
#define CHVM_SHUTDOWN_H

#include "conn.h"

void shutdown_handle (struct conn *c, const Frame *f);
void shutdown_free (void);

#endif
