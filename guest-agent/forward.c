/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Forward: the connection stops carrying frames and becomes a raw pipe to
 * guest 127.0.0.1:port (CDP listens only there).
 *
 * Once the ForwardReply and any bytes the host sent behind the Forward frame
 * are flushed, the bytes move with splice(2) through one pipe per direction,
 * so they never enter user space: a direction reads its source only while
 * its pipe is empty or its destination takes bytes, so the pipe (at most
 * FORWARD_PIPE_SIZE) is all the agent ever holds.  The host's EOF becomes a
 * half-close of the guest connection; the guest's EOF, or an error on either
 * side, closes both.
 *
 * Where splice fails with EINVAL (a socket type that cannot splice), the
 * bytes still in the pipes go back into the bufferevents, which then relay
 * by themselves (evbuffer_add_buffer moves chains without copying); a side
 * whose output passes AGENT_OUT_HIGH stops the other side's reads until it
 * drains to half, so a slow reader cannot make the agent buffer without
 * bound.
 */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "log.h"

#define FORWARD_CONNECT_MS 5000
#define FORWARD_IO_MAX (256u << 10)
/* Pipe size asked for (the default 64 KiB costs many more syscalls); the
   kernel may give less, e.g. above /proc/sys/fs/pipe-max-size. */
#define FORWARD_PIPE_SIZE (1 << 20)
/* Splice rounds per event, so that one busy connection does not starve the
   others; level-triggered events bring it back. */
#define FORWARD_SPLICE_ROUNDS 16

/* One direction of a spliced connection.  src and dst belong to the
   bufferevents (disabled meanwhile), which close them when freed. */
struct splice_dir
{
  struct conn *c;
  int src, dst;
  int pipe[2];
  size_t pending; /* bytes in the pipe */
  size_t cap;     /* the pipe's size */
  bool eof;       /* src reached EOF */
  bool shut;      /* EOF passed on: dst shut down for writing */
  struct event *in, *out;
};

struct fwd_splice
{
  struct splice_dir dir[2]; /* host to guest, guest to host */
};

struct forward_req
{
  struct req r;
  uint16_t port;
};

static void splice_free (struct conn *c);

static void
peer_flush_then_free_cb (struct bufferevent *bev, void *arg)
{
  (void) arg;
  if (evbuffer_get_length (bufferevent_get_output (bev)) == 0)
    bufferevent_free (bev);
}

static void
peer_orphan_event_cb (struct bufferevent *bev, short what, void *arg)
{
  (void) what;
  (void) arg;
  bufferevent_free (bev);
}

/* The host side is gone: deliver what is queued to the guest port, then
   close it. */
void
forward_conn_gone (struct conn *c)
{
  struct bufferevent *peer = c->peer;

  splice_free (c);
  if (peer == NULL)
    return;
  c->peer = NULL;
  if (evbuffer_get_length (bufferevent_get_output (peer)) == 0)
    {
      bufferevent_free (peer);
      return;
    }
  bufferevent_disable (peer, EV_READ);
  bufferevent_setwatermark (peer, EV_WRITE, 0, 0);
  bufferevent_setcb (peer, NULL, peer_flush_then_free_cb, peer_orphan_event_cb, NULL);
}

void
forward_conn_readable (struct conn *c)
{
  struct evbuffer *out;

  if (c->peer == NULL)
    return;
  out = bufferevent_get_output (c->peer);
  evbuffer_add_buffer (out, bufferevent_get_input (c->bev));
  if (evbuffer_get_length (out) >= AGENT_OUT_HIGH)
    bufferevent_disable (c->bev, EV_READ);
}

static void splice_try_start (struct conn *c);

void
forward_conn_drained (struct conn *c)
{
  if (c->mode != CONN_FORWARDING || c->peer == NULL)
    return;
  if (c->splice_wait)
    splice_try_start (c);
  else if (c->splice == NULL)
    bufferevent_enable (c->peer, EV_READ);
}

static void
peer_read_cb (struct bufferevent *bev, void *arg)
{
  struct conn *c = arg;
  struct evbuffer *out = bufferevent_get_output (c->bev);

  evbuffer_add_buffer (out, bufferevent_get_input (bev));
  if (evbuffer_get_length (out) >= AGENT_OUT_HIGH)
    bufferevent_disable (bev, EV_READ);
}

