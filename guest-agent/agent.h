/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm-agent internals.  One event loop (libevent) serves every connection;
 * a connection decodes frames (dispatch.c) and hands each request to the file
 * of its concern.  Requests that wait for something (WaitReady, Health's CDP
 * probe, Exec, Forward's connect) are `struct req`s owned by their
 * connection, so that a disconnect cancels them.
 */
#ifndef CHVM_AGENT_H
#define CHVM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "agent.pb-c.h"
#include "err.h"
#include "frame.h"

#define AGENT_VERSION "0.1.0"
#define AGENT_PROTOCOL_VERSION 1u
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
struct fwd_splice;

struct req
{
  struct req *next;
  struct conn *conn; /* NULL once detached */
  uint64_t id;
  /* Called when the connection goes away before the request finished; must
     free the request (or detach it and free it later). */
  void (*cancel) (struct req *r);
};

enum conn_mode
{
  CONN_FRAMES,          /* protocol frames */
  CONN_FORWARD_PENDING, /* Forward accepted, connecting to the guest port */
  CONN_FORWARDING,      /* raw bytes to/from the guest port */
};

struct conn
{
  struct conn *next, *prev;
  struct bufferevent *bev;
  struct frame_decoder dec;
  enum conn_mode mode;
  bool authed;
  bool tcp;      /* TCP transport: Hello must carry the token */
  bool closing;  /* flush the output, then close */
  bool host_eof; /* forwarding: the host half-closed its side */
  struct req *reqs;
  struct bufferevent *peer;  /* forwarded guest connection */
  bool splice_wait;          /* forwarding: flushing the bufferevents before splicing */
  struct fwd_splice *splice; /* forwarding with splice(2) (forward.c) */
  struct event *timer;       /* before Hello: the Hello deadline; after: the idle timeout */
  int64_t last_rx_ms;        /* CLOCK_MONOTONIC of the last frame received (or accept) */
  uint64_t seq;              /* accept order (agent.accepted when accepted) */
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
  struct event *sigterm_ev;
};

extern struct agent agent;

/* dispatch.c */
void conn_accept (evutil_socket_t fd, bool tcp, const char *name);
int conn_send (struct conn *c, const Frame *f);
void conn_send_error (struct conn *c, uint64_t id, Chvm__Agent__ErrorCode code, const char *fmt,
                      ...) __attribute__ ((format (printf, 4, 5)));
void conn_send_err (struct conn *c, uint64_t id, Chvm__Agent__ErrorCode code, struct err *e);
void conn_req_add (struct conn *c, struct req *r, uint64_t id, void (*cancel) (struct req *));
void conn_req_done (struct req *r);
bool conn_out_full_p (const struct conn *c);
void conn_close (struct conn *c);
void conn_close_all (void);
/* After a restore: frees every connection accepted before keep; returns
   how many. */
unsigned conn_close_older (const struct conn *keep);
/* Pure checks, kept free of I/O so they can be unit-tested and fuzzed. */
Chvm__Agent__ErrorCode dispatch_admit (const Frame *f, bool authed, bool frozen, const char **why);
bool token_equal_p (const char *a, size_t alen, const char *b, size_t blen);
/* Whether c waits for nothing: no request, exec, forward or freeze of its
   own, so that closing it loses nothing (idle timeout, slot reuse). */
bool conn_idle_p (const struct conn *c);

/* sysinfo.c */
struct sysinfo_snap
{
  uint64_t mem_total_kb, mem_available_kb, mem_free_kb;
  double uptime_s, load[3];
  int chrome_pid;
  char chrome_state[16];
};
int sysinfo_read (struct sysinfo_snap *s, struct err **err);
int sysinfo_parse_meminfo (const char *text, uint64_t *total_kb, uint64_t *avail_kb,
                           uint64_t *free_kb);
int sysinfo_parse_loadavg (const char *text, double load[3]);
const char *sysinfo_state_name (char state);
void health_start (struct conn *c, uint64_t id, const Chvm__Agent__HealthRequest *rq);

/* ready.c: one probe = repeated attempts to reach 127.0.0.1:port, for HTTP
   probes a 200 answer to GET /json/version that names "Browser". */
typedef void (*probe_cb) (void *arg, bool ok, const char *browser, const char *why);
struct probe;
struct probe *probe_start (uint16_t port, bool http, unsigned deadline_ms, bool retry, probe_cb cb,
                           void *arg);
void probe_cancel (struct probe *p);
int ready_parse_version (const char *resp, size_t len, char *browser, size_t browser_len);
void ready_start (struct conn *c, uint64_t id, const Chvm__Agent__WaitReadyRequest *rq);

/* freeze.c */
struct mount_ent
{
  char *path;
  unsigned major, minor;
};
int freeze_parse_mountinfo (const char *text, struct mount_ent **out, size_t *n, struct err **err);
void freeze_free_mounts (struct mount_ent *m, size_t n);
void freeze_handle (struct conn *c, uint64_t id, const Chvm__Agent__QuiesceRequest *rq);
void thaw_handle (struct conn *c, uint64_t id, const Chvm__Agent__ThawRequest *rq);
void freeze_conn_gone (struct conn *c);
/* Whether c holds the current freeze (its loss thaws). */
bool freeze_owner_p (const struct conn *c);
void freeze_startup (void);
/* announce.c */
int announce_eth0 (struct err **err);

/* forward.c */
void forward_start (struct conn *c, uint64_t id, const Chvm__Agent__ForwardRequest *rq);
void forward_conn_gone (struct conn *c);
void forward_conn_readable (struct conn *c);
/* The host half-closed a forwarded connection: flush, then half-close the
   guest side and keep relaying its answer.  False when not forwarding. */
bool forward_conn_eof (struct conn *c);
void forward_conn_drained (struct conn *c);

/* exec.c */
void exec_start (struct conn *c, uint64_t id, const Chvm__Agent__ExecRequest *rq);
void exec_sigchld (void);
void exec_conn_drained (struct conn *c);
void exec_free_all (void);
int exec_validate (const Chvm__Agent__ExecRequest *rq, const char **why);

/* shutdown.c */
void shutdown_handle (struct conn *c, uint64_t id, const Chvm__Agent__ShutdownRequest *rq);
/* Called when c's output is empty: if c asked for Shutdown, its reply is
   out and the machine goes down now. */
void shutdown_conn_drained (struct conn *c);
void shutdown_conn_gone (struct conn *c);
void shutdown_free (void);

#endif
