/* SPDX-License-Identifier: Apache-2.0 */
/*
 * WaitReady, and the CDP probe Health uses.  A probe connects to
 * 127.0.0.1:port and, for CDP, sends GET /json/version; success is a 200
 * whose JSON names "Browser".  Each attempt is event-driven and bounded by
 * the time left; a failed attempt re-arms a timer with exponential backoff
 * (20 ms doubling to 500 ms) until the request's deadline, so readiness is
 * seen within one backoff step of CDP coming up and nothing ever sleeps.
 */
#include "ready.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "clock.h"
#include "log.h"
#include "num.h"

#define PROBE_MAX_RESPONSE (64u << 10)
#define PROBE_ATTEMPT_MAX_MS 2000u
#define PROBE_BACKOFF_FIRST_MS 20u
#define PROBE_BACKOFF_MAX_MS 500u
#define READY_MAX_PORTS 16

struct probe
{
  uint16_t port;
  bool http, retry;
  double deadline; /* clock_now_ms () */
  /* The end of the current attempt: libevent's read timeout restarts with
     every byte, so a server that trickles its answer would otherwise keep
     one attempt (and the request) going past its deadline. */
  double attempt_end;
  unsigned backoff_ms;
  struct bufferevent *bev;
  struct event *timer;
  probe_cb cb;
  void *arg;
  char why[160];
  char browser[256];
};

static struct timeval
tv_ms (long ms)
{
  struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
  return tv;
}

/* Copies a JSON string value starting after its opening quote. */
static int
json_string (const char *p, const char *end, char *out, size_t out_len)
{
  size_t o = 0;

  while (p < end && *p != '"')
    {
      if (*p == '\\' && p + 1 < end)
        p++;
      if (o + 1 < out_len)
        out[o++] = *p;
      p++;
    }
  if (p >= end)
    return -1;
  out[o] = '\0';
  return 0;
}

static const char *
skip_json_ws (const char *p, const char *end)
{
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    p++;
  return p;
}

int
ready_parse_version (const char *resp, size_t len, char *browser, size_t browser_len)
{
  const char *end = resp + len, *hdr_end, *body, *p;
  size_t want = 0;
  bool have_len = false;

  hdr_end = memmem (resp, len, "\r\n\r\n", 4);
  if (hdr_end == NULL)
    return 0;
  if (len < 12 || memcmp (resp, "HTTP/1.", 7) != 0)
    return -1;
  if (memcmp (resp + 8, " 200", 4) != 0)
    return -1;
  body = hdr_end + 4;
  /* Content-Length, when given, says whether the body is complete. */
  for (p = resp; p < hdr_end; p++)
    if ((p == resp || p[-1] == '\n') && (size_t) (hdr_end - p) > 15
        && strncasecmp (p, "Content-Length:", 15) == 0)
      {
        const char *q = p + 15;
        size_t k = 0;
        uint64_t n;
        while (q < hdr_end && *q == ' ')
          q++;
        while (q + k < hdr_end && q[k] >= '0' && q[k] <= '9')
          k++;
        if (num_parse_u64 (q, k, SIZE_MAX, &n) < 0)
          return -1;
        want = (size_t) n;
        have_len = true;
      }
  if (have_len && (size_t) (end - body) < want)
    return 0;
  p = memmem (body, (size_t) (end - body), "\"Browser\"", 9);
  if (p == NULL)
    return have_len ? -1 : 0;
  p += 9;
  p = skip_json_ws (p, end);
  if (p >= end)
    return have_len ? -1 : 0;
  if (*p != ':')
    return -1;
  p++;
  p = skip_json_ws (p, end);
  if (p >= end)
    return have_len ? -1 : 0;
  if (*p != '"')
    return -1;
  if (json_string (p + 1, end, browser, browser_len) < 0)
    return have_len ? -1 : 0;
  return 1;
}

static void probe_attempt (struct probe *p);

static void
probe_finish (struct probe *p, bool ok)
{
  probe_cb cb = p->cb;
  void *arg = p->arg;

  if (p->bev)
    bufferevent_free (p->bev);
  p->bev = NULL;
  event_free (p->timer);
  cb (arg, ok, p->browser, p->why);
  free (p);
}

