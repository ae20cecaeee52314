/* SPDX-License-Identifier: Apache-2.0 */
/* The live view's packets on the tap, activity for the idle clock (live.c). */
#ifndef CHVM_SUPERVISOR_LIVE_H
#define CHVM_SUPERVISOR_LIVE_H

#include "err.h"
#include "supervisor/sup.h"

/* Makes the timer that rests the watch after a packet. */
int live_init (struct sup *s, struct err **err);

/* (Re)opens the watch on the tap, where the VM has one and a UDP publish. */
void live_open (struct sup *s);

#endif
