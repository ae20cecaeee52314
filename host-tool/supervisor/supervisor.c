/* SPDX-License-Identifier: Apache-2.0 */
#include "supervisor/supervisor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cdp/cdp_http.h"
#include "cdp/wsscan.h"
#include "cleanup.h"
#include "clock.h"
#include "net/net.h"
#include "net/udpwatch.h"
#include "num.h"
#include "path.h"
#include "state/probe.h"
#include "state/vmstate.h"
#include "sys/dial.h"
#include "sys/fs.h"
#include "sys/proc.h"

extern char **environ;

#define QUEUE_MAX (4u << 20)  /* bytes queued one way before reading stops */
#define HOLD_MAX (1u << 20)   /* a client's bytes held while the VM wakes */
#define UPSTREAM_CONNECT_S 10 /* connecting to the guest's DevTools */
#define HEAD_TIMEOUT_S 30     /* a client's request head */
#define FLUSH_TIMEOUT_S 30    /* the last bytes to a client, or to the guest */
#define WAKE_KEEP 64          /* wake figures kept for status */
#define SUP_START_MS 10000

enum sup_state
{
  SUP_RUNNING,
  SUP_STANDBY,
  SUP_SLEEPING, /* our `chvm standby` runs */
  SUP_WAKING,   /* our `chvm restore` runs */
};

static const char *const sup_state_names[] = { "running", "standby", "standing-by", "waking" };

enum conn_mode
{
  CONN_HEAD,  /* reading the client's request head */
  CONN_HTTP,  /* one request, answer passed through */
  CONN_JSON,  /* one /json request, answer rewritten */
  CONN_WS,    /* a WebSocket */
  CONN_CLOSE, /* writing the last bytes to the client */
};

struct sup;

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
  char to_host[256]; /* what the client's URLs name */
  struct ws_scan c2s, s2c;
  uint8_t s2c_head_match; /* of "\r\n\r\n" before the WebSocket frames */
  bool s2c_frames;
  bool opaque; /* the frame scan gave up: bytes alone count */
  int64_t cmds, replies;
  struct evbuffer *resp; /* a /json answer being collected */
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
  unsigned n_conns;
  double last_activity;
  /* The wake in progress: first byte in, restore, first answer out. */
  bool wake_open;
  double wake_t0, wake_restore_ms;
  unsigned wakes, wake_fails, idle_standbys;
  double wake_ms[WAKE_KEEP], restore_ms[WAKE_KEEP];
  char last_error[512];
  char browser_path[256];
  /* The browser is known to be up: run waited for it, a restore did, or
     DevTools answered through us.  The idle clock runs only then: a VM
     still booting is not idle. */
  bool ready;
};

/* ---- logging: "<UTC time> chvm-supervisor[pid]: msg" into supervisor.log ---- */

