/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CDP endpoint's clients, proxied to the guest's DevTools: HTTP (a
 * /json answer rewritten to name the endpoint), WebSockets (frames counted
 * both ways: commands outstanding keep the VM from idling).  While the VM
 * is not running, a client's bytes are held here and the hooks (sup.h) are
 * told; the supervisor lets them go on (proxy_resume_held) or fail
 * (proxy_fail_held).
 */
#include "supervisor/proxy.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cdp/cdp_http.h"
#include "cdp/wsscan.h"
#include "cleanup.h"
#include "clock.h"
#include "supervisor/sup.h"

#define QUEUE_MAX (4u << 20)  /* bytes queued one way before reading stops */
#define HOLD_MAX (1u << 20)   /* a client's bytes held while the VM wakes */
#define UPSTREAM_CONNECT_S 10 /* connecting to the guest's DevTools */
#define HEAD_TIMEOUT_S 30     /* a client's request head */
#define FLUSH_TIMEOUT_S 30    /* the last bytes to a client, or to the guest */
/* Connections whose head has not come yet (no token seen): past this, the
   oldest is cut.  They hold no client slot, so that nobody without the
   token can lock the owner's clients out. */
#define HEADS_MAX 64
#define HEAD_GRACE_MS 1000.0 /* a head this young is not cut for a newer one */
/* With every client slot taken, a WebSocket with no byte either way for
   this long gives its slot to a new client. */
#define WS_IDLE_EVICT_S 30
/* A /json answer rewritten (CDP_BODY_MAX in): what one client may cost. */
#define JSON_OUT_MAX (2 * CDP_BODY_MAX + 4096)

static void conn_pump_c2s (struct conn *c);
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
  if (c->authed)
    s->n_authed--;
  if (c->cli)
    bufferevent_free (c->cli);
  if (c->up)
    bufferevent_free (c->up);
  if (c->resp)
    evbuffer_free (c->resp);
  if (c->head_timer)
    event_free (c->head_timer);
  free (c);
  sup_changed (s);
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
  sup_touch (c->s);
  c->last_io = c->s->last_activity;
  c->s->hooks.browser_up (c->s);
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
  c->s->hooks.answered (c->s);
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
  size_t cap = resp != NULL ? cdp_rewrite_cap (resp, len, c->s->up_hostport, c->to_host) : 0;
  cleanup_free char *out = cap > 0 && cap <= JSON_OUT_MAX ? malloc (cap) : NULL;
  long n;

  c->s->hooks.answered (c->s);
  if (cap > JSON_OUT_MAX)
    {
      conn_error (c, 502, "Bad Gateway", "chvm: DevTools answer too large once rewritten");
      return;
    }
  if (out == NULL || resp == NULL)
    {
      conn_error (c, 502, "Bad Gateway", "chvm: out of memory");
      return;
    }
  n = cdp_rewrite_response (resp, len, c->s->up_hostport, c->to_host, out, cap);
  /* Nothing of the guest's /json goes to the client unchecked: an answer
     that cannot be rewritten (chunked, no head) would carry the guest's own
     URLs. */
  if (n < 0)
    {
      conn_error (c, 502, "Bad Gateway",
                  n == -2 ? "chvm: the guest's answer sends clients to another host; refused"
                          : "chvm: the guest's DevTools answer cannot be rewritten; refused");
      return;
    }
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
up_unreachable (struct conn *c)
{
  char msg[256];

  snprintf (msg, sizeof msg, "chvm: VM %s: cannot reach DevTools at %s:%u", c->s->name,
            c->s->up_host, c->s->up_port);
  conn_error (c, 502, "Bad Gateway", msg);
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
          up_unreachable (c);
          return;
        }
      conn_finish (c);
    }
}

/* The connection to the guest: a socket the hook dials (connecting, or
   connected), on which the bufferevent waits for the connect's end. */
