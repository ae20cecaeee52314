/* SPDX-License-Identifier: Apache-2.0 */
/* The CDP endpoint: clients proxied to the guest's DevTools (proxy.c). */
#ifndef CHVM_SUPERVISOR_PROXY_H
#define CHVM_SUPERVISOR_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "supervisor/sup.h"

/* Serves CDP clients on fd, a socket listening on s->listen already (run,
   or the parent, bound it). */
int proxy_listen (struct sup *s, int fd, struct err **err);

/* The VM runs again: held clients connect to the guest, their bytes go on. */
void proxy_resume_held (struct sup *s);

/* A wake failed: clients waiting for an answer get a 503 with msg; open
   WebSockets with bytes that cannot be delivered are closed. */
void proxy_fail_held (struct sup *s, const char *msg);

/* Whether a client waits on the VM: bytes held, or a request not sent on. */
bool proxy_has_held (const struct sup *s);

/* CDP commands sent that have no answer yet, over all clients. */
int64_t proxy_outstanding (const struct sup *s);

/* Closes every client (at exit). */
void proxy_close_all (struct sup *s);

#endif