static void sup_log (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
sup_log (const char *fmt, ...)
{
  char msg[1024], ts[40];
  struct timespec t;
  struct tm tm;
  va_list ap;

  clock_gettime (CLOCK_REALTIME, &t);
  gmtime_r (&t.tv_sec, &tm);
  strftime (ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  dprintf (STDERR_FILENO, "%s.%03ldZ chvm-supervisor[%d]: %s\n", ts, t.tv_nsec / 1000000,
           (int) getpid (), msg);
}

/* ---- the control protocol ---- */

int
supctl_parse_request (const char *line, size_t len, char *cmd, size_t cap, struct err **err)
{
  struct json_tokener *tok;
  struct json_object *o, *v;
  const char *s;
  int rc = -1;

  if (len == 0 || len > SUPCTL_LINE_MAX)
    return err_make (err, 0, "request empty or longer than %d bytes", SUPCTL_LINE_MAX);
  if (memchr (line, '\0', len) != NULL)
    return err_make (err, 0, "request holds a NUL");
  tok = json_tokener_new_ex (8);
  if (tok == NULL)
    return err_make (err, ENOMEM, "request");
  o = json_tokener_parse_ex (tok, line, (int) len);
  if (o == NULL || json_tokener_get_error (tok) != json_tokener_success
      || json_tokener_get_parse_end (tok) != len)
    err_make (err, 0, "request is not one JSON object");
  else if (!json_object_is_type (o, json_type_object) || !json_object_object_get_ex (o, "cmd", &v)
           || !json_object_is_type (v, json_type_string))
    err_make (err, 0, "request has no \"cmd\" string");
  else if ((s = json_object_get_string (v)), strcmp (s, "status") != 0 && strcmp (s, "stop") != 0)
    err_make (err, 0, "unknown command (status or stop)");
  else if (strlen (s) >= cap)
    err_make (err, ENAMETOOLONG, "command");
  else
    {
      snprintf (cmd, cap, "%s", s);
      rc = 0;
    }
  json_object_put (o);
  json_tokener_free (tok);
  return rc;
}

/* ---- connections ---- */

static void sup_wake (struct sup *s, const char *why);
static void conn_pump_c2s (struct conn *c);
static void sup_arm_idle (struct sup *s);
static void live_open (struct sup *s);
static void json_done (struct conn *c);

static void
conn_free (struct conn *c)
{
  struct sup *s = c->s;

  for (struct conn **pp = &s->conns; *pp; pp = &(*pp)->next)
    if (*pp == c)
      {
        *pp = c->next;
        break;
      }
  s->n_conns--;
  if (c->cli)
    bufferevent_free (c->cli);
  if (c->up)
    bufferevent_free (c->up);
  if (c->resp)
    evbuffer_free (c->resp);
  free (c);
}

static void
touch (struct sup *s)
{
  s->last_activity = clock_now_ms ();
}

static void
close_when_flushed (struct bufferevent *bev, void *ctx)
{
  struct conn *c = ctx;

  if (evbuffer_get_length (bufferevent_get_output (bev)) == 0)
    conn_free (c);
}

/* A peer that went, or stopped reading, while its last bytes were written. */
static void
close_on_event (struct bufferevent *bev, short what, void *ctx)
{
  (void) bev;
  (void) what;
  conn_free (ctx);
}

/* Writes what is left to the client, then closes. */
static void
conn_finish (struct conn *c)
{
  if (c->up)
    {
      bufferevent_free (c->up);
      c->up = NULL;
    }
  c->mode = CONN_CLOSE;
  bufferevent_disable (c->cli, EV_READ);
  if (evbuffer_get_length (bufferevent_get_output (c->cli)) == 0)
    {
      conn_free (c);
      return;
    }
  struct timeval tv = { .tv_sec = FLUSH_TIMEOUT_S };
  bufferevent_setcb (c->cli, NULL, close_when_flushed, close_on_event, c);
  bufferevent_set_timeouts (c->cli, NULL, &tv);
  bufferevent_enable (c->cli, EV_WRITE);
}

/* The client went: what it sent last (a WebSocket close frame) still goes
   to the guest, then the connection closes. */
static void
conn_drain_up (struct conn *c)
{
  struct timeval tv = { .tv_sec = FLUSH_TIMEOUT_S };

  bufferevent_free (c->cli);
  c->cli = NULL;
  c->mode = CONN_CLOSE;
  c->opaque = true; /* its commands are nobody's now */
  bufferevent_disable (c->up, EV_READ);
  bufferevent_setwatermark (c->up, EV_WRITE, 0, 0);
  bufferevent_set_timeouts (c->up, NULL, &tv);
  bufferevent_setcb (c->up, NULL, close_when_flushed, close_on_event, c);
}

static void
conn_error (struct conn *c, int status, const char *reason, const char *text)
{
  char buf[1024];
  size_t n = cdp_error_response (status, reason, text, buf, sizeof buf);

  bufferevent_write (c->cli, buf, n);
  conn_finish (c);
}

/* Feeds the bytes of buf (not removed) to a scanner. */
static int
scan_buffer (struct evbuffer *buf, struct ws_scan *sc)
{
  struct evbuffer_iovec small[16], *v = small;
  cleanup_free struct evbuffer_iovec *big = NULL;
  int n = evbuffer_peek (buf, -1, NULL, small, 16), done = 0;

  if (n > 16)
    {
      big = calloc ((size_t) n, sizeof *big);
      if (big == NULL)
        return -1;
      v = big;
      n = evbuffer_peek (buf, -1, NULL, v, n);
    }
  for (int i = 0; i < n && done >= 0; i++)
    {
      int k = ws_scan_feed (sc, v[i].iov_base, v[i].iov_len);
      done = k < 0 ? -1 : done + k;
    }
  return done;
}

static int64_t
outstanding (const struct sup *s)
{
  int64_t n = 0;

  for (const struct conn *c = s->conns; c; c = c->next)
    if (!c->opaque && c->cmds > c->replies)
      n += c->cmds - c->replies;
  return n;
}

static void
wake_answered (struct sup *s)
{
  double ms;
  unsigned k;

  if (!s->wake_open)
    return;
  s->wake_open = false;
  ms = clock_now_ms () - s->wake_t0;
  k = s->wakes % WAKE_KEEP;
  s->wake_ms[k] = ms;
  s->restore_ms[k] = s->wake_restore_ms;
  s->wakes++;
  sup_log ("wake %u: answered %.0f ms after the first byte (restore %.0f ms, %.0f%%)", s->wakes, ms,
           s->wake_restore_ms, ms > 0 ? 100.0 * s->wake_restore_ms / ms : 0.0);
}

/* Upstream bytes to the client. */
static void
up_read (struct bufferevent *bev, void *ctx)
{
  struct conn *c = ctx;
  struct evbuffer *in = bufferevent_get_input (bev);
  struct evbuffer *out = bufferevent_get_output (c->cli);
  size_t n = evbuffer_get_length (in);

  if (n == 0)
    return;
  touch (c->s);
  if (!c->s->ready)
    {
      c->s->ready = true;
      sup_arm_idle (c->s);
    }
  if (c->mode == CONN_JSON)
    {
      if (evbuffer_get_length (c->resp) + n > CDP_BODY_MAX)
        {
          conn_error (c, 502, "Bad Gateway", "chvm: DevTools answer too large");
          return;
        }
      evbuffer_add_buffer (c->resp, in);
      /* DevTools keeps the connection open after its answer.  Only the
         head is looked at (made contiguous): a guest that trickles its
         answer costs no copy of the whole on each read. */
      size_t have = evbuffer_get_length (c->resp), look = have < CDP_HEAD_MAX ? have : CDP_HEAD_MAX;
      if (cdp_response_complete ((const char *) evbuffer_pullup (c->resp, (ssize_t) look), have)
          == 1)
        json_done (c);
      return;
    }
  wake_answered (c->s);
  if (c->mode == CONN_WS && !c->opaque)
    {
      /* The 101 answer's head first, then frames. */
      while (!c->s2c_frames && evbuffer_get_length (in) > 0)
        {
          static const char crlf2[] = "\r\n\r\n";
          unsigned char buf[4096];
          size_t k, len = (size_t) evbuffer_copyout (in, buf, sizeof buf);
          for (k = 0; k < len && !c->s2c_frames; k++)
            {
              c->s2c_head_match = buf[k] == (unsigned char) crlf2[c->s2c_head_match]
                                      ? (uint8_t) (c->s2c_head_match + 1)
                                      : (buf[k] == '\r' ? 1 : 0);
              if (c->s2c_head_match == 4)
                c->s2c_frames = true;
            }
          evbuffer_remove_buffer (in, out, k);
        }
      if (c->s2c_frames && evbuffer_get_length (in) > 0)
        {
          int k = scan_buffer (in, &c->s2c);
          if (k < 0)
            c->opaque = true;
          else
            c->replies += k;
        }
    }
  evbuffer_add_buffer (out, in);
  if (evbuffer_get_length (out) > QUEUE_MAX)
    bufferevent_disable (bev, EV_READ);
}

static void
cli_write (struct bufferevent *bev, void *ctx)
{
  struct conn *c = ctx;

  (void) bev;
  if (c->up && evbuffer_get_length (bufferevent_get_output (c->cli)) <= QUEUE_MAX / 2)
    bufferevent_enable (c->up, EV_READ);
}

static void
up_write (struct bufferevent *bev, void *ctx)
{
  struct conn *c = ctx;

  (void) bev;
  if (evbuffer_get_length (bufferevent_get_output (c->up)) <= QUEUE_MAX / 2)
    bufferevent_enable (c->cli, EV_READ);
}

/* The collected /json answer, rewritten, to the client. */
static void
json_done (struct conn *c)
{
  size_t len = evbuffer_get_length (c->resp);
  const char *resp = (const char *) evbuffer_pullup (c->resp, -1);
  size_t cap = len * 2 + 4096;
  cleanup_free char *out = malloc (cap);
  long n;

  wake_answered (c->s);
  if (out == NULL || resp == NULL)
    {
      conn_error (c, 502, "Bad Gateway", "chvm: out of memory");
      return;
    }
  n = cdp_rewrite_response (resp, len, c->s->up_hostport, c->to_host, out, cap);
  if (n < 0)
    bufferevent_write (c->cli, resp, len);
  else
    {
      size_t hend = cdp_head_end (out, (size_t) n);
      char path[256];
      if (strncmp (c->req.target, "/json/version", 13) == 0 && hend > 0
          && cdp_browser_path (out + hend, (size_t) n - hend, path, sizeof path) == 0)
        snprintf (c->s->browser_path, sizeof c->s->browser_path, "%s", path);
      bufferevent_write (c->cli, out, (size_t) n);
    }
  conn_finish (c);
}

static void
up_event (struct bufferevent *bev, short what, void *ctx)
{
  struct conn *c = ctx;

  (void) bev;
  if (what & BEV_EVENT_CONNECTED)
    {
      int one = 1;
      setsockopt (bufferevent_getfd (c->up), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      struct timeval tv = { .tv_sec = 300 };
      c->up_ready = true;
      bufferevent_set_timeouts (c->up, c->mode != CONN_WS ? &tv : NULL, NULL);
      bufferevent_write (c->up, c->up_head, (size_t) c->up_head_len);
      conn_pump_c2s (c);
      return;
    }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
    {
      /* What is left of its input first. */
      if (evbuffer_get_length (bufferevent_get_input (c->up)) > 0)
        up_read (c->up, c);
      if (c->mode == CONN_CLOSE)
        return;
      if (c->mode == CONN_JSON && (what & BEV_EVENT_EOF))
        {
          json_done (c);
          return;
        }
      if (!c->up_ready)
        {
          char msg[256];
          snprintf (msg, sizeof msg, "chvm: VM %s: cannot reach DevTools at %s:%u", c->s->name,
                    c->s->up_host, c->s->up_port);
          conn_error (c, 502, "Bad Gateway", msg);
          return;
        }
      conn_finish (c);
    }
}

static void
conn_connect_up (struct conn *c)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) c->s->up_port) };

  if (c->up != NULL)
    return;
  inet_pton (AF_INET, c->s->up_host, &sin.sin_addr);
  c->up = bufferevent_socket_new (c->s->base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (c->up == NULL)
    {
      conn_error (c, 502, "Bad Gateway", "chvm: out of memory");
      return;
    }
  bufferevent_setcb (c->up, up_read, up_write, up_event, c);
  bufferevent_setwatermark (c->up, EV_WRITE, QUEUE_MAX / 2, 0);
  {
    /* A connect waits on writing. */
    struct timeval tv = { .tv_sec = UPSTREAM_CONNECT_S };
    bufferevent_set_timeouts (c->up, NULL, &tv);
  }
  bufferevent_enable (c->up, EV_READ | EV_WRITE);
  if (bufferevent_socket_connect (c->up, (struct sockaddr *) &sin, sizeof sin) < 0)
    {
      bufferevent_free (c->up);
      c->up = NULL;
      conn_error (c, 502, "Bad Gateway", "chvm: cannot connect to the guest");
    }
}

