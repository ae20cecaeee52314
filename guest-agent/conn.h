/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection layer (conn.c): one libevent loop serves every connection;
 * a connection decodes frames and hands each one to the on_frame callback it
 * was accepted with (dispatch.c), which hands it to the file of its concern.
 * This layer knows no handler.  Work that outlives its frame (WaitReady,
 * Health's CDP probe, Exec, Forward's connect, a held freeze, a pending
 * Shutdown) is a `struct req` owned by its connection, so that a disconnect
 * cancels it; a Forward takes the connection's byte stream over with
 * conn_take_stream.
 */
#ifndef CHVM_CONN_H
#define CHVM_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "agent.pb-c.h"
#include "err.h"
#include "frame.h"

/* Connection slots.  Authenticated connections (Hello done) and those still
   waiting for Hello have separate budgets, so that peers that never say
   Hello cannot keep the host out.  When the pre-Hello slots are full the
   oldest of them is dropped for the newcomer; when the authenticated ones
   are full, the longest idle one with nothing outstanding is. */
#define AGENT_MAX_CONNS 64
#define AGENT_MAX_PENDING 16
/* A connection must say Hello within this time (--hello-timeout). */
#define AGENT_HELLO_TIMEOUT_MS 10000
/* An authenticated connection with nothing outstanding (no request, exec,
   forward or freeze of its own) is closed after this long without a frame
   (--idle-timeout): after a restore from a snapshot, the host side of every
   connection from before it is gone, and nothing else tells the guest. */
#define AGENT_IDLE_TIMEOUT_MS 300000
/* TCP keepalive: a dead peer is found after IDLE + INTVL * CNT seconds. */
#define AGENT_KEEPIDLE_S 60
#define AGENT_KEEPINTVL_S 10
#define AGENT_KEEPCNT 6
/* Above this much queued output, producers (exec pipes, forwarded peer)
   stop reading until the connection drains below half of it. */
#define AGENT_OUT_HIGH (4u << 20)

typedef Chvm__Agent__Frame Frame;

struct conn;

struct req
{
  struct req *next;
  struct conn *conn; /* NULL once detached */
  uint64_t id;
  /* Called when the connection goes away before the request finished; must
     free the request (or detach it and free it later). */
  void (*cancel) (struct req *r);
  /* Optional: called when the connection's output fell below
     AGENT_OUT_HIGH / 2 (or to empty), so that a paused producer resumes.
     It may finish its own request (conn_req_done), no other. */
  void (*drained) (struct req *r);
};

/* Who drives a connection that carries raw bytes instead of frames. */
struct conn_stream_ops
{
  /* Raw bytes arrived (only once conn_stream_raw was called). */
  void (*readable) (void *st);
  /* The output fell below AGENT_OUT_HIGH / 2 (or to empty). */
  void (*drained) (void *st);
  /* The host half-closed its side: true when handled (the connection stays),
     false to close the connection. */
  bool (*eof) (void *st);
  /* The connection is being freed (after its requests were cancelled). */
  void (*gone) (void *st);
};

enum conn_mode
{
  CONN_FRAMES,         /* protocol frames */
  CONN_STREAM_OPENING, /* a stream took the connection over: no frames are read */
  CONN_STREAM,         /* raw bytes, driven by the stream */
};

typedef void conn_frame_fn (struct conn *c, const uint8_t *data, size_t len);

struct conn
{
  struct conn *next, *prev;
  struct bufferevent *bev;
  struct frame_decoder dec;
  conn_frame_fn *on_frame;
  enum conn_mode mode;
  bool authed;
  bool tcp;     /* TCP transport: Hello must carry the token */
  bool closing; /* flush the output, then close */
  struct req *reqs;
  const struct conn_stream_ops *stream_ops; /* with mode != CONN_FRAMES */
  void *stream;
  struct event *timer; /* before Hello: the Hello deadline; after: the idle timeout */
  int64_t last_rx_ms;  /* CLOCK_MONOTONIC of the last frame received (or accept) */
  uint64_t seq;        /* accept order (agent.accepted when accepted) */
  char name[64];
};

struct agent
{
  struct event_base *base;
  char token[160];
  size_t token_len;
  uint16_t cdp_port;
  unsigned hello_timeout_ms; /* 0: connections may wait for ever before Hello */
  unsigned idle_timeout_ms;  /* 0: idle authenticated connections stay open */
  bool test_mode;            /* never freeze, set the clock, drop caches or power off */
  const char *mountinfo;
  const char *frozen_marker;
  struct conn *conns;
  unsigned n_conns;  /* all of them */
  unsigned n_authed; /* those past Hello */
  uint64_t accepted; /* connections accepted so far */
  bool frozen;
};

extern struct agent agent;

void conn_accept (evutil_socket_t fd, bool tcp, const char *name, conn_frame_fn *on_frame);
/* Checks Hello's token (TCP only) and finds c an authenticated slot; on
   failure sends the error reply for id, closes c and returns false. */
bool conn_authenticate (struct conn *c, uint64_t id, const Chvm__Agent__Hello *h);
int conn_send (struct conn *c, const Frame *f);
void conn_send_error (struct conn *c, uint64_t id, Chvm__Agent__ErrorCode code, const char *fmt,
                      ...) __attribute__ ((format (printf, 4, 5)));
void conn_send_err (struct conn *c, uint64_t id, Chvm__Agent__ErrorCode code, struct err *e);
/* drained may be NULL. */
void conn_req_add (struct conn *c, struct req *r, uint64_t id, void (*cancel) (struct req *),
                   void (*drained) (struct req *));
/* Detaches r from its connection (nothing when already detached). */
void conn_req_done (struct req *r);
bool conn_out_full_p (const struct conn *c);
bool conn_out_empty_p (const struct conn *c);
/* Hands c's byte stream to ops/st: frames stop being read (mode
   CONN_STREAM_OPENING, replies can still be sent) until conn_stream_raw
   (raw bytes from then on) or conn_stream_release (back to frames). */
void conn_take_stream (struct conn *c, const struct conn_stream_ops *ops, void *st);
void conn_stream_raw (struct conn *c);
/* Back to frames; the caller re-enables reading. */
void conn_stream_release (struct conn *c);
void conn_close (struct conn *c);
void conn_close_all (void);
/* After a restore: frees every connection accepted before keep; returns
   how many. */
unsigned conn_close_older (const struct conn *keep);
/* Pure check, kept free of I/O so it can be unit-tested. */
bool token_equal_p (const char *a, size_t alen, const char *b, size_t blen);
/* Whether c waits for nothing: no request, exec, forward or freeze of its
   own, so that closing it loses nothing (idle timeout, slot reuse). */
bool conn_idle_p (const struct conn *c);

#endif
