/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor's worker: the CDP endpoint, unprivileged (worker.c). */
#ifndef CHVM_SUPERVISOR_WORKER_H
#define CHVM_SUPERVISOR_WORKER_H

#include "supervisor/sup.h"

/* The worker's fds, fixed (a test takes the channel with pidfd_getfd). */
#define WORKER_LISTEN_FD 3
#define WORKER_MSG_FD 4
#define WORKER_DIAL_FD 5
/* Whom it runs as: nobody and nogroup, no other group. */
#define WORKER_ID 65534

/* In the child of the fork (priv_fork): keeps listen_fd, the frames'
   channel msg_fd and the dial channel dial_fd (as the fds above), closes
   every other, drops to WORKER_ID (NoNewPrivs, not dumpable, killed with
   the parent) and serves the endpoint until the parent goes or tells
   nonsense.  Returns the exit status. */
int worker_main (struct sup *s, int listen_fd, int msg_fd, int dial_fd);

#endif