/* Client bytes to the guest, unless the VM is not running: then they stay
   (held) and the VM wakes. */
static void
conn_pump_c2s (struct conn *c)
{
  struct evbuffer *in = bufferevent_get_input (c->cli);

  if (c->mode == CONN_HEAD || c->mode == CONN_CLOSE || evbuffer_get_length (in) == 0)
    return;
  if (c->s->state != SUP_RUNNING)
    {
      sup_wake (c->s, "a byte from a client");
      return;
    }
  if (!c->up_ready)
    return;
  if (c->mode == CONN_WS && !c->opaque)
    {
      int k = scan_buffer (in, &c->c2s);
      if (k < 0)
        c->opaque = true;
      else
        c->cmds += k;
    }
  evbuffer_add_buffer (bufferevent_get_output (c->up), in);
  if (evbuffer_get_length (bufferevent_get_output (c->up)) > QUEUE_MAX)
    bufferevent_disable (c->cli, EV_READ);
}

/* Parses the client's head once complete and decides where it goes. */
static void
conn_head (struct conn *c)
{
  struct evbuffer *in = bufferevent_get_input (c->cli);
  size_t len = evbuffer_get_length (in), end;
  const char *why = NULL;
  char head[CDP_HEAD_MAX + 1];

  end = cdp_head_end (
      (const char *) evbuffer_pullup (in, len < CDP_HEAD_MAX ? (ssize_t) len : CDP_HEAD_MAX),
      len < CDP_HEAD_MAX ? len : CDP_HEAD_MAX);
  if (end == 0)
    {
      if (len >= CDP_HEAD_MAX)
        conn_error (c, 431, "Request Header Fields Too Large", "chvm: request head too large");
      return;
    }
  evbuffer_remove (in, head, end);
  head[end] = '\0';
  if (cdp_parse_request (head, end, &c->req, &why) < 0)
    {
      char msg[128];
      snprintf (msg, sizeof msg, "chvm: %s", why);
      conn_error (c, 400, "Bad Request", msg);
      return;
    }
  c->up_head_len
      = cdp_upstream_head (head, end, &c->req, c->s->up_hostport, c->up_head, sizeof c->up_head);
  if (c->up_head_len < 0)
    {
      conn_error (c, 431, "Request Header Fields Too Large", "chvm: request head too large");
      return;
    }
  if (!cdp_host_allowed (&c->req))
    {
      conn_error (c, 403, "Forbidden",
                  "chvm: Host header is specified and is not an IP address or localhost");
      return;
    }
  bufferevent_set_timeouts (c->cli, NULL, NULL);
  snprintf (c->to_host, sizeof c->to_host, "%s", cdp_client_host (&c->req, c->s->listen));
  c->mode = c->req.upgrade ? CONN_WS : c->req.rewrite ? CONN_JSON : CONN_HTTP;
  if (c->mode == CONN_JSON && (c->resp = evbuffer_new ()) == NULL)
    {
      conn_error (c, 502, "Bad Gateway", "chvm: out of memory");
      return;
    }
  if (c->s->state != SUP_RUNNING)
    {
      sup_wake (c->s, "a new client");
      return;
    }
  conn_connect_up (c);
}

static void
cli_read (struct bufferevent *bev, void *ctx)
{
  struct conn *c = ctx;

  (void) bev;
  touch (c->s);
  /* Either may end c (conn_head wakes the VM once the head is whole: the
     accept already did for a VM in standby). */
  if (c->mode == CONN_HEAD)
    conn_head (c);
  else
    conn_pump_c2s (c);
}

static void
cli_event (struct bufferevent *bev, short what, void *ctx)
{
  struct conn *c = ctx;

  (void) bev;
  if (what & BEV_EVENT_TIMEOUT)
    {
      char msg[96];
      snprintf (msg, sizeof msg, "chvm: no whole request head in %d s", HEAD_TIMEOUT_S);
      conn_error (c, 408, "Request Timeout", msg);
      return;
    }
  if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
    return;
  /* A client that closed its side after a whole request still gets the
     answer (reading has stopped; conn_finish ends it). */
  if (!(what & BEV_EVENT_ERROR) && (c->mode == CONN_HTTP || c->mode == CONN_JSON))
    return;
  /* Its last bytes (a WebSocket close frame) go on first. */
  if (c->up_ready && c->up && c->s->state == SUP_RUNNING
      && evbuffer_get_length (bufferevent_get_input (c->cli)) > 0)
    conn_pump_c2s (c);
  if (c->up_ready && c->up && evbuffer_get_length (bufferevent_get_output (c->up)) > 0)
    conn_drain_up (c);
  else
    conn_free (c);
}

