/* SPDX-License-Identifier: Apache-2.0 */
/* The parent's side of the supervisor's two processes (priv.c). */
#ifndef CHVM_SUPERVISOR_PRIV_H
#define CHVM_SUPERVISOR_PRIV_H

#include "err.h"
#include "supervisor/sup.h"

/* Forks the worker (worker.c), which serves the CDP endpoint on listen_fd
   as nobody; in the parent, closes listen_fd and returns 0 (s->link.worker
   its pid).  The worker never returns. */
int priv_fork (struct sup *s, int listen_fd, struct err **err);

/* On s->base: the worker's frames and dial requests, and telling it what
   changed. */
int priv_watch (struct sup *s, struct err **err);

/* At exit: the worker is killed and reaped (the endpoint is free after). */
void priv_end (struct sup *s);

#endif