static void
peer_write_cb (struct bufferevent *bev, void *arg)
{
  struct conn *c = arg;

  if (c->splice_wait)
    {
      splice_try_start (c);
      return;
    }
  if (c->host_eof)
    {
      /* Pass the host's half-close on once its last bytes are out. */
      if (evbuffer_get_length (bufferevent_get_output (bev)) == 0)
        shutdown (bufferevent_getfd (bev), SHUT_WR);
      return;
    }
  if (!c->closing)
    bufferevent_enable (c->bev, EV_READ);
}

bool
forward_conn_eof (struct conn *c)
{
  if (c->mode != CONN_FORWARDING || c->peer == NULL)
    return false;
  forward_conn_readable (c);
  c->host_eof = true;
  peer_write_cb (c->peer, c);
  return true;
}

/* The guest port closed (or failed): flush what it sent, then close the
   agent connection too. */
static void
peer_event_cb (struct bufferevent *bev, short what, void *arg)
{
  struct conn *c = arg;

  (void) what;
  peer_read_cb (bev, c);
  c->peer = NULL;
  bufferevent_free (bev);
  conn_close (c);
}

/* The bufferevents relay by themselves from now on. */
static void
relay_start (struct conn *c)
{
  bufferevent_enable (c->peer, EV_READ | EV_WRITE);
  bufferevent_enable (c->bev, c->host_eof ? EV_WRITE : EV_READ | EV_WRITE);
  if (c->host_eof)
    peer_write_cb (c->peer, c); /* half-close once the last bytes are out */
}

static void
splice_free (struct conn *c)
{
  struct fwd_splice *s = c->splice;

  if (s == NULL)
    return;
  for (int i = 0; i < 2; i++)
    {
      struct splice_dir *d = &s->dir[i];

      if (d->in != NULL)
        event_free (d->in);
      if (d->out != NULL)
        event_free (d->out);
      for (int j = 0; j < 2; j++)
        if (d->pipe[j] >= 0)
          close (d->pipe[j]);
    }
  free (s);
  c->splice = NULL;
}

/* The guest's EOF (once its bytes are out) or an error: close both. */
static void
splice_close (struct conn *c)
{
  splice_free (c);
  bufferevent_free (c->peer);
  c->peer = NULL;
  conn_close (c);
}

/* splice(2) refused these sockets: hand the bytes in the pipes, in order,
   to the bufferevents and let them relay. */
static void
splice_fallback (struct conn *c)
{
  struct fwd_splice *s = c->splice;
  struct bufferevent *dst[2] = { c->peer, c->bev };
  bool guest_eof = s->dir[1].eof;

  log_info ("%s: splice not supported on these sockets; relaying through buffers", c->name);
  for (int i = 0; i < 2; i++)
    {
      struct splice_dir *d = &s->dir[i];

      while (d->pending > 0)
        {
          int n = evbuffer_read (bufferevent_get_output (dst[i]), d->pipe[0],
                                 d->pending > INT_MAX ? INT_MAX : (int) d->pending);
          if (n <= 0)
            break; /* not expected: the bytes are in the pipe */
          d->pending -= (size_t) n;
        }
    }
  c->host_eof = c->host_eof || s->dir[0].eof;
  splice_free (c);
  if (guest_eof)
    {
      bufferevent_free (c->peer);
      c->peer = NULL;
      bufferevent_enable (c->bev, EV_WRITE);
      conn_close (c);
      return;
    }
  relay_start (c);
}

/* Moves what it can from d->src to d->dst through d's pipe, until neither
   side makes progress (or FORWARD_SPLICE_ROUNDS).  Returns 0 or -errno. */