static void
cdp_accept (struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *ctx)
{
  struct sup *s = ctx;
  struct conn *c;
  int one = 1;

  (void) l;
  (void) sa;
  (void) salen;
  touch (s);
  c = calloc (1, sizeof *c);
  if (c == NULL)
    {
      close (fd);
      return;
    }
  c->s = s;
  ws_scan_init (&c->c2s);
  ws_scan_init (&c->s2c);
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->cli = bufferevent_socket_new (s->base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (c->cli == NULL)
    {
      close (fd);
      free (c);
      return;
    }
  c->next = s->conns;
  s->conns = c;
  s->n_conns++;
  bufferevent_setcb (c->cli, cli_read, cli_write, cli_event, c);
  /* Held bytes stop at HOLD_MAX: the rest waits in the kernel (TCP). */
  bufferevent_setwatermark (c->cli, EV_READ, 0, HOLD_MAX);
  bufferevent_setwatermark (c->cli, EV_WRITE, QUEUE_MAX / 2, 0);
  {
    struct timeval tv = { .tv_sec = HEAD_TIMEOUT_S };
    bufferevent_set_timeouts (c->cli, &tv, NULL);
  }
  bufferevent_enable (c->cli, EV_READ | EV_WRITE);
  if (s->n_conns > s->rec.cdp_max_clients)
    {
      char msg[128];
      snprintf (msg, sizeof msg, "chvm: VM %s: too many CDP clients (at most %u)", s->name,
                s->rec.cdp_max_clients);
      sup_log ("refused a client: %u open, at most %u", s->n_conns - 1, s->rec.cdp_max_clients);
      conn_error (c, 503, "Service Unavailable", msg);
      return;
    }
  if (s->state != SUP_RUNNING)
    sup_wake (s, "a new client");
}

static void
accept_resume (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;

  (void) fd;
  (void) what;
  evconnlistener_enable (s->cdp);
}

/* accept failed (out of fds, most likely): a pause, not a busy loop. */
static void
cdp_accept_error (struct evconnlistener *l, void *ctx)
{
  struct sup *s = ctx;
  struct timeval tv = { .tv_sec = 1 };
  int e = EVUTIL_SOCKET_ERROR ();

  sup_log ("accept on %s: %s; accepting again in 1 s", s->listen, strerror (e));
  evconnlistener_disable (l);
  event_add (s->accept_ev, &tv);
}

/* ---- the VM's state: vm.json, the VMM, our children ---- */

static void
sup_quit (struct sup *s, const char *why)
{
  sup_log ("exiting: %s", why);
  event_base_loopbreak (s->base);
}

static void vmm_exited (evutil_socket_t fd, short what, void *ctx);

static void
watch_vmm (struct sup *s, pid_t pid)
{
  if (s->vmm_pid == pid && s->vmm_ev != NULL)
    return;
  if (s->vmm_ev != NULL)
    {
      event_free (s->vmm_ev);
      s->vmm_ev = NULL;
    }
  if (s->vmm_fd >= 0)
    close (s->vmm_fd);
  s->vmm_fd = -1;
  s->vmm_pid = pid;
  if (pid <= 0)
    return;
  s->vmm_fd = pidfd_open (pid, 0);
  if (s->vmm_fd < 0)
    return;
  s->vmm_ev = event_new (s->base, s->vmm_fd, EV_READ, vmm_exited, s);
  if (s->vmm_ev != NULL)
    event_add (s->vmm_ev, NULL);
}

/* Held clients go on once the VM runs again. */
static void
resume_conns (struct sup *s)
{
  for (struct conn *c = s->conns, *next; c; c = next)
    {
      next = c->next;
      if (c->mode == CONN_HEAD || c->mode == CONN_CLOSE)
        continue;
      if (c->up == NULL)
        conn_connect_up (c);
      else
        conn_pump_c2s (c);
    }
}

/* A wake failed: clients waiting for an answer get one saying so. */
static void
fail_held (struct sup *s)
{
  char msg[768];

  snprintf (msg, sizeof msg,
            "chvm: VM %s could not be restored: %s (chvm logs --source supervisor %s)", s->name,
            s->last_error, s->name);
  for (struct conn *c = s->conns, *next; c; c = next)
    {
      next = c->next;
      if (c->mode == CONN_CLOSE)
        continue;
      if (c->up == NULL && c->mode != CONN_HEAD)
        conn_error (c, 503, "Service Unavailable", msg);
      else if (evbuffer_get_length (bufferevent_get_input (c->cli)) > 0)
        /* An open WebSocket whose bytes cannot be delivered. */
        conn_finish (c);
    }
}

static bool
has_held (const struct sup *s)
{
  for (const struct conn *c = s->conns; c; c = c->next)
    if (c->mode != CONN_CLOSE
        && (evbuffer_get_length (bufferevent_get_input (c->cli)) > 0
            || (c->mode != CONN_HEAD && c->up == NULL)))
      return true;
  return false;
}

/* Reads vm.json again and follows what it says (a standby or restore
   someone else ran, a stop, an rm). */
static void
sup_sync (struct sup *s)
{
  cleanup_err struct err *e = NULL;
  char snap[VM_PATH_MAX + 16];
  struct stat st;
  enum sup_state was = s->state;

  if (s->child > 0)
    return;
  if (vmrec_load (s->root, s->name, &s->rec, &e) < 0)
    {
      if (access (s->dir, F_OK) < 0)
        sup_quit (s, "the VM was removed");
      return;
    }
  snprintf (snap, sizeof snap, "%s/snapshot", s->dir);
  if (s->rec.state == VM_STATUS_STANDBY && stat (snap, &st) == 0)
    {
      s->state = SUP_STANDBY;
      watch_vmm (s, 0);
    }
  else if ((s->rec.state == VM_STATUS_RUNNING || s->rec.state == VM_STATUS_PAUSED)
           && proc_pid_names_dir (s->rec.rt.vmm_pid, s->dir))
    {
      s->state = SUP_RUNNING;
      watch_vmm (s, s->rec.rt.vmm_pid);
    }
  else
    {
      sup_quit (s, s->rec.state == VM_STATUS_STOPPED ? "the VM was stopped" : "the VMM is gone");
      return;
    }
  if (was != s->state)
    sup_log ("VM %s is %s", s->name, sup_state_names[s->state]);
  if (s->rec.cdp_max_clients == 0)
    s->rec.cdp_max_clients = SUPERVISOR_DEFAULT_MAX_CLIENTS;
  /* vm.json may carry a new --idle-standby (chvm supervise). */
  if (s->rec.idle_standby_s == 0)
    event_del (s->idle_ev);
  else if (s->state == SUP_RUNNING)
    sup_arm_idle (s);
  if (s->state == SUP_RUNNING && was == SUP_RUNNING && s->live_lost)
    live_open (s);
  if (s->state == SUP_RUNNING && was != SUP_RUNNING)
    {
      /* Recorded running by a restore, which waits for the browser. */
      if (was == SUP_STANDBY || was == SUP_WAKING)
        s->ready = true;
      touch (s);
      live_open (s);
      resume_conns (s);
      sup_arm_idle (s);
    }
  else if (s->state == SUP_STANDBY && was != SUP_STANDBY && has_held (s))
    sup_wake (s, "a client waiting");
}

static void
vmm_exited (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;

  (void) fd;
  (void) what;
  if (s->vmm_ev != NULL)
    {
      event_free (s->vmm_ev);
      s->vmm_ev = NULL;
    }
  close (s->vmm_fd);
  s->vmm_fd = -1;
  s->vmm_pid = 0;
  sup_sync (s);
}

static void
on_inotify (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  char buf[4096] __attribute__ ((aligned (__alignof__(struct inotify_event))));
  bool sync = false;
  ssize_t n;

  (void) what;
  while ((n = read (fd, buf, sizeof buf)) > 0)
    for (char *p = buf; p < buf + n;)
      {
        const struct inotify_event *ev = (const struct inotify_event *) p;
        if (ev->mask & (IN_DELETE_SELF | IN_IGNORED))
          {
            sup_quit (s, "the VM directory was removed");
            return;
          }
        if (ev->len > 0 && strcmp (ev->name, "vm.json") == 0)
          sync = true;
        p += sizeof *ev + ev->len;
      }
  if (sync)
    sup_sync (s);
}

/* `chvm --state-dir ROOT CMD NAME`, output into our log. */
static int
spawn_chvm (struct sup *s, const char *cmd)
{
  const char *argv[] = { "chvm", "--state-dir", s->root, cmd, s->name, NULL };
  /* Test seam (like CHVM_FAULT): another program in chvm's place, for a
     test of the supervisor's own logic without a VM. */
  const char *exe = getenv ("CHVM_SUPERVISOR_EXEC");
  posix_spawn_file_actions_t fa;
  int r;

  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addclosefrom_np (&fa, 3);
  r = posix_spawn (&s->child, exe != NULL && exe[0] ? exe : "/proc/self/exe", &fa, NULL,
                   (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  if (r != 0)
    {
      s->child = 0;
      snprintf (s->last_error, sizeof s->last_error, "chvm %s: %s", cmd, strerror (r));
      sup_log ("%s", s->last_error);
      return -1;
    }
  s->child_t0 = clock_now_ms ();
  return 0;
}

static void
sup_wake (struct sup *s, const char *why)
{
  if (s->state == SUP_SLEEPING)
    {
      s->wake_pending = true;
      return;
    }
  if (s->state != SUP_STANDBY || s->child > 0)
    return;
  if (!s->wake_open)
    {
      s->wake_open = true;
      s->wake_t0 = clock_now_ms ();
    }
  s->wake_pending = false;
  sup_log ("wake: %s; restoring VM %s", why, s->name);
  if (spawn_chvm (s, "restore") < 0)
    {
      s->wake_fails++;
      s->wake_open = false;
      fail_held (s);
      return;
    }
  s->state = SUP_WAKING;
}

static void
child_exited (struct sup *s, int status)
{
  enum sup_state was = s->state;
  double ms = clock_now_ms () - s->child_t0;
  bool ok = WIFEXITED (status) && WEXITSTATUS (status) == 0;

  s->child = 0;
  if (was == SUP_WAKING)
    {
      s->wake_restore_ms = ms;
      if (ok)
        sup_log ("wake: restore done in %.0f ms", ms);
      else
        {
          snprintf (s->last_error, sizeof s->last_error, "chvm restore exited with status %d",
                    WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status));
          sup_log ("wake failed after %.0f ms: %s", ms, s->last_error);
          s->wake_fails++;
          s->wake_open = false;
        }
    }
  else if (was == SUP_SLEEPING)
    {
      if (ok)
        {
          s->idle_standbys++;
          sup_log ("idle standby %u done in %.0f ms", s->idle_standbys, ms);
        }
      else
        sup_log ("idle standby failed after %.0f ms (status %d); the VM runs on", ms,
                 WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status));
    }
  /* What sup_sync compares with: a standby that ran makes it wake
     whoever waits; a failed restore does not try again by itself (the
     waiting clients get a 503, a new one tries again). */
  s->state = was == SUP_WAKING ? SUP_STANDBY : SUP_RUNNING;
  sup_sync (s);
  if (was == SUP_WAKING && !ok && s->state == SUP_STANDBY)
    fail_held (s);
  if (was == SUP_SLEEPING && s->state == SUP_RUNNING)
    {
      /* The standby failed: who came meanwhile goes on. */
      s->wake_pending = false;
      resume_conns (s);
    }
  if (was == SUP_SLEEPING && s->state == SUP_STANDBY && s->child == 0 && s->wake_pending)
    {
      s->wake_pending = false;
      sup_wake (s, "a byte came during the standby");
    }
  if (s->state == SUP_RUNNING)
    sup_arm_idle (s);
}

static void
on_signal (evutil_socket_t sig, short what, void *ctx)
{
  struct sup *s = ctx;
  int status;
  pid_t pid;

  (void) what;
  if (sig != SIGCHLD)
    {
      if (s->child > 0)
        kill (s->child, SIGTERM);
      sup_quit (s, sig == SIGTERM ? "SIGTERM" : "signal");
      return;
    }
  while ((pid = waitpid (-1, &status, WNOHANG)) > 0)
    if (pid == s->child)
      child_exited (s, status);
}

/* ---- the live view's packets ---- */

static void
live_close (struct sup *s)
{
  if (s->live_ev != NULL)
    event_free (s->live_ev);
  s->live_ev = NULL;
  event_del (s->live_pause);
  if (s->live_fd >= 0)
    close (s->live_fd);
  s->live_fd = -1;
}

static void
live_resume (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;

  (void) fd;
  (void) what;
  if (s->live_ev != NULL)
    event_add (s->live_ev, NULL);
}

static void
on_live_packet (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  struct timeval pause = { .tv_sec = 1 };
  uint8_t pkt[UDPWATCH_SNAP];
  ssize_t n;
  int k;

  (void) what;
  /* A bounded batch: the rest waits for the next turn of the loop. */
  for (k = 0; k < 64 && (n = recv (fd, pkt, sizeof pkt, MSG_TRUNC)) >= 0; k++)
    if (s->state == SUP_RUNNING
        && udpwatch_match (pkt, (size_t) n < sizeof pkt ? (size_t) n : sizeof pkt, s->rec.publish,
                           s->rec.n_publish))
      {
        /* Seen: what is queued is no newer (dropped, else the queue
           would count for seconds after the last), then a second's rest
           (the idle clock counts seconds), whatever the packet rate. */
        s->live_last = clock_now_ms ();
        for (k = 0; k < 4096 && recv (fd, pkt, sizeof pkt, MSG_TRUNC) >= 0; k++)
          ;
        event_del (s->live_ev);
        event_add (s->live_pause, &pause);
        return;
      }
  if (k < 64 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    {
      /* The tap went down or away: opened again once the VM runs (again). */
      sup_log ("live-view watch on %s: %s; closed", s->rec.tap, strerror (errno));
      live_close (s);
      s->live_lost = true;
    }
}

/* (Re)opens the watch on the tap, where the VM has one and a UDP publish. */
static void
live_open (struct sup *s)
{
  cleanup_err struct err *e = NULL;
  char buf[256];

  live_close (s);
  s->live_lost = false;
  if (s->rec.tap[0] == '\0' || !udpwatch_wanted (s->rec.publish, s->rec.n_publish))
    return;
  s->live_fd = udpwatch_open (s->rec.tap, &e);
  if (s->live_fd < 0)
    {
      s->live_fd = -1;
      sup_log ("live-view sessions do not count for idle standby: %s",
               err_str (e, buf, sizeof buf));
      return;
    }
  s->live_ev = event_new (s->base, s->live_fd, EV_READ | EV_PERSIST, on_live_packet, s);
  if (s->live_ev == NULL || event_add (s->live_ev, NULL) < 0)
    live_close (s);
}

/* ---- the idle clock ---- */

static void
on_idle (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  double idle_ms = s->rec.idle_standby_s * 1000.0, quiet, live_quiet;
  char live[64] = "";
  int64_t out;

  (void) fd;
  (void) what;
  if (s->state != SUP_RUNNING || s->rec.idle_standby_s == 0 || s->child > 0 || !s->ready)
    return;
  quiet = clock_now_ms () - s->last_activity;
  live_quiet = clock_now_ms () - s->live_last;
  if (quiet < idle_ms || live_quiet < idle_ms)
    {
      sup_arm_idle (s);
      return;
    }
  out = outstanding (s);
  if (out > 0 || has_held (s))
    {
      /* A command still runs in the browser: not idle; look again later. */
      touch (s);
      sup_arm_idle (s);
      return;
    }
  if (s->live_fd >= 0 && s->live_last > 0)
    snprintf (live, sizeof live, ", no live-view packet for %.1f s", live_quiet / 1000);
  else if (s->live_fd >= 0)
    snprintf (live, sizeof live, ", no live-view packet yet");
  sup_log ("idle standby: no CDP byte for %.1f s, %u client(s) open, nothing outstanding%s",
           quiet / 1000, s->n_conns, live);
  if (spawn_chvm (s, "standby") == 0)
    s->state = SUP_SLEEPING;
}

static void
sup_arm_idle (struct sup *s)
{
  double last = s->last_activity > s->live_last ? s->last_activity : s->live_last;
  double left;
  struct timeval tv;

  if (s->rec.idle_standby_s == 0 || s->idle_ev == NULL || !s->ready)
    return;
  left = s->rec.idle_standby_s * 1000.0 - (clock_now_ms () - last);
  if (left < 10)
    left = 10;
  tv.tv_sec = (time_t) (left / 1000);
  tv.tv_usec = (suseconds_t) ((left - tv.tv_sec * 1000.0) * 1000);
  event_add (s->idle_ev, &tv);
}

/* ---- the control socket ---- */

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
pct (const double *v, unsigned n, double p)
{
  double sorted[WAKE_KEEP];

  if (n == 0)
    return 0;
  memcpy (sorted, v, n * sizeof *v);
  qsort (sorted, n, sizeof *sorted, cmp_double);
  return sorted[(unsigned) (p * (n - 1) + 0.5)];
}

static char *
status_json (struct sup *s)
{
  struct json_object *o = json_object_new_object (), *w = json_object_new_array (),
                     *r = json_object_new_array ();
  unsigned n = s->wakes < WAKE_KEEP ? s->wakes : WAKE_KEEP;
  char url[384];
  char *text;

  json_object_object_add (o, "pid", json_object_new_int (getpid ()));
  json_object_object_add (o, "state", json_object_new_string (sup_state_names[s->state]));
  json_object_object_add (o, "endpoint", json_object_new_string (s->listen));
  snprintf (url, sizeof url, "ws://%s%s", s->listen, s->browser_path);
  json_object_object_add (o, "ws", json_object_new_string (s->browser_path[0] ? url : ""));
  json_object_object_add (o, "upstream", json_object_new_string (s->up_hostport));
  json_object_object_add (o, "clients", json_object_new_int ((int) s->n_conns));
  json_object_object_add (o, "max_clients", json_object_new_int ((int) s->rec.cdp_max_clients));
  json_object_object_add (o, "idle_standby", json_object_new_int ((int) s->rec.idle_standby_s));
  json_object_object_add (o, "idle_ms",
                          json_object_new_int64 ((int64_t) (clock_now_ms () - s->last_activity)));
  json_object_object_add (o, "live_view_ms",
                          json_object_new_int64 (s->live_fd >= 0 && s->live_last > 0
                                                     ? (int64_t) (clock_now_ms () - s->live_last)
                                                     : -1));
  json_object_object_add (o, "outstanding", json_object_new_int64 (outstanding (s)));
  json_object_object_add (o, "wakes", json_object_new_int ((int) s->wakes));
  json_object_object_add (o, "wake_failures", json_object_new_int ((int) s->wake_fails));
  json_object_object_add (o, "idle_standbys", json_object_new_int ((int) s->idle_standbys));
  for (unsigned i = 0; i < n; i++)
    {
      json_object_array_add (w, json_object_new_int64 ((int64_t) s->wake_ms[i]));
      json_object_array_add (r, json_object_new_int64 ((int64_t) s->restore_ms[i]));
    }
  json_object_object_add (o, "wake_ms", w);
  json_object_object_add (o, "restore_ms", r);
  json_object_object_add (o, "wake_p50_ms",
                          json_object_new_int64 ((int64_t) pct (s->wake_ms, n, 0.5)));
  json_object_object_add (o, "wake_p95_ms",
                          json_object_new_int64 ((int64_t) pct (s->wake_ms, n, 0.95)));
  json_object_object_add (o, "last_error", json_object_new_string (s->last_error));
  text = strdup (
      json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o);
  return text;
}

static void
ctl_done (struct bufferevent *bev, void *ctx)
{
  (void) ctx;
  if (evbuffer_get_length (bufferevent_get_output (bev)) == 0)
    bufferevent_free (bev);
}

static void
ctl_event (struct bufferevent *bev, short what, void *ctx)
{
  (void) what;
  (void) ctx;
  bufferevent_free (bev);
}

static void
ctl_read (struct bufferevent *bev, void *ctx)
{
  struct sup *s = ctx;
  struct evbuffer *in = bufferevent_get_input (bev);
  cleanup_err struct err *e = NULL;
  cleanup_free char *line = NULL, *reply = NULL;
  size_t n = 0;
  char cmd[16];

  line = evbuffer_readln (in, &n, EVBUFFER_EOL_LF);
  if (line == NULL)
    {
      if (evbuffer_get_length (in) > SUPCTL_LINE_MAX)
        bufferevent_free (bev);
      return;
    }
  bufferevent_disable (bev, EV_READ);
  if (supctl_parse_request (line, n, cmd, sizeof cmd, &e) < 0)
    {
      struct json_object *o = json_object_new_object ();
      json_object_object_add (o, "error", json_object_new_string (e->msg ? e->msg : "bad request"));
      reply = strdup (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN));
      json_object_put (o);
    }
  else if (strcmp (cmd, "stop") == 0)
    {
      reply = strdup ("{\"stopping\":true}");
      sup_quit (s, "asked to stop");
    }
  else
    reply = status_json (s);
  if (reply != NULL)
    {
      bufferevent_write (bev, reply, strlen (reply));
      bufferevent_write (bev, "\n", 1);
    }
  bufferevent_setcb (bev, NULL, ctl_done, ctl_event, s);
  ctl_done (bev, s);
}

static void
ctl_accept (struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *ctx)
{
  struct sup *s = ctx;
  struct bufferevent *bev = bufferevent_socket_new (s->base, fd, BEV_OPT_CLOSE_ON_FREE);
  struct timeval tv = { .tv_sec = 5 };

  (void) l;
  (void) sa;
  (void) salen;
  if (bev == NULL)
    {
      close (fd);
      return;
    }
  bufferevent_setwatermark (bev, EV_READ, 0, SUPCTL_LINE_MAX + 1);
  bufferevent_set_timeouts (bev, &tv, &tv);
  bufferevent_setcb (bev, ctl_read, NULL, ctl_event, s);
  bufferevent_enable (bev, EV_READ | EV_WRITE);
}

/* ---- setup ---- */

/* "ADDR:PORT" (IPv4) into sin. */
static int
parse_endpoint (const char *s, struct sockaddr_in *sin, struct err **err)
{
  const char *colon = strrchr (s, ':');
  char addr[64];
  uint64_t port;

  memset (sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  if (colon == NULL || (size_t) (colon - s) >= sizeof addr
      || num_parse_u64_str (colon + 1, 65535, &port) < 0 || port == 0)
    return err_make (err, 0, "bad CDP endpoint '%s' (ADDR:PORT)", s);
  memcpy (addr, s, (size_t) (colon - s));
  addr[colon - s] = '\0';
  if (inet_pton (AF_INET, addr, &sin->sin_addr) != 1)
    return err_make (err, 0, "bad CDP endpoint address '%s' (IPv4)", addr);
  sin->sin_port = htons ((uint16_t) port);
  return 0;
}

/* Where the guest's DevTools is reached: its address on the tap, else the
   port QEMU's user network forwards to it. */
static int
find_upstream (struct sup *s, struct err **err)
{
  if (vm_cdp_upstream (&s->rec, s->up_host, sizeof s->up_host, &s->up_port) < 0)
    return err_make (err, 0, "VM %s: its DevTools port %u is not published", s->name,
                     s->rec.cdp_port);
  snprintf (s->up_hostport, sizeof s->up_hostport, "%s:%u", s->up_host, s->up_port);
  return 0;
}

static int
sup_setup (struct sup *s, struct err **err)
{
  struct sockaddr_in sin;
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  char path[VM_PATH_MAX + 32], line[24];
  const int sigs[] = { SIGCHLD, SIGTERM, SIGINT };
  int n;

  struct rlimit rl;

  /* Two fds a client, up to 4096 clients: the hard limit, not the soft. */
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      (void) setrlimit (RLIMIT_NOFILE, &rl);
    }
  if (vmrec_load (s->root, s->name, &s->rec, err) < 0)
    return -1;
  if (s->rec.cdp_endpoint[0] == '\0')
    return err_make (err, 0, "VM %s has no CDP endpoint (made before supervisors)", s->name);
  if (s->rec.cdp_max_clients == 0)
    s->rec.cdp_max_clients = SUPERVISOR_DEFAULT_MAX_CLIENTS;
  if (parse_endpoint (s->rec.cdp_endpoint, &sin, err) < 0 || find_upstream (s, err) < 0)
    return -1;
  snprintf (s->listen, sizeof s->listen, "%s", s->rec.cdp_endpoint);
  s->base = event_base_new ();
  if (s->base == NULL)
    return err_make (err, ENOMEM, "event base");
  /* In the namespace chvm was started in: the clients' side. */
  s->cdp = evconnlistener_new_bind (
      s->base, cdp_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
      128, (struct sockaddr *) &sin, sizeof sin);
  if (s->cdp == NULL)
    return err_make (err, errno, "listen on %s", s->listen);
  s->accept_ev = evtimer_new (s->base, accept_resume, s);
  s->live_pause = evtimer_new (s->base, live_resume, s);
  if (s->accept_ev == NULL || s->live_pause == NULL)
    return err_make (err, ENOMEM, "events");
  evconnlistener_set_error_cb (s->cdp, cdp_accept_error);
  if (path_in (path, sizeof path, s->dir, "supervisor.pid", err) < 0)
    return -1;
  n = snprintf (line, sizeof line, "%d\n", (int) getpid ());
  if (fs_write_atomic (path, line, (size_t) n, 0644, err) < 0)
    return -1;
  if (path_in (path, sizeof path, s->dir, "supervisor.sock", err) < 0)
    return -1;
  if (strlen (path) >= sizeof sun.sun_path)
    return err_make (err, ENAMETOOLONG, "%s", path);
  memcpy (sun.sun_path, path, strlen (path) + 1);
  unlink (path);
  s->ctl = evconnlistener_new_bind (s->base, ctl_accept, s,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
                                    (struct sockaddr *) &sun, sizeof sun);
  if (s->ctl == NULL)
    return err_make (err, errno, "listen on %s", path);
  chmod (path, 0600);
  /* The guest's side: the tap lives in the VM's namespace. */
  if (net_enter_netns (s->rec.netns, err) < 0)
    return -1;
  s->ino_fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  if (s->ino_fd < 0 || inotify_add_watch (s->ino_fd, s->dir, IN_MOVED_TO | IN_DELETE_SELF) < 0)
    return err_make (err, errno, "inotify on %s", s->dir);
  s->ino_ev = event_new (s->base, s->ino_fd, EV_READ | EV_PERSIST, on_inotify, s);
  s->idle_ev = evtimer_new (s->base, on_idle, s);
  for (size_t i = 0; i < 3; i++)
    {
      s->sig_ev[i] = evsignal_new (s->base, sigs[i], on_signal, s);
      if (s->sig_ev[i] == NULL || event_add (s->sig_ev[i], NULL) < 0)
        return err_make (err, errno, "signal events");
    }
  if (s->ino_ev == NULL || s->idle_ev == NULL || event_add (s->ino_ev, NULL) < 0)
    return err_make (err, ENOMEM, "events");
  return 0;
}

static void
on_alarm (int sig)
{
  (void) sig;
}

/* The lock, waiting at most `seconds` for a supervisor that is exiting: it
   closes its listeners, removes its pid file, then lets the lock go. */
static int
take_lock (int fd, unsigned seconds)
{
  struct sigaction sa = { .sa_handler = on_alarm }, old; /* no SA_RESTART: EINTR */
  int r;

  if (flock (fd, LOCK_EX | LOCK_NB) == 0)
    return 0;
  if (errno != EWOULDBLOCK)
    return -1;
  sigaction (SIGALRM, &sa, &old);
  alarm (seconds);
  r = flock (fd, LOCK_EX);
  alarm (0);
  sigaction (SIGALRM, &old, NULL);
  return r;
}

int
supervisor_main (int argc, char **argv)
{
  cleanup_err struct err *err = NULL;
  cleanup_free struct sup *s = calloc (1, sizeof *s);
  cleanup_close int lock_fd = -1, log_fd = -1;
  char path[VM_PATH_MAX + 32], tmp[VM_PATH_MAX], buf[512], real[PATH_MAX];

  if ((argc != 2 && (argc != 3 || strcmp (argv[2], "--booting") != 0)) || s == NULL)
    {
      fprintf (stderr, "usage: chvm %s DIR [--booting] (started by chvm run and restore)\n",
               SUPERVISOR_CMD);
      return 2;
    }
  /* --booting: run did not wait for the browser (--no-wait). */
  s->ready = argc == 2;
  s->vmm_fd = -1;
  s->ino_fd = -1;
  s->live_fd = -1;
  if (realpath (argv[1], real) == NULL || strlen (real) >= sizeof s->dir)
    {
      fprintf (stderr, "chvm %s: %s: %s\n", SUPERVISOR_CMD, argv[1], strerror (errno));
      return 1;
    }
  memcpy (s->dir, real, strlen (real) + 1);
  snprintf (tmp, sizeof tmp, "%s", s->dir);
  snprintf (s->name, sizeof s->name, "%s", basename (tmp));
  snprintf (tmp, sizeof tmp, "%s", s->dir);
  snprintf (s->root, sizeof s->root, "%s", dirname (dirname (tmp)));
  if (path_in (path, sizeof path, s->dir, "supervisor.log", &err) < 0)
    return 1;
  log_fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd >= 0)
    {
      dup2 (log_fd, STDOUT_FILENO);
      dup2 (log_fd, STDERR_FILENO);
    }
  if (path_in (path, sizeof path, s->dir, "supervisor.lock", &err) < 0)
    return 1;
  lock_fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || take_lock (lock_fd, 2) < 0)
    {
      sup_log ("another supervisor holds %s", path);
      return 1;
    }
  signal (SIGPIPE, SIG_IGN);
  if (sup_setup (s, &err) < 0)
    {
      sup_log ("cannot start: %s", err_str (err, buf, sizeof buf));
      return 1;
    }
  sup_log ("VM %s: CDP endpoint %s -> %s, idle standby %s%u s, at most %u clients", s->name,
           s->listen, s->up_hostport, s->rec.idle_standby_s ? "after " : "off ",
           s->rec.idle_standby_s, s->rec.cdp_max_clients);
  {
    bool ready = s->ready;
    s->state = SUP_STANDBY;
    touch (s);
    sup_sync (s);
    s->ready = ready;
  }
  if (s->state == SUP_RUNNING)
    sup_arm_idle (s);
  event_base_dispatch (s->base);
  if (s->child > 0)
    kill (s->child, SIGTERM);
  while (s->conns)
    conn_free (s->conns);
  /* The endpoint is free before `ps` says this one is gone. */
  evconnlistener_free (s->cdp);
  evconnlistener_free (s->ctl);
  if (path_in (path, sizeof path, s->dir, "supervisor.sock", NULL) == 0)
    unlink (path);
  if (path_in (path, sizeof path, s->dir, "supervisor.pid", NULL) == 0)
    unlink (path);
  return 0;
}

