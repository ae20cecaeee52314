/* SPDX-License-Identifier: Apache-2.0 */
/* ttrpc framing and a unary server on libevent (ttrpc.h). */
#include "ttrpc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "google/rpc/status.pb-c.h"
#include "log.h"

int
ttrpc_header_parse (const uint8_t *b, struct ttrpc_header *h, struct err **err)
{
  h->length = (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
  h->stream_id = (uint32_t) b[4] << 24 | (uint32_t) b[5] << 16 | (uint32_t) b[6] << 8 | b[7];
  h->type = b[8];
  h->flags = b[9];
  if (h->length > TTRPC_MESSAGE_MAX)
    return err_make (err, EMSGSIZE, "ttrpc message of %u bytes (at most %u)", h->length,
                     TTRPC_MESSAGE_MAX);
  return 0;
}

void
ttrpc_header_encode (const struct ttrpc_header *h, uint8_t b[TTRPC_HEADER_LEN])
{
  b[0] = (uint8_t) (h->length >> 24);
  b[1] = (uint8_t) (h->length >> 16);
  b[2] = (uint8_t) (h->length >> 8);
  b[3] = (uint8_t) h->length;
  b[4] = (uint8_t) (h->stream_id >> 24);
  b[5] = (uint8_t) (h->stream_id >> 16);
  b[6] = (uint8_t) (h->stream_id >> 8);
  b[7] = (uint8_t) h->stream_id;
  b[8] = h->type;
  b[9] = h->flags;
}

int
ttrpc_request_decode (const uint8_t *data, size_t len, Ttrpc__Request **out, struct err **err)
{
  Ttrpc__Request *r = ttrpc__request__unpack (NULL, len, data);

  if (r == NULL)
    return err_make (err, EBADMSG, "ttrpc request does not decode");
  if (r->service[0] == '\0' || r->method[0] == '\0')
    {
      ttrpc__request__free_unpacked (r, NULL);
      return err_make (err, EBADMSG, "ttrpc request without service or method");
    }
  *out = r;
  return 0;
}

int
ttrpc_response_frame (uint32_t stream, int code, const char *msg, const ProtobufCMessage *payload,
                      uint8_t **out, size_t *len, struct err **err)
{
  Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
  Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
  cleanup_free uint8_t *body = NULL;
  struct ttrpc_header h;
  size_t n;

  st.code = code;
  st.message = (char *) (msg != NULL ? msg : "");
  resp.status = &st;
  if (payload != NULL && code == TTRPC_OK)
    {
      n = protobuf_c_message_get_packed_size (payload);
      if (n > TTRPC_MESSAGE_MAX / 2 || (body = malloc (n ?: 1)) == NULL)
        return err_make (err, ENOMEM, "ttrpc payload of %zu bytes", n);
      protobuf_c_message_pack (payload, body);
      resp.payload.data = body;
      resp.payload.len = n;
    }
  n = ttrpc__response__get_packed_size (&resp);
  if (n > TTRPC_MESSAGE_MAX)
    return err_make (err, EMSGSIZE, "ttrpc response of %zu bytes", n);
  if ((*out = malloc (TTRPC_HEADER_LEN + n)) == NULL)
    return err_make (err, ENOMEM, "ttrpc response");
  h = (struct ttrpc_header){ .length = (uint32_t) n,
                             .stream_id = stream,
                             .type = TTRPC_TYPE_RESPONSE };
  ttrpc_header_encode (&h, *out);
  ttrpc__response__pack (&resp, *out + TTRPC_HEADER_LEN);
  *len = TTRPC_HEADER_LEN + n;
  return 0;
}

/* ---- server ------------------------------------------------------------------ */

struct ttrpc_conn
{
  struct ttrpc_server *srv;
  struct bufferevent *bev; /* NULL once closed */
  unsigned refs;           /* the open connection counts one, each call one */
};

struct ttrpc_server
{
  struct event_base *base;
  struct evconnlistener *listener;
  ttrpc_handler_fn fn;
  void *ctx;
  unsigned n_conns;
  struct ttrpc_conn *conns[TTRPC_MAX_CONNS]; /* the open ones, closed by ttrpc_server_free */
};

static void
conn_unref (struct ttrpc_conn *c)
{
  if (--c->refs == 0)
    free (c);
}

static void
conn_close (struct ttrpc_conn *c)
{
  if (c->bev == NULL)
    return;
  bufferevent_free (c->bev);
  c->bev = NULL;
  c->srv->n_conns--;
  for (unsigned i = 0; i < TTRPC_MAX_CONNS; i++)
    if (c->srv->conns[i] == c)
      c->srv->conns[i] = NULL;
  conn_unref (c);
}

/* One request frame of len bytes at the head of in (header removed). */
static void
conn_request (struct ttrpc_conn *c, const struct ttrpc_header *h, struct evbuffer *in)
{
  cleanup_err struct err *err = NULL;
  uint8_t *data = evbuffer_pullup (in, h->length);
  Ttrpc__Request *req = NULL;
  struct ttrpc_call *call = calloc (1, sizeof *call);
  char buf[256];

  if (call == NULL)
    {
      evbuffer_drain (in, h->length);
      return;
    }
  call->conn = c;
  call->stream_id = h->stream_id;
  c->refs++;
  if (ttrpc_request_decode (data, h->length, &req, &err) < 0)
    {
      evbuffer_drain (in, h->length);
      ttrpc_reply (call, TTRPC_INVALID_ARGUMENT, err_str (err, buf, sizeof buf), NULL);
      return;
    }
  evbuffer_drain (in, h->length);
  c->srv->fn (c->srv->ctx, call, req);
  ttrpc__request__free_unpacked (req, NULL);
}

static void
conn_read (struct bufferevent *bev, void *arg)
{
  struct ttrpc_conn *c = arg;
  struct evbuffer *in = bufferevent_get_input (bev);
  uint8_t hb[TTRPC_HEADER_LEN];
  struct ttrpc_header h;

  c->refs++; /* a handler may close the connection under us */
  while (c->bev != NULL && evbuffer_get_length (in) >= TTRPC_HEADER_LEN)
    {
      cleanup_err struct err *err = NULL;
      char buf[256];

      evbuffer_copyout (in, hb, sizeof hb);
      if (ttrpc_header_parse (hb, &h, &err) < 0)
        {
          log_warn ("ttrpc: %s; closing the connection", err_str (err, buf, sizeof buf));
          conn_close (c);
          break;
        }
      if (evbuffer_get_length (in) < TTRPC_HEADER_LEN + (size_t) h.length)
        break;
      evbuffer_drain (in, TTRPC_HEADER_LEN);
      if (h.type == TTRPC_TYPE_REQUEST)
        conn_request (c, &h, in);
      else
        evbuffer_drain (in, h.length); /* nothing else is ours to answer */
    }
  conn_unref (c);
}

static void
conn_event (struct bufferevent *bev, short what, void *arg)
{
  (void) bev;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    conn_close (arg);
}

static bool
peer_is_us (int fd)
{
  struct ucred cred;
  socklen_t len = sizeof cred;

  return getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid ();
}

static void
on_accept (struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
  struct ttrpc_server *s = arg;
  struct ttrpc_conn *c;

  (void) l;
  (void) sa;
  (void) salen;
  if (s->n_conns >= TTRPC_MAX_CONNS || !peer_is_us (fd) || (c = calloc (1, sizeof *c)) == NULL)
    {
      log_warn ("ttrpc: connection refused (another uid, or %u open)", s->n_conns);
      close (fd);
      return;
    }
  c->srv = s;
  c->refs = 1;
  c->bev = bufferevent_socket_new (s->base, fd, BEV_OPT_CLOSE_ON_FREE);
  if (c->bev == NULL)
    {
      close (fd);
      free (c);
      return;
    }
  s->n_conns++;
  for (unsigned i = 0; i < TTRPC_MAX_CONNS; i++)
    if (s->conns[i] == NULL)
      {
        s->conns[i] = c;
        break;
      }
  bufferevent_setcb (c->bev, conn_read, NULL, conn_event, c);
  bufferevent_setwatermark (c->bev, EV_READ, 0, TTRPC_HEADER_LEN + TTRPC_MESSAGE_MAX);
  bufferevent_enable (c->bev, EV_READ | EV_WRITE);
}

int
ttrpc_server_new (struct event_base *base, int fd, ttrpc_handler_fn fn, void *ctx,
                  struct ttrpc_server **out, struct err **err)
{
  struct ttrpc_server *s = calloc (1, sizeof *s);

  if (s == NULL)
    {
      close (fd);
      return err_make (err, ENOMEM, "ttrpc server");
    }
  *s = (struct ttrpc_server){ .base = base, .fn = fn, .ctx = ctx };
  evutil_make_socket_nonblocking (fd);
  evutil_make_socket_closeonexec (fd);
  s->listener = evconnlistener_new (base, on_accept, s,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
  if (s->listener == NULL)
    {
      close (fd);
      free (s);
      return err_make (err, errno, "listen");
    }
  *out = s;
  return 0;
}

void
ttrpc_server_free (struct ttrpc_server *s)
{
  if (s == NULL)
    return;
  for (unsigned i = 0; i < TTRPC_MAX_CONNS; i++)
    if (s->conns[i] != NULL)
      conn_close (s->conns[i]);
  evconnlistener_free (s->listener);
  free (s);
}

void
ttrpc_reply (struct ttrpc_call *call, int code, const char *msg, const ProtobufCMessage *payload)
{
  cleanup_err struct err *err = NULL;
  cleanup_free uint8_t *frame = NULL;
  struct ttrpc_conn *c = call->conn;
  size_t len = 0;
  char buf[256];

  if (c->bev != NULL)
    {
      if (ttrpc_response_frame (call->stream_id, code, msg, payload, &frame, &len, &err) < 0)
        {
          log_warn ("ttrpc: %s", err_str (err, buf, sizeof buf));
          err_release (&err);
          if (ttrpc_response_frame (call->stream_id, TTRPC_INTERNAL, "response too large", NULL,
                                    &frame, &len, &err)
              < 0)
            len = 0;
        }
      if (len > 0)
        bufferevent_write (c->bev, frame, len);
    }
  conn_unref (c);
  free (call);
}

void
ttrpc_replyf (struct ttrpc_call *call, int code, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  ttrpc_reply (call, code, msg, NULL);
}
