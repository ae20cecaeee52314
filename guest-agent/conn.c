/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connections: decode frames and hand each to the connection's on_frame
 * callback; replies, requests (struct req), streams taken over by a Forward,
 * slots and timers.  Each connection has one timer: the Hello deadline, then
 * the idle timeout.  Slots: AGENT_MAX_PENDING before Hello, AGENT_MAX_CONNS
 * after (conn.h).  A connection is freed only from libevent callbacks (EOF,
 * error, drained output after a fatal reply), never from inside a handler,
 * so handlers can reply and return without checking whether their
 * connection still exists.  This file knows no handler: what a handler
 * needs to hear about (output drained, disconnect, EOF) reaches it through
 * its struct req or its conn_stream_ops.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"

struct agent agent = { .cdp_port = 9222,
                       .hello_timeout_ms = AGENT_HELLO_TIMEOUT_MS,
                       .idle_timeout_ms = AGENT_IDLE_TIMEOUT_MS };

static void conn_free (struct conn *c);

bool
token_equal_p (const char *a, size_t alen, const char *b, size_t blen)
{
  /* Constant time in the length of the secret: every byte is compared,
     and a length mismatch only shows in the final result. */
  volatile unsigned char diff = (unsigned char) (alen != blen);
  size_t n = alen > blen ? alen : blen;

  for (size_t i = 0; i < n; i++)
    {
      unsigned char x = i < alen ? (unsigned char) a[i] : 0;
      unsigned char y = i < blen ? (unsigned char) b[i] : 0;
      diff |= x ^ y;
    }
  return diff == 0 && alen > 0;
}

int
conn_send (struct conn *c, const Frame *f)
{
  struct evbuffer *out;
  struct evbuffer_iovec v;
  size_t n;

  if (c->mode == CONN_STREAM || c->closing)
    return -1;
  n = chvm__agent__frame__get_packed_size (f);
  if (n == 0 || n > FRAME_MAX)
    {
      log_error ("%s: reply of %zu bytes cannot be framed", c->name, n);
      return -1;
    }
  out = bufferevent_get_output (c->bev);
  if (evbuffer_reserve_space (out, n + FRAME_HDR_LEN, &v, 1) < 1)
    return -1;
  frame_put_header (v.iov_base, (uint32_t) n);
  chvm__agent__frame__pack (f, (uint8_t *) v.iov_base + FRAME_HDR_LEN);
  v.iov_len = n + FRAME_HDR_LEN;
  return evbuffer_commit_space (out, &v, 1);
}