static void
conn_connect_up (struct conn *c)
{
  int fd;

  if (c->up != NULL)
    return;
  fd = c->s->hooks.dial (c->s);
  if (fd < 0)
    {
      up_unreachable (c);
      return;
    }
  c->up = bufferevent_socket_new (c->s->base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (c->up == NULL)
    {
      close (fd);
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
  if (bufferevent_socket_connect (c->up, NULL, 0) < 0)
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
      c->s->hooks.wake (c->s, false);
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

/* A client slot for c, whose head carried the token: a free one, or that
   of the WebSocket idle longest when it has been idle WS_IDLE_EVICT_S (it
   is closed); else c gets a 503.  Returns 0 or -1 (c is gone). */
static int
take_slot (struct conn *c)
{
  struct sup *s = c->s;
  struct conn *idle = NULL;

  if (s->n_authed >= s->rec.cdp_max_clients)
    {
      double now = clock_now_ms ();
      for (struct conn *o = s->conns; o; o = o->next)
        if (o->authed && o->mode == CONN_WS && o->cmds <= o->replies
            && now - o->last_io >= WS_IDLE_EVICT_S * 1000.0
            && (idle == NULL || o->last_io < idle->last_io))
          idle = o;
      if (idle == NULL)
        {
          char msg[128];
          snprintf (msg, sizeof msg, "chvm: VM %s: too many CDP clients (at most %u)", s->name,
                    s->rec.cdp_max_clients);
          sup_log ("refused a client: %u open, at most %u", s->n_authed, s->rec.cdp_max_clients);
          conn_error (c, 503, "Service Unavailable", msg);
          return -1;
        }
      sup_log ("closed a WebSocket idle for %.0f s: its slot goes to a new client",
               (now - idle->last_io) / 1000);
      idle->authed = false;
      s->n_authed--;
      conn_finish (idle);
    }
  c->authed = true;
  s->n_authed++;
  return 0;
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
  if (!cdp_host_allowed (&c->req))
    {
      conn_error (c, 403, "Forbidden",
                  "chvm: Host header is specified and is not an IP address or localhost");
      return;
    }
  /* The endpoint's capability: without it, nothing reaches the guest and
     nothing wakes. */
  if (!cdp_take_token (&c->req, c->s->rec.cdp_token))
    {
      conn_error (c, 404, "Not Found",
                  "chvm: no such path (the endpoint's URLs start with the VM's token: chvm cdp "
                  "--http NAME)");
      return;
    }
  c->up_head_len
      = cdp_upstream_head (head, end, &c->req, c->s->up_hostport, c->up_head, sizeof c->up_head);
  if (c->up_head_len < 0)
    {
      conn_error (c, 431, "Request Header Fields Too Large", "chvm: request head too large");
      return;
    }
  if (take_slot (c) < 0)
    return;
  sup_touch (c->s);
  c->last_io = c->s->last_activity;
  evtimer_del (c->head_timer);
  /* What the client's URLs name: the address it used, and the token. */
  snprintf (c->to_host, sizeof c->to_host, "%s/%s", cdp_client_host (&c->req, c->s->listen),
            c->s->rec.cdp_token);
  c->mode = c->req.upgrade ? CONN_WS : c->req.rewrite ? CONN_JSON : CONN_HTTP;
  if (c->mode == CONN_JSON && (c->resp = evbuffer_new ()) == NULL)
    {
      conn_error (c, 502, "Bad Gateway", "chvm: out of memory");
      return;
    }
  if (c->s->state != SUP_RUNNING)
    {
      c->s->hooks.wake (c->s, true);
      return;
    }
  conn_connect_up (c);
}

static void
cli_read (struct bufferevent *bev, void *ctx)
{
  struct conn *c = ctx;

  (void) bev;
  /* Either may end c (conn_head wakes the VM once the head is whole and
     its Host and token acceptable).  Bytes of a head count as activity only
     once it passed: a connection without the token keeps no VM awake. */
  if (c->mode == CONN_HEAD)
    conn_head (c);
  else
    {
      sup_touch (c->s);
      c->last_io = c->s->last_activity;
      conn_pump_c2s (c);
    }
}

/* The head deadline passed (a client that sends a byte now and then holds
   a slot no longer than that). */
static void
head_timeout (evutil_socket_t fd, short what, void *ctx)
{
  struct conn *c = ctx;
  char msg[96];

  (void) fd;
  (void) what;
  if (c->mode != CONN_HEAD)
    return;
  snprintf (msg, sizeof msg, "chvm: no whole request head in %d s", HEAD_TIMEOUT_S);
  conn_error (c, 408, "Request Timeout", msg);
}

static void
cli_event (struct bufferevent *bev, short what, void *ctx)
{
  struct conn *c = ctx;

  (void) bev;
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

/* Too many heads still coming: the oldest (the list's last) is cut, when
   it had a second to send its head; else the newest, c (a burst of
   connections must not cut a client whose head is on its way). */
static void
cut_a_head (struct sup *s, struct conn *c)
{
  struct conn *oldest = NULL;

  for (struct conn *o = s->conns; o; o = o->next)
    if (o->mode == CONN_HEAD)
      oldest = o;
  if (oldest == NULL)
    return;
  if (c->t_accept - oldest->t_accept < HEAD_GRACE_MS)
    oldest = c;
  sup_log ("more than %d request heads still coming: cut the %s", HEADS_MAX,
           oldest == c ? "newest" : "oldest");
  conn_error (oldest, 408, "Request Timeout", "chvm: too many connections without a request");
}

static void
proxy_accept (struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
              void *ctx)
{
  struct sup *s = ctx;
  struct conn *c;
  int one = 1;

  (void) l;
  (void) sa;
  (void) salen;
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
  sup_changed (s);
  bufferevent_setcb (c->cli, cli_read, cli_write, cli_event, c);
  /* Held bytes stop at HOLD_MAX: the rest waits in the kernel (TCP). */
  bufferevent_setwatermark (c->cli, EV_READ, 0, HOLD_MAX);
  bufferevent_setwatermark (c->cli, EV_WRITE, QUEUE_MAX / 2, 0);
  {
    struct timeval tv = { .tv_sec = HEAD_TIMEOUT_S };
    c->head_timer = evtimer_new (s->base, head_timeout, c);
    if (c->head_timer == NULL || evtimer_add (c->head_timer, &tv) < 0)
      {
        conn_free (c);
        return;
      }
  }
  bufferevent_enable (c->cli, EV_READ | EV_WRITE);
  c->t_accept = c->last_io = clock_now_ms ();
  if (s->n_conns - s->n_authed > HEADS_MAX)
    cut_a_head (s, c);
  /* No wake yet: only a whole request head with an acceptable Host wakes
     the VM (conn_head), so a web page's no-cors fetch, a rebound DNS name
     or a bare connection restores nothing. */
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

/* ---- the clients as a whole ---- */

int64_t
proxy_outstanding (const struct sup *s)
{
  int64_t n = 0;

  for (const struct conn *c = s->conns; c; c = c->next)
    if (!c->opaque && c->cmds > c->replies)
      n += c->cmds - c->replies;
  return n;
}

/* Held clients go on once the VM runs again. */
void
proxy_resume_held (struct sup *s)
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
  sup_changed (s);
}

void
proxy_fail_held (struct sup *s, const char *msg)
{
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

bool
proxy_has_held (const struct sup *s)
{
  /* A head still coming holds nothing: it may never pass the token. */
  for (const struct conn *c = s->conns; c; c = c->next)
    if (c->mode != CONN_CLOSE && c->mode != CONN_HEAD
        && (evbuffer_get_length (bufferevent_get_input (c->cli)) > 0 || c->up == NULL))
      return true;
  return false;
}

void
proxy_close_all (struct sup *s)
{
  while (s->conns)
    conn_free (s->conns);
}

int
proxy_listen (struct sup *s, int fd, struct err **err)
{
  const unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;

  /* Listening already (backlog 0: no listen () again). */
  s->cdp = evutil_make_socket_nonblocking (fd) == 0
               ? evconnlistener_new (s->base, proxy_accept, s, flags, 0, fd)
               : NULL;
  if (s->cdp == NULL)
    return err_make (err, errno, "listen on %s", s->listen);
  s->accept_ev = evtimer_new (s->base, accept_resume, s);
  if (s->accept_ev == NULL)
    return err_make (err, ENOMEM, "events");
  evconnlistener_set_error_cb (s->cdp, cdp_accept_error);
  return 0;
}