/* ---- the CLI's side ---- */

pid_t
supervisor_pid (const char *dir)
{
  char path[VM_PATH_MAX + 32];
  pid_t pid;

  if (path_in (path, sizeof path, dir, "supervisor.pid", NULL) < 0)
    return 0;
  pid = proc_read_pid_file (path);
  return pid > 0 && proc_pid_names_dir (pid, dir) ? pid : 0;
}

int
supervisor_start (const char *dir, const char *netns, bool booting, struct err **err)
{
  const char *argv[] = { "chvm", SUPERVISOR_CMD, dir, booting ? "--booting" : NULL, NULL };
  char sock[VM_PATH_MAX + 32], log[VM_PATH_MAX + 32], last[256];
  pid_t pid;

  if (supervisor_pid (dir) > 0)
    return 0;
  if (path_in (sock, sizeof sock, dir, "supervisor.sock", err) < 0
      || path_in (log, sizeof log, dir, "supervisor.log", err) < 0)
    return -1;
  unlink (sock);
  /* Its listener is on the clients' side: the namespace chvm started in. */
  if (net_enter_netns (NULL, err) < 0)
    return -1;
  if (proc_spawn_self (argv, &pid, err) < 0)
    return -1;
  /* Back to the VM's side for what the caller does next. */
  if (net_enter_netns (netns, err) < 0)
    {
      proc_terminate (pid, 1000, NULL);
      return -1;
    }
  if (proc_wait_socket (pid, sock, SUP_START_MS, err) < 0)
    {
      proc_log_last_line (log, last, sizeof last);
      proc_terminate (pid, 1000, NULL);
      return err_wrap (err, "the supervisor did not start%s%s", last[0] ? ": " : "", last);
    }
  return 0;
}