void
conn_send_error (struct conn *c, uint64_t id, Chvm__Agent__ErrorCode code, const char *fmt, ...)
{
  Chvm__Agent__ErrorReply e = CHVM__AGENT__ERROR_REPLY__INIT;
  Frame f = CHVM__AGENT__FRAME__INIT;
  char msg[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  e.code = code;
  e.message = msg;
  f.id = id;
  f.body_case = CHVM__AGENT__FRAME__BODY_ERROR;
  f.error = &e;
  log_info ("%s: request %llu failed: %s", c->name, (unsigned long long) id, msg);
  conn_send (c, &f);
}

void
conn_send_err (struct conn *c, uint64_t id, Chvm__Agent__ErrorCode code, struct err *e)
{
  char buf[512];

  conn_send_error (c, id, code, "%s", err_str (e, buf, sizeof buf));
}

void
conn_req_add (struct conn *c, struct req *r, uint64_t id, void (*cancel) (struct req *),
              void (*drained) (struct req *))
{
  struct req **pp;

  r->conn = c;
  r->id = id;
  r->cancel = cancel;
  r->drained = drained;
  r->next = NULL;
  /* Oldest first, so that a disconnect cancels in the order of arrival
     (e.g. an exec started before a freeze is killed before the thaw). */
  for (pp = &c->reqs; *pp != NULL; pp = &(*pp)->next)
    ;
  *pp = r;
}

void
conn_req_done (struct req *r)
{
  struct req **pp;

  if (r->conn == NULL)
    return;
  for (pp = &r->conn->reqs; *pp != NULL; pp = &(*pp)->next)
    if (*pp == r)
      {
        *pp = r->next;
        break;
      }
  r->conn = NULL;
  r->next = NULL;
}

bool
conn_out_full_p (const struct conn *c)
{
  return evbuffer_get_length (bufferevent_get_output (c->bev)) >= AGENT_OUT_HIGH;
}

bool
conn_out_empty_p (const struct conn *c)
{
  return evbuffer_get_length (bufferevent_get_output (c->bev)) == 0;
}

void
conn_take_stream (struct conn *c, const struct conn_stream_ops *ops, void *st)
{
  c->stream_ops = ops;
  c->stream = st;
  c->mode = CONN_STREAM_OPENING;
  bufferevent_disable (c->bev, EV_READ);
}

void
conn_stream_raw (struct conn *c)
{
  c->mode = CONN_STREAM;
}

void
conn_stream_release (struct conn *c)
{
  c->stream_ops = NULL;
  c->stream = NULL;
  c->mode = CONN_FRAMES;
}

/* Stops reading and frees the connection once its output is flushed, so
   that a final error reply reaches the peer. */
void
conn_close (struct conn *c)
{
  c->closing = true;
  bufferevent_disable (c->bev, EV_READ);
  if (evbuffer_get_length (bufferevent_get_output (c->bev)) == 0)
    bufferevent_trigger (c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

bool
conn_idle_p (const struct conn *c)
{
  return c->reqs == NULL && c->mode == CONN_FRAMES;
}

/* (Re)starts c's timer for ms; 0 stops it. */
static int
conn_timer_set (struct conn *c, unsigned ms)
{
  struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

  if (ms == 0)
    return evtimer_del (c->timer);
  return evtimer_add (c->timer, &tv);
}

/* The authenticated connection with nothing outstanding that has been
   silent longest (on a tie the oldest: agent.conns is newest first), or
   NULL. */
static struct conn *
longest_idle (void)
{
  struct conn *best = NULL;

  for (struct conn *c = agent.conns; c != NULL; c = c->next)
    if (c->authed && conn_idle_p (c) && (best == NULL || c->last_rx_ms <= best->last_rx_ms))
      best = c;
  return best;
}

void
conn_close_all (void)
{
  while (agent.conns != NULL)
    conn_free (agent.conns);
}

unsigned
conn_close_older (const struct conn *keep)
{
  unsigned n = 0;
  struct conn *c;

  /* From the head after each free: freeing one may touch its neighbours. */
  for (c = agent.conns; c != NULL;)
    if (c->seq < keep->seq)
      {
        log_info ("%s: closed: accepted before the restore", c->name);
        conn_free (c);
        n++;
        c = agent.conns;
      }
    else
      c = c->next;
  return n;
}

bool
conn_authenticate (struct conn *c, uint64_t id, const Chvm__Agent__Hello *h)
{
  if (c->tcp && !token_equal_p (h->token, strlen (h->token), agent.token, agent.token_len))
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_UNAUTHENTICATED, "bad token");
      conn_close (c);
      return false;
    }
  if (agent.n_authed >= AGENT_MAX_CONNS)
    {
      struct conn *old = longest_idle ();
      if (old == NULL)
        {
          conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BUSY,
                           "all %u connection slots are busy", AGENT_MAX_CONNS);
          conn_close (c);
          return false;
        }
      log_warn ("%s: all %u connection slots taken: closing %s, idle for %lld ms", c->name,
                AGENT_MAX_CONNS, old->name,
                (long long) ((int64_t) clock_now_ms () - old->last_rx_ms));
      conn_free (old);
    }
  c->authed = true;
  agent.n_authed++;
  c->last_rx_ms = (int64_t) clock_now_ms ();
  conn_timer_set (c, agent.idle_timeout_ms);
  log_info ("%s: hello from '%.64s'", c->name, h->client);
  return true;
}

