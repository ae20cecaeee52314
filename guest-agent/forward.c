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
 *
 * The forwarding state (struct fwd) is this file's own: the connection
 * layer only sees it through conn_take_stream's callbacks.
 */
#include "forward.h"

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

struct fwd_splice;

/* A forwarded connection: c's byte stream (conn_take_stream) and the guest
   connection.  Also the Forward request while connecting. */
struct fwd
{
  struct req r; /* attached while connecting */
  struct conn *c;
  uint16_t port;
  struct bufferevent *peer;  /* the guest connection */
  bool splice_wait;          /* flushing the bufferevents before splicing */
  bool host_eof;             /* the host half-closed its side */
  struct fwd_splice *splice; /* forwarding with splice(2) */
};

/* One direction of a spliced connection.  src and dst belong to the
   bufferevents (disabled meanwhile), which close them when freed. */
struct splice_dir
{
  struct fwd *fw;
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

static void splice_free (struct fwd *fw);

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

/* The host side is gone (the connection is being freed): deliver what is
   queued to the guest port, then close it. */
static void
fwd_gone (void *st)
{
  struct fwd *fw = st;
  struct bufferevent *peer = fw->peer;

  splice_free (fw);
  free (fw);
  if (peer == NULL)
    return;
  if (evbuffer_get_length (bufferevent_get_output (peer)) == 0)
    {
      bufferevent_free (peer);
      return;
    }
  bufferevent_disable (peer, EV_READ);
  bufferevent_setwatermark (peer, EV_WRITE, 0, 0);
  bufferevent_setcb (peer, NULL, peer_flush_then_free_cb, peer_orphan_event_cb, NULL);
}

static void
fwd_readable (void *st)
{
  struct fwd *fw = st;
  struct evbuffer *out;

  if (fw->peer == NULL)
    return;
  out = bufferevent_get_output (fw->peer);
  evbuffer_add_buffer (out, bufferevent_get_input (fw->c->bev));
  if (evbuffer_get_length (out) >= AGENT_OUT_HIGH)
    bufferevent_disable (fw->c->bev, EV_READ);
}

static void splice_try_start (struct fwd *fw);

static void
fwd_drained (void *st)
{
  struct fwd *fw = st;

  if (fw->c->mode != CONN_STREAM || fw->peer == NULL)
    return;
  if (fw->splice_wait)
    splice_try_start (fw);
  else if (fw->splice == NULL)
    bufferevent_enable (fw->peer, EV_READ);
}

static void
peer_read_cb (struct bufferevent *bev, void *arg)
{
  struct fwd *fw = arg;
  struct evbuffer *out = bufferevent_get_output (fw->c->bev);

  evbuffer_add_buffer (out, bufferevent_get_input (bev));
  if (evbuffer_get_length (out) >= AGENT_OUT_HIGH)
    bufferevent_disable (bev, EV_READ);
}

static void
peer_write_cb (struct bufferevent *bev, void *arg)
{
  struct fwd *fw = arg;

  if (fw->splice_wait)
    {
      splice_try_start (fw);
      return;
    }
  if (fw->host_eof)
    {
      /* Pass the host's half-close on once its last bytes are out. */
      if (evbuffer_get_length (bufferevent_get_output (bev)) == 0)
        shutdown (bufferevent_getfd (bev), SHUT_WR);
      return;
    }
  if (!fw->c->closing)
    bufferevent_enable (fw->c->bev, EV_READ);
}

/* The host half-closed: flush, then half-close the guest side and keep
   relaying its answer.  False (close the connection) unless forwarding. */
static bool
fwd_eof (void *st)
{
  struct fwd *fw = st;

  if (fw->c->mode != CONN_STREAM || fw->peer == NULL)
    return false;
  fwd_readable (fw);
  fw->host_eof = true;
  peer_write_cb (fw->peer, fw);
  return true;
}

static const struct conn_stream_ops fwd_ops = {
  .readable = fwd_readable,
  .drained = fwd_drained,
  .eof = fwd_eof,
  .gone = fwd_gone,
};

/* The guest port closed (or failed): flush what it sent, then close the
   agent connection too. */
static void
peer_event_cb (struct bufferevent *bev, short what, void *arg)
{
  struct fwd *fw = arg;

  (void) what;
  peer_read_cb (bev, fw);
  fw->peer = NULL;
  bufferevent_free (bev);
  conn_close (fw->c);
}

/* The bufferevents relay by themselves from now on. */
static void
relay_start (struct fwd *fw)
{
  bufferevent_enable (fw->peer, EV_READ | EV_WRITE);
  bufferevent_enable (fw->c->bev, fw->host_eof ? EV_WRITE : EV_READ | EV_WRITE);
  if (fw->host_eof)
    peer_write_cb (fw->peer, fw); /* half-close once the last bytes are out */
}

static void
splice_free (struct fwd *fw)
{
  struct fwd_splice *s = fw->splice;

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
  fw->splice = NULL;
}

/* The guest's EOF (once its bytes are out) or an error: close both. */
static void
splice_close (struct fwd *fw)
{
  splice_free (fw);
  bufferevent_free (fw->peer);
  fw->peer = NULL;
  conn_close (fw->c);
}

/* splice(2) refused these sockets: hand the bytes in the pipes, in order,
   to the bufferevents and let them relay. */
static void
splice_fallback (struct fwd *fw)
{
  struct fwd_splice *s = fw->splice;
  struct bufferevent *dst[2] = { fw->peer, fw->c->bev };
  bool guest_eof = s->dir[1].eof;

  log_info ("%s: splice not supported on these sockets; relaying through buffers", fw->c->name);
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
  fw->host_eof = fw->host_eof || s->dir[0].eof;
  splice_free (fw);
  if (guest_eof)
    {
      bufferevent_free (fw->peer);
      fw->peer = NULL;
      bufferevent_enable (fw->c->bev, EV_WRITE);
      conn_close (fw->c);
      return;
    }
  relay_start (fw);
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
  struct fwd *fw = d->fw;
  int r;

  (void) fd;
  (void) what;
  r = splice_pump (d);
  if (r == -EINVAL)
    {
      splice_fallback (fw);
      return;
    }
  if (r < 0)
    {
      log_debug ("%s: forwarding ended: %s", fw->c->name, strerror (-r));
      splice_close (fw);
      return;
    }
  /* Bytes left in the pipe mean dst is full: wait for it alone, so that a
     slow reader holds back the writer (a full pipe would otherwise leave src
     readable and its event firing without progress). */
  event_want (d->in, !d->eof && d->pending == 0);
  event_want (d->out, d->pending > 0);
  if (!d->eof || d->pending > 0)
    return;
  if (d == &fw->splice->dir[1])
    splice_close (fw);
  else if (!d->shut)
    {
      /* The host half-closed: pass it on and keep relaying the answer. */
      d->shut = true;
      fw->host_eof = true;
      shutdown (d->dst, SHUT_WR);
    }
}

/* Switches to splice(2) once the ForwardReply and the bytes that came with
   the Forward frame are out (both outputs empty); until then reads are off
   on both sides, so no byte can overtake them. */
static void
splice_try_start (struct fwd *fw)
{
  struct conn *c = fw->c;
  int fds[2] = { bufferevent_getfd (c->bev), bufferevent_getfd (fw->peer) };
  struct fwd_splice *s;

  if (evbuffer_get_length (bufferevent_get_input (c->bev)) != 0)
    fwd_readable (fw);
  if (evbuffer_get_length (bufferevent_get_output (c->bev)) != 0
      || evbuffer_get_length (bufferevent_get_output (fw->peer)) != 0)
    return;
  fw->splice_wait = false;
  s = calloc (1, sizeof *s);
  if (s == NULL)
    {
      relay_start (fw);
      return;
    }
  fw->splice = s;
  for (int i = 0; i < 2; i++)
    s->dir[i].pipe[0] = s->dir[i].pipe[1] = -1;
  for (int i = 0; i < 2; i++)
    {
      struct splice_dir *d = &s->dir[i];
      int size;

      d->fw = fw;
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
  bufferevent_disable (fw->peer, EV_READ | EV_WRITE);
  log_debug ("%s: splicing", c->name);
  return;
fail:
  log_warn ("%s: cannot splice (%s); relaying through buffers", c->name, strerror (errno));
  splice_free (fw);
  relay_start (fw);
}

/* Connected: reply, then relay (splice once the reply is out). */
static void
forward_connected (struct fwd *fw, struct bufferevent *bev)
{
  struct conn *c = fw->c;
  Chvm__Agent__ForwardReply rep = CHVM__AGENT__FORWARD_REPLY__INIT;
  Frame f = CHVM__AGENT__FRAME__INIT;
  int one = 1;

  f.id = fw->r.id;
  f.body_case = CHVM__AGENT__FRAME__BODY_FORWARD_REPLY;
  f.forward_reply = &rep;
  conn_send (c, &f);
  log_info ("%s: forwarding to 127.0.0.1:%u", c->name, fw->port);
  conn_req_done (&fw->r);
  setsockopt (bufferevent_getfd (bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  conn_stream_raw (c);
  /* libevent reads 4 KiB and writes 16 KiB per call by default; bulk CDP
     traffic (screenshots, traces) wants far fewer syscalls. */
  bufferevent_set_max_single_read (bev, FORWARD_IO_MAX);
  bufferevent_set_max_single_write (bev, FORWARD_IO_MAX);
  bufferevent_set_max_single_read (c->bev, FORWARD_IO_MAX);
  bufferevent_set_max_single_write (c->bev, FORWARD_IO_MAX);
  bufferevent_set_timeouts (bev, NULL, NULL);
  bufferevent_setcb (bev, peer_read_cb, peer_write_cb, peer_event_cb, fw);
  bufferevent_setwatermark (bev, EV_WRITE, AGENT_OUT_HIGH / 2, 0);
  /* Only writes until the reply and the bytes the host sent right behind
     the Forward frame are out; then splice_try_start. */
  fw->splice_wait = true;
  bufferevent_enable (bev, EV_WRITE);
  fwd_readable (fw);
}

static void
connect_event_cb (struct bufferevent *bev, short what, void *arg)
{
  struct fwd *fw = arg;
  struct conn *c = fw->c;

  if (what & BEV_EVENT_CONNECTED)
    {
      forward_connected (fw, bev);
      return;
    }
  /* Connect failed (or timed out): report it and go back to frames. */
  conn_send_error (c, fw->r.id, CHVM__AGENT__ERROR_CODE__ERROR_NOT_FOUND,
                   "connect 127.0.0.1:%u: %s", fw->port,
                   (what & BEV_EVENT_TIMEOUT) ? "timed out" : strerror (EVUTIL_SOCKET_ERROR ()));
  conn_req_done (&fw->r);
  free (fw);
  bufferevent_free (bev);
  conn_stream_release (c);
  bufferevent_enable (c->bev, EV_READ);
  bufferevent_trigger (c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The host hung up while the peer was connecting; conn_free then frees fw
   and the peer in fwd_gone, so the peer's callback never sees it. */
static void
forward_cancel (struct req *r)
{
  (void) r;
}

void
forward_handle (struct conn *c, const Frame *f)
{
  const Chvm__Agent__ForwardRequest *rq = f->forward;
  uint64_t id = f->id;
  struct sockaddr_in sin = { .sin_family = AF_INET };
  struct timeval tv = { FORWARD_CONNECT_MS / 1000, 0 };
  struct fwd *fw;

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
  fw = calloc (1, sizeof *fw);
  if (fw == NULL)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "out of memory");
      return;
    }
  fw->c = c;
  fw->port = (uint16_t) rq->port;
  fw->peer = bufferevent_socket_new (agent.base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (fw->peer == NULL)
    {
      free (fw);
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "cannot create a socket");
      return;
    }
  conn_req_add (c, &fw->r, id, forward_cancel, NULL);
  conn_take_stream (c, &fwd_ops, fw);
  bufferevent_setcb (fw->peer, NULL, NULL, connect_event_cb, fw);
  bufferevent_set_timeouts (fw->peer, &tv, &tv);
  sin.sin_port = htons (fw->port);
  sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (bufferevent_socket_connect (fw->peer, (struct sockaddr *) &sin, sizeof sin) < 0)
    {
      /* An immediate failure (e.g. no buffers) gets no event callback. */
      conn_req_done (&fw->r);
      bufferevent_free (fw->peer);
      conn_stream_release (c);
      bufferevent_enable (c->bev, EV_READ);
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_NOT_FOUND, "connect 127.0.0.1:%u: %s",
                       fw->port, strerror (errno));
      free (fw);
    }
}
