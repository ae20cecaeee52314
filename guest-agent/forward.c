/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Forward: the connection stops carrying frames and becomes a raw pipe to
 * guest 127.0.0.1:port (CDP listens only there).  Bytes move between the two
 * bufferevents without copies (evbuffer_add_buffer); a side whose output
 * passes AGENT_OUT_HIGH stops the other side's reads until it drains to
 * half, so a slow reader cannot make the agent buffer without bound.
 */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "log.h"

#define FORWARD_CONNECT_MS 5000
#define FORWARD_IO_MAX (256u << 10)

struct forward_req
{
  struct req r;
  uint16_t port;
};

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

void
forward_conn_drained (struct conn *c)
{
  if (c->mode == CONN_FORWARDING && c->peer != NULL)
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
      bufferevent_enable (bev, EV_READ | EV_WRITE);
      bufferevent_enable (c->bev, EV_READ);
      /* Bytes the host sent right behind the Forward frame. */
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
