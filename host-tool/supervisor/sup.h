/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The supervisor's insides (supervisor.h says what it does): what one
 * supervisor keeps (struct sup) and one CDP client (struct conn), shared
 * by its files, and the helpers they all use (sup.c).  It is two
 * processes, each with its own struct sup: the parent (root: wake, idle,
 * live, sync, control, the `chvm` children) and the worker (nobody: the
 * proxy), which talk in supmsg.h's frames.  The files:
 *
 *   sup.c      logging, activity, the `chvm` children it runs
 *   supmsg.c   the frames between parent and worker, checked
 *   priv.c     the parent's side: the fork, the worker's frames and dials
 *   worker.c   the worker: privileges dropped, the proxy's event loop
 *   proxy.c    clients' HTTP and WebSockets to the guest's DevTools
 *   wake.c     wake on connect: a restore, then the held clients go on
 *   idle.c     the idle clock and idle standby
 *   live.c     the live view's UDP packets, which count as activity
 *   sync.c     following vm.json, the VMM and our children
 *   control.c  the control socket and its protocol
 *   daemon.c   supervisor_main: lock, pid file, listeners, event loop
 *   client.c   the CLI's side: starting, stopping, asking a supervisor
 *
 * Only daemon.c knows all of them; worker.c fills in the proxy's hooks,
 * so that the proxy knows no wake or idle code.
 */
#ifndef CHVM_SUPERVISOR_SUP_H
#define CHVM_SUPERVISOR_SUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cdp/cdp_http.h"
#include "cdp/wsscan.h"
#include "state/vmrec.h"
#include "supervisor/supmsg.h"

#define WAKE_KEEP 64 /* wake figures kept for status */

struct event_base;
struct event;
struct evconnlistener;
struct bufferevent;
struct evbuffer;

enum sup_state
{
  SUP_RUNNING,
  SUP_STANDBY,
  SUP_SLEEPING, /* our `chvm standby` runs */
  SUP_WAKING,   /* our `chvm restore` runs */
};

enum conn_mode
{
  CONN_HEAD,  /* reading the client's request head */
  CONN_HTTP,  /* one request, answer passed through */
  CONN_JSON,  /* one /json request, answer rewritten */
  CONN_WS,    /* a WebSocket */
  CONN_CLOSE, /* writing the last bytes to the client */
};

struct sup;

/* One CDP client (proxy.c). */
struct conn
{
  struct sup *s;
  struct conn *next;
  struct bufferevent *cli, *up;
  enum conn_mode mode;
  bool up_ready; /* connected, head sent */
  bool up_eof;
  struct cdp_req req;
  char up_head[CDP_HEAD_MAX + 512];
  long up_head_len;
  char to_host[256 + 40]; /* what the client's URLs name: HOST[:PORT]/TOKEN */
  struct ws_scan c2s, s2c;
  uint8_t s2c_head_match; /* of "\r\n\r\n" before the WebSocket frames */
  bool s2c_frames;
  bool opaque; /* the frame scan gave up: bytes alone count */
  int64_t cmds, replies;
  bool authed;           /* its head carried the token: it holds a client slot */
  double last_io;        /* a byte either way, for the idle WebSocket bound */
  double t_accept;       /* for the bound on heads still coming */
  struct evbuffer *resp; /* a /json answer being collected */
  /* The whole request head must come within HEAD_TIMEOUT_S of the accept,
     however slowly its bytes trickle in. */
  struct event *head_timer;
};

/* What the proxy tells the rest of the supervisor; daemon.c fills them in. */
struct proxy_hooks
{
  /* A client waits on a VM that is not running: a new one, or its bytes. */
  void (*wake) (struct sup *s, bool new_client);
  /* The guest sent bytes: its browser is up. */
  void (*browser_up) (struct sup *s);
  /* A client got the guest's answer: the end of a wake in progress. */
  void (*answered) (struct sup *s);
  /* A TCP socket connecting to the guest's DevTools (root's: the guest's
     port takes root's sockets alone), or -1 (errno). */
  int (*dial) (struct sup *s);
};

