/* SPDX-License-Identifier: Apache-2.0 */
/* Following the VM's state: vm.json, the VMM, our children (sync.c). */
#ifndef CHVM_SUPERVISOR_SYNC_H
#define CHVM_SUPERVISOR_SYNC_H

#include "err.h"
#include "supervisor/sup.h"

/* Watches the VM dir (inotify: vm.json replaced, the dir removed) and
   SIGCHLD, SIGTERM and SIGINT. */
int sync_watch (struct sup *s, struct err **err);

/* Reads vm.json again and follows what it says (a standby or restore
   someone else ran, a stop, an rm). */
void sup_sync (struct sup *s);

#endif