static int
splice_pump (struct splice_dir *d)
{
  for (int round = 0; round < FORWARD_SPLICE_ROUNDS; round++)
    {
      bool progress = false;
      ssize_t n;

      if (d->pending > 0)
        {
          n = splice (d->pipe[0], NULL, d->dst, NULL, d->pending,
                      SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
          if (n > 0)
            {
              d->pending -= (size_t) n;
              progress = true;
            }
          else if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        }
      if (!d->eof && d->pending < d->cap)
        {
          n = splice (d->src, NULL, d->pipe[1], NULL, d->cap - d->pending,
                      SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
          if (n > 0)
            {
              d->pending += (size_t) n;
              progress = true;
            }
          else if (n == 0)
            d->eof = true;
          else if (errno != EAGAIN && errno != EINTR)
            return -errno;
        }
      if (!progress)
        break;
    }
  return 0;
}

static void
event_want (struct event *ev, bool on)
{
  bool is = event_pending (ev, EV_READ | EV_WRITE, NULL) != 0;

  if (on && !is)
    event_add (ev, NULL);
  else if (!on && is)
    event_del (ev);
}

static void
splice_cb (evutil_socket_t fd, short what, void *arg)
{
  struct splice_dir *d = arg;
  struct conn *c = d->c;
  int r;

  (void) fd;
  (void) what;
  r = splice_pump (d);
  if (r == -EINVAL)
    {
      splice_fallback (c);
      return;
    }
  if (r < 0)
    {
      log_debug ("%s: forwarding ended: %s", c->name, strerror (-r));
      splice_close (c);
      return;
    }
  /* Bytes left in the pipe mean dst is full: wait for it alone, so that a
     slow reader holds back the writer (a full pipe would otherwise leave src
     readable and its event firing without progress). */
  event_want (d->in, !d->eof && d->pending == 0);
  event_want (d->out, d->pending > 0);
  if (!d->eof || d->pending > 0)
    return;
  if (d == &c->splice->dir[1])
    splice_close (c);
  else if (!d->shut)
    {
      /* The host half-closed: pass it on and keep relaying the answer. */
      d->shut = true;
      c->host_eof = true;
      shutdown (d->dst, SHUT_WR);
    }
}

/* Switches c to splice(2) once the ForwardReply and the bytes that came
   with the Forward frame are out (both outputs empty); until then reads are
   off on both sides, so no byte can overtake them. */
static void
splice_try_start (struct conn *c)
{
  int fds[2] = { bufferevent_getfd (c->bev), bufferevent_getfd (c->peer) };
  struct fwd_splice *s;

  if (evbuffer_get_length (bufferevent_get_input (c->bev)) != 0)
    forward_conn_readable (c);
  if (evbuffer_get_length (bufferevent_get_output (c->bev)) != 0
      || evbuffer_get_length (bufferevent_get_output (c->peer)) != 0)
    return;
  c->splice_wait = false;
  s = calloc (1, sizeof *s);
  if (s == NULL)
    {
      relay_start (c);
      return;
    }
  c->splice = s;
  for (int i = 0; i < 2; i++)
    s->dir[i].pipe[0] = s->dir[i].pipe[1] = -1;
  for (int i = 0; i < 2; i++)
    {
      struct splice_dir *d = &s->dir[i];
      int size;

      d->c = c;
      d->src = fds[i];
      d->dst = fds[1 - i];
      if (pipe2 (d->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        goto fail;
      /* Best effort: a smaller pipe only costs more syscalls. */
      fcntl (d->pipe[1], F_SETPIPE_SZ, FORWARD_PIPE_SIZE);
      size = fcntl (d->pipe[1], F_GETPIPE_SZ);
      if (size <= 0)
        goto fail;
      d->cap = (size_t) size;
      d->in = event_new (agent.base, d->src, EV_READ | EV_PERSIST, splice_cb, d);
      d->out = event_new (agent.base, d->dst, EV_WRITE | EV_PERSIST, splice_cb, d);
      if (d->in == NULL || d->out == NULL || event_add (d->in, NULL) < 0)
        goto fail;
    }
  bufferevent_disable (c->bev, EV_READ | EV_WRITE);
  bufferevent_disable (c->peer, EV_READ | EV_WRITE);
  log_debug ("%s: splicing", c->name);
  return;
fail:
  log_warn ("%s: cannot splice (%s); relaying through buffers", c->name, strerror (errno));
  splice_free (c);
  relay_start (c);
}

static void
connect_event_cb (struct bufferevent *bev, short what, void *arg)
{
  struct forward_req *fr = arg;
  struct conn *c = fr->r.conn;

  if (what & BEV_EVENT_CONNECTED)
    {
      Chvm__Agent__ForwardReply rep = CHVM__AGENT__FORWARD_REPLY__INIT;
      Frame f = CHVM__AGENT__FRAME__INIT;
      int one = 1;

      f.id = fr->r.id;
      f.body_case = CHVM__AGENT__FRAME__BODY_FORWARD_REPLY;
      f.forward_reply = &rep;
      conn_send (c, &f);
      log_info ("%s: forwarding to 127.0.0.1:%u", c->name, fr->port);
      conn_req_done (&fr->r);
      free (fr);
      setsockopt (bufferevent_getfd (bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      c->mode = CONN_FORWARDING;
      /* libevent reads 4 KiB and writes 16 KiB per call by default; bulk
         CDP traffic (screenshots, traces) wants far fewer syscalls. */
      bufferevent_set_max_single_read (bev, FORWARD_IO_MAX);
      bufferevent_set_max_single_write (bev, FORWARD_IO_MAX);
      bufferevent_set_max_single_read (c->bev, FORWARD_IO_MAX);
      bufferevent_set_max_single_write (c->bev, FORWARD_IO_MAX);
      bufferevent_set_timeouts (bev, NULL, NULL);
      bufferevent_setcb (bev, peer_read_cb, peer_write_cb, peer_event_cb, c);
      bufferevent_setwatermark (bev, EV_WRITE, AGENT_OUT_HIGH / 2, 0);
      /* Only writes until the reply and the bytes the host sent right
         behind the Forward frame are out; then splice_try_start. */
      c->splice_wait = true;
      bufferevent_enable (bev, EV_WRITE);
      forward_conn_readable (c);
      return;
    }
  /* Connect failed (or timed out): report it and go back to frames. */
  conn_send_error (c, fr->r.id, CHVM__AGENT__ERROR_CODE__ERROR_NOT_FOUND,
                   "connect 127.0.0.1:%u: %s", fr->port,
                   (what & BEV_EVENT_TIMEOUT) ? "timed out" : strerror (EVUTIL_SOCKET_ERROR ()));
  conn_req_done (&fr->r);
  free (fr);
  c->peer = NULL;
  bufferevent_free (bev);
  c->mode = CONN_FRAMES;
  bufferevent_enable (c->bev, EV_READ);
  bufferevent_trigger (c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The host hung up while the peer was connecting; conn_free then frees the
   peer in forward_conn_gone, so its callback never sees this request. */
static void
forward_cancel (struct req *r)
{
  free (r);
}

void
forward_start (struct conn *c, uint64_t id, const Chvm__Agent__ForwardRequest *rq)
{
  struct sockaddr_in sin = { .sin_family = AF_INET };
  struct timeval tv = { FORWARD_CONNECT_MS / 1000, 0 };
  struct forward_req *fr;

  if (rq->port == 0 || rq->port > 65535)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST, "bad port %u", rq->port);
      return;
    }
  if (c->reqs != NULL)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BUSY,
                       "other requests are in flight on this connection");
      return;
    }
  fr = calloc (1, sizeof *fr);
  if (fr == NULL)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "out of memory");
      return;
    }
  fr->port = (uint16_t) rq->port;
  c->peer = bufferevent_socket_new (agent.base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (c->peer == NULL)
    {
      free (fr);
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "cannot create a socket");
      return;
    }
  conn_req_add (c, &fr->r, id, forward_cancel);
  c->mode = CONN_FORWARD_PENDING;
  bufferevent_disable (c->bev, EV_READ);
  bufferevent_setcb (c->peer, NULL, NULL, connect_event_cb, fr);
  bufferevent_set_timeouts (c->peer, &tv, &tv);
  sin.sin_port = htons (fr->port);
  sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (bufferevent_socket_connect (c->peer, (struct sockaddr *) &sin, sizeof sin) < 0)
    {
      /* An immediate failure (e.g. no buffers) gets no event callback. */
      conn_req_done (&fr->r);
      bufferevent_free (c->peer);
      c->peer = NULL;
      c->mode = CONN_FRAMES;
      bufferevent_enable (c->bev, EV_READ);
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_NOT_FOUND, "connect 127.0.0.1:%u: %s",
                       fr->port, strerror (errno));
      free (fr);
    }
}
