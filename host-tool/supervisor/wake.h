/* SPDX-License-Identifier: Apache-2.0 */
/* Wake on connect: a VM in standby restored for a client (wake.c). */
#ifndef CHVM_SUPERVISOR_WAKE_H
#define CHVM_SUPERVISOR_WAKE_H

#include "supervisor/sup.h"

/* A client waits (why says how): a VM in standby is restored (our `chvm
   restore`); one whose standby still runs wakes once it is done. */
void sup_wake (struct sup *s, const char *why);

/* A client got an answer: the wake in progress, if any, is timed. */
void wake_answered (struct sup *s);

/* Our `chvm restore` ended with status (waitpid's) after ms. */
void wake_restore_done (struct sup *s, int status, double ms);

/* The wake failed: clients waiting for an answer get one saying so. */
void wake_fail_held (struct sup *s);

#endif
