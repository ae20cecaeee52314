/* SPDX-License-Identifier: Apache-2.0 */
/* Opening a stream to a guest: Cloud Hypervisor's hybrid vsock (a unix
   socket and a "CONNECT <port>\n" / "OK <n>\n" handshake) or TCP, each bounded
   by a CLOCK_MONOTONIC deadline.  Used by the backends and by the agent
   client; the fds returned are blocking. */
#ifndef CHVM_DIAL_H
#define CHVM_DIAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Waits until fd is ready for `events` (poll flags) or deadline passes;
   `what` names the wait in the timeout error. */
int dial_wait_fd (int fd, short events, int64_t deadline, const char *what, struct err **err);

/* Sends all of data before deadline, whatever the fd's blocking mode. */
int dial_write_all (int fd, const void *data, size_t len, int64_t deadline, struct err **err);

/* Connects to a CH hybrid vsock socket and performs the handshake for the
   guest port; nothing of the stream after "OK <n>\n" is consumed. */
int dial_vsock (const char *socket_path, unsigned port, int timeout_ms, struct err **err);

/* Connects to host:port over TCP (e.g. a QEMU hostfwd), TCP_NODELAY set. */
int dial_tcp (const char *host, unsigned port, int timeout_ms, struct err **err);

/* Parses "HOST:PORT" (or "[V6]:PORT") and dials it. */
int dial_tcp_str (const char *hostport, int timeout_ms, struct err **err);

#endif
