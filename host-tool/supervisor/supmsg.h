/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The supervisor is two processes (docs/DESIGN.md, "The supervisor"): its
 * parent, root, runs `chvm standby|restore`, follows vm.json and serves
 * supervisor.sock; its worker, nobody, serves the CDP endpoint (proxy.c),
 * every byte of the clients and the guest.  They talk in frames of one
 * fixed size over a SOCK_SEQPACKET socketpair (supmsg.c): a type, a
 * number, and a text only where the type has one.  The parent checks every
 * frame of the worker's as hostile (supmsg_decode): one that is not a
 * whole frame of a type the worker may send, with a number and a text in
 * that type's bounds, has the worker killed and the supervisor exit.
 */
#ifndef CHVM_SUPERVISOR_SUPMSG_H
#define CHVM_SUPERVISOR_SUPMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SUPMSG_TEXT_MAX 256
#define SUPMSG_CLIENTS_MAX (1u << 20) /* connections a worker may report */

enum supmsg_type
{
  /* The worker's, to the parent. */
  SUPMSG_WAKE = 1,     /* a client waits on a VM not running; val: SUPMSG_WAKE_* */
  SUPMSG_ACTIVITY,     /* a CDP byte: the idle clock starts over */
  SUPMSG_BROWSER_UP,   /* the guest's DevTools sent bytes */
  SUPMSG_ANSWERED,     /* a client got the guest's answer (the end of a wake) */
  SUPMSG_CLIENTS,      /* val: connections open */
  SUPMSG_OUTSTANDING,  /* val: CDP commands sent and not answered */
  SUPMSG_HELD,         /* val: 1 while a client waits on the VM, else 0 */
  SUPMSG_BROWSER_PATH, /* text: /TOKEN/devtools/browser/<id>, from /json/version */
  SUPMSG_WORKER_LAST = SUPMSG_BROWSER_PATH,
  /* The parent's, to the worker. */
  SUPMSG_STATE = 64,  /* val: enum sup_state */
  SUPMSG_WAKE_FAILED, /* text: why the restore failed */
  SUPMSG_MAX_CLIENTS, /* val: spec.cdp_max_clients */
  SUPMSG_PARENT_LAST = SUPMSG_MAX_CLIENTS,
};

enum
{
  SUPMSG_WAKE_NEW,  /* a new client's request head */
  SUPMSG_WAKE_BYTE, /* a byte on a connection already proxied */
};

/* One frame, as it travels (one host, one build: host byte order). */
struct supmsg
{
  uint32_t type;
  uint32_t val;
  char text[SUPMSG_TEXT_MAX]; /* NUL-terminated, zero-filled after */
};

/* A frame of type with val and text (NULL: none; cut to fit), zero-filled. */
void supmsg_make (struct supmsg *m, uint32_t type, uint32_t val, const char *text);

/* len bytes as received into m: 0 when they are one whole frame of a type
   the sender (from_worker: the worker, else the parent) may send, its val
   in the type's bounds, its text empty (all zero) or, for the types that
   have one, printable ASCII, NUL-terminated and zero-filled after (a
   browser path: a '/', then [A-Za-z0-9._/-] alone); else -1
   and err says why.  Pure. */
int supmsg_decode (const void *buf, size_t len, bool from_worker, struct supmsg *m,
                   struct err **err);

/* The next frame waiting on the socket fd (SOCK_SEQPACKET), without
   waiting: 1 and *m (supmsg_decode's, from_worker as there); 0 when none
   waits; SUPMSG_CLOSED when the channel closed or broke, SUPMSG_BAD when
   the frame is bad (err says why: supmsg_decode's words). */
#define SUPMSG_CLOSED (-1)
#define SUPMSG_BAD (-2)
int supmsg_recv (int fd, bool from_worker, struct supmsg *m, struct err **err);

/* Sends a frame on the socket fd (SOCK_SEQPACKET); nonblock: fails rather
   than waits.  0 or -1 (errno). */
int supmsg_send (int fd, uint32_t type, uint32_t val, const char *text, bool nonblock);

/* The dial channel (a second socketpair): the parent's answer to a request
   (one byte, SUPMSG_DIAL), errno (0: fd is a socket connecting to the
   guest, passed along). */
#define SUPMSG_DIAL 'D'
int supmsg_send_fd (int chan, int32_t rc, int fd);

/* The worker's request, then the parent's answer: a socket, or -1 with
   errno (the parent's, or the channel's). */
int supmsg_dial (int chan);

#endif
