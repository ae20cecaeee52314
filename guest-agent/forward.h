/* SPDX-License-Identifier: Apache-2.0 */
/* Forward (forward.c): the connection becomes a raw pipe to a guest port. */
#ifndef CHVM_FORWARD_H
#define CHVM_FORWARD_H

#include "conn.h"

void forward_handle (struct conn *c, const Frame *f);

#endif