/* The other process (priv.c, worker.c): the channel, and what it was told
   last (sup_changed has it told what changed). */
struct sup_link
{
  bool in_worker;      /* this is the worker */
  pid_t worker;        /* the parent's: the worker's pid */
  int msg_fd, dial_fd; /* supmsg frames; the worker's dial requests */
  struct event *msg_ev, *dial_ev;
  struct event *tell_ev; /* sup_changed: what changed goes over */
  enum sup_state state;  /* told */
  unsigned max_clients;
  double told_ms, activity;
  unsigned conns;
  int64_t outstanding;
  bool held, up, answer_due;
  char browser_path[SUPMSG_TEXT_MAX];
};

struct sup
{
  struct event_base *base;
  char dir[VM_PATH_MAX], root[VM_PATH_MAX], name[VM_NAME_MAX + 1];
  struct vm_record rec;
  enum sup_state state;
  struct evconnlistener *cdp, *ctl;
  char listen[64];
  char up_host[64];
  unsigned up_port;
  char up_hostport[96]; /* the Host DevTools is given, and names in its URLs */
  struct proxy_hooks hooks;
  int ino_fd;
  struct event *ino_ev, *vmm_ev, *idle_ev, *sig_ev[3];
  struct event *accept_ev; /* accepting again after it failed (EMFILE) */
  /* The live view: UDP on a published UDP range of the tap counts as
     activity (udpwatch.h). */
  int live_fd;
  struct event *live_ev, *live_pause;
  double live_last; /* 0: none yet */
  bool live_lost;   /* closed on an error: opened again while running */
  int vmm_fd;
  pid_t vmm_pid;
  pid_t child;
  double child_t0;
  bool wake_pending; /* a byte came while our standby ran */
  struct conn *conns;
  unsigned n_conns;  /* all, heads still coming included (the parent: as told) */
  unsigned n_authed; /* those past the token: at most rec.cdp_max_clients */
  double last_activity;
  /* The wake in progress: first byte in, restore, first answer out. */
  bool wake_open;
  double wake_t0, wake_restore_ms;
  unsigned wakes, wake_fails, idle_standbys;
  double wake_ms[WAKE_KEEP], restore_ms[WAKE_KEEP];
  char last_error[512];
  char browser_path[SUPMSG_TEXT_MAX];
  /* The parent's, as the worker told: commands outstanding, a client held. */
  int64_t outstanding;
  bool held;
  struct sup_link link;
  /* The browser is known to be up: run waited for it, a restore did, or
     DevTools answered through us.  The idle clock runs only then: a VM
     still booting is not idle. */
  bool ready;
};

/* "<UTC time> chvm-supervisor[pid]: msg" to stderr, which is supervisor.log. */
void sup_log (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* "running", "standby", "standing-by" or "waking". */
const char *sup_state_name (enum sup_state st);

/* A CDP byte, a client or a VM that runs again: the idle clock starts over
   (and sup_changed). */
void sup_touch (struct sup *s);

/* Something the other process knows may have changed: it is told, once
   the event loop runs on (priv.c, worker.c). */
void sup_changed (struct sup *s);

/* The parent's state becomes st (sup_changed). */
void sup_set_state (struct sup *s, enum sup_state st);

/* Sends the other process a frame (supmsg.h); the parent never waits on
   the worker.  On failure the supervisor (or the worker) quits. */
void sup_tell (struct sup *s, uint32_t type, uint32_t val, const char *text);

/* Ends the event loop: supervisor_main cleans up and exits. */
void sup_quit (struct sup *s, const char *why);

/* Runs `chvm --state-dir ROOT CMD NAME` as s->child, its output into our
   log; on failure, s->last_error says why. */
int sup_spawn_chvm (struct sup *s, const char *cmd);

#endif