static void
conn_read_cb (struct bufferevent *bev, void *arg)
{
  struct conn *c = arg;
  struct evbuffer *in = bufferevent_get_input (bev);

  while (c->mode == CONN_FRAMES && !c->closing)
    {
      struct evbuffer_iovec v;
      const uint8_t *frame;
      size_t flen;
      cleanup_err struct err *e = NULL;
      ssize_t n;

      if (evbuffer_peek (in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
        break;
      /* A peer that sends requests but never reads the replies would make
         the output grow without bound: stop reading until it drains. */
      if (conn_out_full_p (c))
        {
          bufferevent_disable (bev, EV_READ);
          break;
        }
      n = frame_decoder_feed (&c->dec, v.iov_base, v.iov_len, &frame, &flen, &e);
      if (n < 0)
        {
          char buf[256];
          log_warn ("%s: dropping connection: %s", c->name, err_str (e, buf, sizeof buf));
          conn_free (c);
          return;
        }
      evbuffer_drain (in, (size_t) n);
      if (frame != NULL)
        {
          c->last_rx_ms = (int64_t) clock_now_ms ();
          if (c->authed)
            conn_timer_set (c, agent.idle_timeout_ms);
          c->on_frame (c, frame, flen);
        }
    }
  if (c->mode == CONN_STREAM)
    c->stream_ops->readable (c->stream);
  if (c->closing)
    evbuffer_drain (in, evbuffer_get_length (in));
}

static void
conn_write_cb (struct bufferevent *bev, void *arg)
{
  struct conn *c = arg;
  struct req *r, *next;

  if (c->closing && evbuffer_get_length (bufferevent_get_output (bev)) == 0)
    {
      conn_free (c);
      return;
    }
  if (conn_out_full_p (c))
    return;
  if (c->mode == CONN_FRAMES && !c->closing && !(bufferevent_get_enabled (bev) & EV_READ))
    {
      /* Resume what conn_read_cb paused, starting with the frames already
         buffered. */
      bufferevent_enable (bev, EV_READ);
      bufferevent_trigger (bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    }
  for (r = c->reqs; r != NULL; r = next)
    {
      next = r->next;
      if (r->drained != NULL)
        r->drained (r);
    }
  if (c->mode != CONN_FRAMES)
    c->stream_ops->drained (c->stream);
}

static void
conn_event_cb (struct bufferevent *bev, short what, void *arg)
{
  struct conn *c = arg;

  (void) bev;
  if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && c->mode != CONN_FRAMES
      && c->stream_ops->eof (c->stream))
    return;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    {
      if (frame_decoder_partial_p (&c->dec))
        log_warn ("%s: disconnected in the middle of a frame", c->name);
      else
        log_debug ("%s: disconnected", c->name);
      conn_free (c);
    }
}

static void
conn_free (struct conn *c)
{
  while (c->reqs != NULL)
    {
      struct req *r = c->reqs;
      c->reqs = r->next;
      r->conn = NULL;
      r->next = NULL;
      r->cancel (r);
    }
  if (c->mode != CONN_FRAMES)
    c->stream_ops->gone (c->stream);
  if (c->prev)
    c->prev->next = c->next;
  else
    agent.conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  agent.n_conns--;
  if (c->authed)
    agent.n_authed--;
  if (c->timer != NULL)
    event_free (c->timer);
  bufferevent_free (c->bev);
  frame_decoder_free (&c->dec);
  log_debug ("%s: closed", c->name);
  free (c);
}

static void
conn_timer_cb (evutil_socket_t fd, short what, void *arg)
{
  struct conn *c = arg;

  (void) fd;
  (void) what;
  if (!c->authed)
    log_warn ("%s: no Hello within %u ms, closing", c->name, agent.hello_timeout_ms);
  else if (!conn_idle_p (c))
    {
      /* Something is outstanding: look again after another period. */
      conn_timer_set (c, agent.idle_timeout_ms);
      return;
    }
  else
    log_info ("%s: no frame for %u ms and nothing outstanding, closing", c->name,
              agent.idle_timeout_ms);
  conn_free (c);
}

/* A peer that vanished (a host restored from a snapshot, a crashed one)
   never sends a FIN: keepalive probes find it within minutes.  vsock has no
   keepalive; the idle timeout covers it. */
static void
tcp_keepalive (evutil_socket_t fd, const char *name)
{
  int one = 1, idle = AGENT_KEEPIDLE_S, intvl = AGENT_KEEPINTVL_S, cnt = AGENT_KEEPCNT;

  if (setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) < 0
      || setsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0
      || setsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0
      || setsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0)
    log_warn ("%s: TCP keepalive: %m", name);
}

/* Makes room for one more connection waiting for Hello: when the
   AGENT_MAX_PENDING slots are full, the one waiting longest goes, so that
   silent peers can delay the host's Hello but never lock it out. */
static void
pending_make_room (const char *name)
{
  struct conn *oldest = NULL;

  if (agent.n_conns - agent.n_authed < AGENT_MAX_PENDING)
    return;
  /* agent.conns is newest first. */
  for (struct conn *c = agent.conns; c != NULL; c = c->next)
    if (!c->authed)
      oldest = c;
  if (oldest == NULL)
    return;
  log_warn ("%s: %u connections wait for Hello: closing the oldest, %s", name, AGENT_MAX_PENDING,
            oldest->name);
  conn_free (oldest);
}

void
conn_accept (evutil_socket_t fd, bool tcp, const char *name, conn_frame_fn *on_frame)
{
  struct conn *c;
  int one = 1;

  pending_make_room (name);
  c = calloc (1, sizeof *c);
  if (c == NULL)
    {
      close (fd);
      return;
    }
  if (tcp)
    {
      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      tcp_keepalive (fd, name);
    }
  evutil_make_socket_nonblocking (fd);
  c->bev = bufferevent_socket_new (agent.base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (c->bev == NULL)
    {
      close (fd);
      free (c);
      return;
    }
  frame_decoder_init (&c->dec);
  c->on_frame = on_frame;
  c->tcp = tcp;
  c->seq = ++agent.accepted;
  snprintf (c->name, sizeof c->name, "%s", name);
  bufferevent_setcb (c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
  /* The write callback runs when output falls to half the high mark, which
     resumes paused producers; it also runs at 0 for closing connections. */
  bufferevent_setwatermark (c->bev, EV_WRITE, AGENT_OUT_HIGH / 2, 0);
  bufferevent_enable (c->bev, EV_READ | EV_WRITE);
  c->last_rx_ms = (int64_t) clock_now_ms ();
  c->timer = evtimer_new (agent.base, conn_timer_cb, c);
  if (c->timer == NULL || conn_timer_set (c, agent.hello_timeout_ms) < 0)
    {
      if (c->timer != NULL)
        event_free (c->timer);
      bufferevent_free (c->bev);
      frame_decoder_free (&c->dec);
      free (c);
      return;
    }
  c->next = agent.conns;
  if (agent.conns)
    agent.conns->prev = c;
  agent.conns = c;
  agent.n_conns++;
  log_debug ("%s: connected", c->name);
}