static void
probe_failed (struct probe *p)
{
  long left = (long) (p->deadline - clock_now_ms ());
  struct timeval tv;

  if (p->bev)
    bufferevent_free (p->bev);
  p->bev = NULL;
  if (!p->retry || left <= 0)
    {
      probe_finish (p, false);
      return;
    }
  /* The last wait ends at the deadline itself, where probe_attempt gives up. */
  tv = tv_ms (left < (long) p->backoff_ms ? left : (long) p->backoff_ms);
  p->backoff_ms
      = p->backoff_ms * 2 > PROBE_BACKOFF_MAX_MS ? PROBE_BACKOFF_MAX_MS : p->backoff_ms * 2;
  evtimer_add (p->timer, &tv);
}

static void
probe_read_cb (struct bufferevent *bev, void *arg)
{
  struct probe *p = arg;
  struct evbuffer *in = bufferevent_get_input (bev);
  size_t len = evbuffer_get_length (in);
  int r;

  if (len > PROBE_MAX_RESPONSE)
    {
      snprintf (p->why, sizeof p->why, "127.0.0.1:%u: /json/version answer over %u bytes", p->port,
                PROBE_MAX_RESPONSE);
      probe_failed (p);
      return;
    }
  r = ready_parse_version ((const char *) evbuffer_pullup (in, -1), len, p->browser,
                           sizeof p->browser);
  if (r > 0)
    probe_finish (p, true);
  else if (r < 0)
    {
      snprintf (p->why, sizeof p->why,
                "127.0.0.1:%u: /json/version: no 200 answer with \"Browser\"", p->port);
      probe_failed (p);
    }
  else
    {
      long left = (long) (p->attempt_end - clock_now_ms ());
      struct timeval tv;

      if (left <= 0)
        {
          snprintf (p->why, sizeof p->why, "127.0.0.1:%u: no complete answer in time", p->port);
          probe_failed (p);
          return;
        }
      tv = tv_ms (left);
      bufferevent_set_timeouts (bev, &tv, &tv);
    }
}

static void
probe_event_cb (struct bufferevent *bev, short what, void *arg)
{
  struct probe *p = arg;

  if (what & BEV_EVENT_CONNECTED)
    {
      char req[160];
      int n;
      if (!p->http)
        {
          probe_finish (p, true);
          return;
        }
      n = snprintf (req, sizeof req,
                    "GET /json/version HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                    "Connection: close\r\n\r\n",
                    p->port);
      bufferevent_write (bev, req, (size_t) n);
      bufferevent_enable (bev, EV_READ);
      return;
    }
  if (what & BEV_EVENT_TIMEOUT)
    snprintf (p->why, sizeof p->why, "127.0.0.1:%u: no answer in time", p->port);
  else if (what & BEV_EVENT_EOF)
    snprintf (p->why, sizeof p->why, "127.0.0.1:%u: closed before a complete answer", p->port);
  else
    snprintf (p->why, sizeof p->why, "127.0.0.1:%u: %s", p->port,
              strerror (EVUTIL_SOCKET_ERROR ()));
  probe_failed (p);
}

static void
probe_attempt (struct probe *p)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons (p->port) };
  long left = (long) (p->deadline - clock_now_ms ());
  struct timeval tv;

  if (left <= 0)
    {
      if (p->why[0] == '\0')
        snprintf (p->why, sizeof p->why, "127.0.0.1:%u: deadline passed", p->port);
      probe_finish (p, false);
      return;
    }
  tv = tv_ms (left < (long) PROBE_ATTEMPT_MAX_MS ? left : (long) PROBE_ATTEMPT_MAX_MS);
  p->attempt_end = clock_now_ms () + (double) tv.tv_sec * 1e3 + (double) tv.tv_usec / 1e3;
  sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  p->bev = bufferevent_socket_new (agent.base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (p->bev == NULL)
    {
      snprintf (p->why, sizeof p->why, "cannot create a socket");
      probe_failed (p);
      return;
    }
  bufferevent_setcb (p->bev, probe_read_cb, NULL, probe_event_cb, p);
  bufferevent_set_timeouts (p->bev, &tv, &tv);
  if (bufferevent_socket_connect (p->bev, (struct sockaddr *) &sin, sizeof sin) < 0)
    {
      snprintf (p->why, sizeof p->why, "127.0.0.1:%u: %s", p->port, strerror (errno));
      probe_failed (p);
    }
}

static void
probe_timer_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  probe_attempt (arg);
}