void
supervisor_stop (const char *dir, int grace_ms)
{
  pid_t pid = supervisor_pid (dir);
  char path[VM_PATH_MAX + 32];

  if (pid > 0)
    proc_terminate (pid, grace_ms, NULL);
  if (path_in (path, sizeof path, dir, "supervisor.sock", NULL) == 0)
    unlink (path);
}

int
supervisor_query (const char *dir, const char *cmd, char *out, size_t cap, int timeout_ms,
                  struct err **err)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int64_t deadline = clock_now_ms () + timeout_ms;
  cleanup_close int fd = -1;
  char req[64];
  size_t got = 0;
  int n;

  if ((size_t) snprintf (sun.sun_path, sizeof sun.sun_path, "%s/supervisor.sock", dir)
      >= sizeof sun.sun_path)
    return err_make (err, ENAMETOOLONG, "%s/supervisor.sock", dir);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &sun, sizeof sun) < 0)
    return err_make (err, errno, "the supervisor's control socket %s", sun.sun_path);
  n = snprintf (req, sizeof req, "{\"cmd\":\"%s\"}\n", cmd);
  if (dial_write_all (fd, req, (size_t) n, deadline, err) < 0)
    return -1;
  while (got + 1 < cap)
    {
      ssize_t r;
      if (dial_wait_fd (fd, POLLIN, deadline, "the supervisor's answer", err) < 0)
        return -1;
      r = read (fd, out + got, cap - 1 - got);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return err_make (err, errno, "read the supervisor's answer");
      if (r == 0)
        break;
      got += (size_t) r;
      if (memchr (out, '\n', got) != NULL)
        break;
    }
  out[got] = '\0';
  out[strcspn (out, "\n")] = '\0';
  if (got == 0)
    return err_make (err, 0, "the supervisor closed its control socket without an answer");
  return 0;
}

const char *
supervisor_health (const char *dir, const char *endpoint, enum vm_status st, pid_t *pid)
{
  *pid = supervisor_pid (dir);
  if (*pid > 0)
    return "running";
  return endpoint[0] && supervisor_wanted (st) ? "gone" : "none";
}

int
supervisor_check_idle (unsigned idle_s, bool tap, struct err **err)
{
  if (idle_s > 0 && !tap)
    return err_make (err, 0,
                     "--idle-standby needs a tap (--net tap): a connection through QEMU's user "
                     "network ends with the QEMU process at every standby");
  return 0;
}

bool
supervisor_wanted (enum vm_status st)
{
  return st == VM_STATUS_RUNNING || st == VM_STATUS_PAUSED || st == VM_STATUS_STANDBY;
}
