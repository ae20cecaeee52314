/* SPDX-License-Identifier: Apache-2.0 */
/* The control socket, supervisor.sock (control.c). */
#ifndef CHVM_SUPERVISOR_CONTROL_H
#define CHVM_SUPERVISOR_CONTROL_H

#include "err.h"
#include "supervisor/sup.h"

/* Listens on DIR/supervisor.sock (mode 0600): one JSON line in
   ({"cmd":"status"|"stop"}), one JSON line out. */
int control_listen (struct sup *s, struct err **err);

#endif
