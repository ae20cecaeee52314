/* SPDX-License-Identifier: Apache-2.0 */
/* The idle clock and idle standby (idle.c). */
#ifndef CHVM_SUPERVISOR_IDLE_H
#define CHVM_SUPERVISOR_IDLE_H

#include "err.h"
#include "supervisor/sup.h"

/* Makes the idle timer (armed by sup_arm_idle). */
int idle_init (struct sup *s, struct err **err);

/* (Re)arms the idle timer for spec.idle_standby seconds after the last
   activity (a CDP byte or a live-view packet); off while the browser is
   not known to be up. */
void sup_arm_idle (struct sup *s);

/* DevTools answered: the browser is up, the idle clock runs. */
void idle_browser_up (struct sup *s);

/* Our `chvm standby` ended with status (waitpid's) after ms. */
void idle_standby_done (struct sup *s, int status, double ms);

#endif