struct probe *
probe_start (uint16_t port, bool http, unsigned deadline_ms, bool retry, probe_cb cb, void *arg)
{
  struct probe *p = calloc (1, sizeof *p);
  struct timeval now = { 0, 0 };

  if (p == NULL)
    return NULL;
  p->port = port;
  p->http = http;
  p->retry = retry;
  p->cb = cb;
  p->arg = arg;
  p->backoff_ms = PROBE_BACKOFF_FIRST_MS;
  p->deadline = clock_now_ms () + deadline_ms;
  p->timer = evtimer_new (agent.base, probe_timer_cb, p);
  if (p->timer == NULL)
    {
      free (p);
      return NULL;
    }
  /* The first attempt runs from the loop, so the callback never fires
     before the caller has registered its request. */
  evtimer_add (p->timer, &now);
  return p;
}

void
probe_cancel (struct probe *p)
{
  if (p == NULL)
    return;
  if (p->bev)
    bufferevent_free (p->bev);
  event_free (p->timer);
  free (p);
}

/* WaitReady: one retrying probe for CDP and one per extra TCP port. */
struct ready_req
{
  struct req r;
  double start; /* clock_now_ms () */
  size_t n;
  struct ready_slot
  {
    struct ready_req *owner;
    struct probe *probe;
  } slots[1 + READY_MAX_PORTS];
  size_t pending;
  char browser[256];
};

static void
ready_free (struct ready_req *rr)
{
  for (size_t i = 0; i < rr->n; i++)
    probe_cancel (rr->slots[i].probe);
  free (rr);
}

static void
ready_cancel (struct req *r)
{
  ready_free ((struct ready_req *) r);
}

static void
ready_probe_done (void *arg, bool ok, const char *browser, const char *why)
{
  struct ready_slot *s = arg;
  struct ready_req *rr = s->owner;

  s->probe = NULL; /* it frees itself */
  if (!ok)
    {
      conn_send_error (rr->r.conn, rr->r.id, CHVM__AGENT__ERROR_CODE__ERROR_TIMEOUT,
                       "not ready before the deadline: %s", why);
      conn_req_done (&rr->r);
      ready_free (rr);
      return;
    }
  if (s == &rr->slots[0])
    snprintf (rr->browser, sizeof rr->browser, "%s", browser);
  if (--rr->pending > 0)
    return;
  Chvm__Agent__WaitReadyReply wr = CHVM__AGENT__WAIT_READY_REPLY__INIT;
  Frame f = CHVM__AGENT__FRAME__INIT;
  wr.ready_after_ms = (uint32_t) (clock_now_ms () - rr->start);
  wr.browser = rr->browser;
  f.id = rr->r.id;
  f.body_case = CHVM__AGENT__FRAME__BODY_WAIT_READY_REPLY;
  f.wait_ready_reply = &wr;
  conn_send (rr->r.conn, &f);
  log_info ("ready after %u ms: %s", wr.ready_after_ms, rr->browser);
  conn_req_done (&rr->r);
  ready_free (rr);
}

void
ready_handle (struct conn *c, const Frame *f)
{
  const Chvm__Agent__WaitReadyRequest *rq = f->wait_ready;
  uint64_t id = f->id;
  unsigned deadline = rq->deadline_ms ? rq->deadline_ms : 30000;
  unsigned cdp = rq->cdp_port ? rq->cdp_port : agent.cdp_port;
  struct ready_req *rr;

  if (rq->n_tcp_ports > READY_MAX_PORTS)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST, "at most %d extra ports",
                       READY_MAX_PORTS);
      return;
    }
  if (cdp > 65535 || deadline > 3600000)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST,
                       "cdp_port must be < 65536 and deadline_ms <= 3600000");
      return;
    }
  for (size_t i = 0; i < rq->n_tcp_ports; i++)
    if (rq->tcp_ports[i] == 0 || rq->tcp_ports[i] > 65535)
      {
        conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST, "bad port %u",
                         rq->tcp_ports[i]);
        return;
      }
  rr = calloc (1, sizeof *rr);
  if (rr == NULL)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "out of memory");
      return;
    }
  rr->start = clock_now_ms ();
  for (size_t i = 0; i <= rq->n_tcp_ports; i++)
    {
      uint16_t port = (uint16_t) (i == 0 ? cdp : rq->tcp_ports[i - 1]);
      rr->slots[i].owner = rr;
      rr->slots[i].probe
          = probe_start (port, i == 0, deadline, true, ready_probe_done, &rr->slots[i]);
      rr->n = i + 1;
      if (rr->slots[i].probe == NULL)
        {
          ready_free (rr);
          conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "out of memory");
          return;
        }
    }
  rr->pending = rr->n;
  conn_req_add (c, &rr->r, id, ready_cancel, NULL);
}
