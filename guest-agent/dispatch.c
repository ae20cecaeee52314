/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Routes each frame to its handler by one table: which body it is, whether
 * it is accepted while filesystems are frozen, the name Hello advertises.
 * Admission (dispatch_admit) and Hello's capability list come from the
 * table.  Hello and Ping, which belong to the protocol itself, are here.
 */
#include "dispatch.h"

#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "forward.h"
#include "freeze.h"
#include "identity.h"
#include "ready.h"
#include "shutdown.h"
#include "sysinfo.h"

static void hello_handle (struct conn *c, const Frame *f);
static void ping_handle (struct conn *c, const Frame *f);

struct route
{
  Chvm__Agent__Frame__BodyCase body_case;
  bool when_frozen; /* accepted while filesystems are frozen */
  const char *name; /* in the refusal while frozen */
  const char *cap;  /* in HelloReply.capabilities (NULL: not listed) */
  void (*handle) (struct conn *c, const Frame *f);
};

/* Hello comes first and is accepted once (dispatch_admit); the rest in the
   order of HelloReply.capabilities. */
static const struct route routes[] = {
  { CHVM__AGENT__FRAME__BODY_HELLO, true, "Hello", NULL, hello_handle },
  { CHVM__AGENT__FRAME__BODY_PING, true, "Ping", "ping", ping_handle },
  { CHVM__AGENT__FRAME__BODY_HEALTH, true, "Health", "health", health_handle },
  { CHVM__AGENT__FRAME__BODY_WAIT_READY, false, "WaitReady", "wait_ready", ready_handle },
  { CHVM__AGENT__FRAME__BODY_QUIESCE, false, "Quiesce", "quiesce", freeze_handle },
  { CHVM__AGENT__FRAME__BODY_THAW, true, "Thaw", "thaw", thaw_handle },
  { CHVM__AGENT__FRAME__BODY_FORWARD, false, "Forward", "forward", forward_handle },
  { CHVM__AGENT__FRAME__BODY_EXEC, false, "Exec", "exec", exec_handle },
  { CHVM__AGENT__FRAME__BODY_SHUTDOWN, false, "Shutdown", "shutdown", shutdown_handle },
  { CHVM__AGENT__FRAME__BODY_IDENTITY, false, "Identity", "identity", identity_handle },
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static const struct route *
route_find (Chvm__Agent__Frame__BodyCase body_case)
{
  for (size_t i = 0; i < N_ROUTES; i++)
    if (routes[i].body_case == body_case)
      return &routes[i];
  return NULL;
}

/* "filesystems are frozen: only Ping, Health and Thaw are accepted", from
   the requests the table accepts while frozen. */
static const char *
frozen_why (void)
{
  static char why[160];
  size_t n = 0, k = 0, len;

  if (why[0] != '\0')
    return why;
  for (size_t i = 0; i < N_ROUTES; i++)
    n += routes[i].when_frozen && routes[i].cap != NULL;
  len = (size_t) snprintf (why, sizeof why, "filesystems are frozen: only");
  for (size_t i = 0; i < N_ROUTES && len < sizeof why; i++)
    if (routes[i].when_frozen && routes[i].cap != NULL)
      {
        k++;
        len += (size_t) snprintf (why + len, sizeof why - len, "%s %s",
                                  k == 1   ? ""
                                  : k == n ? " and"
                                           : ",",
                                  routes[i].name);
      }
  if (len < sizeof why)
    snprintf (why + len, sizeof why - len, " are accepted");
  return why;
}

Chvm__Agent__ErrorCode
dispatch_admit (const Frame *f, bool authed, bool frozen, const char **why)
{
  const struct route *r = route_find (f->body_case);

  if (f->body_case == CHVM__AGENT__FRAME__BODY__NOT_SET)
    {
      *why = "empty or unknown message";
      return CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST;
    }
  if (r == NULL)
    {
      *why = "not a request";
      return CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST;
    }
  if (f->body_case == CHVM__AGENT__FRAME__BODY_HELLO)
    {
      if (authed)
        {
          *why = "Hello was already received";
          return CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST;
        }
      return CHVM__AGENT__ERROR_CODE__ERROR_UNSPECIFIED;
    }
  if (!authed)
    {
      *why = "Hello must come first";
      return CHVM__AGENT__ERROR_CODE__ERROR_UNAUTHENTICATED;
    }
  if (frozen && !r->when_frozen)
    {
      *why = frozen_why ();
      return CHVM__AGENT__ERROR_CODE__ERROR_FROZEN;
    }
  return CHVM__AGENT__ERROR_CODE__ERROR_UNSPECIFIED;
}

static void
hello_handle (struct conn *c, const Frame *f)
{
  static char *caps[N_ROUTES];
  static size_t n_caps;
  const Chvm__Agent__Hello *h = f->hello;
  Chvm__Agent__HelloReply hr = CHVM__AGENT__HELLO_REPLY__INIT;
  Frame rf = CHVM__AGENT__FRAME__INIT;

  if (h->protocol_version < AGENT_PROTOCOL_VERSION)
    {
      conn_send_error (c, f->id, CHVM__AGENT__ERROR_CODE__ERROR_VERSION,
                       "protocol version %u not supported (agent speaks 1..%u)",
                       h->protocol_version, AGENT_PROTOCOL_VERSION);
      conn_close (c);
      return;
    }
  if (!conn_authenticate (c, f->id, h))
    return;
  if (n_caps == 0)
    for (size_t i = 0; i < N_ROUTES; i++)
      if (routes[i].cap != NULL)
        caps[n_caps++] = (char *) routes[i].cap;
  hr.protocol_version = AGENT_PROTOCOL_VERSION;
  hr.agent_version = (char *) AGENT_VERSION;
  hr.n_capabilities = n_caps;
  hr.capabilities = caps;
  rf.id = f->id;
  rf.body_case = CHVM__AGENT__FRAME__BODY_HELLO_REPLY;
  rf.hello_reply = &hr;
  conn_send (c, &rf);
}

static void
ping_handle (struct conn *c, const Frame *f)
{
  Chvm__Agent__PingReply pr = CHVM__AGENT__PING_REPLY__INIT;
  Frame rf = CHVM__AGENT__FRAME__INIT;

  rf.id = f->id;
  rf.body_case = CHVM__AGENT__FRAME__BODY_PING_REPLY;
  rf.ping_reply = &pr;
  conn_send (c, &rf);
}

void
dispatch_frame (struct conn *c, const uint8_t *data, size_t len)
{
  Frame *f = chvm__agent__frame__unpack (NULL, len, data);
  Chvm__Agent__ErrorCode code;
  const char *why = "";

  if (f == NULL)
    {
      /* The id is unknown; 0 is never a valid request id from chvm. */
      conn_send_error (c, 0, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST,
                       "frame of %zu bytes is not a protobuf Frame", len);
      return;
    }
  code = dispatch_admit (f, c->authed, agent.frozen, &why);
  if (code != CHVM__AGENT__ERROR_CODE__ERROR_UNSPECIFIED)
    {
      conn_send_error (c, f->id, code, "%s", why);
      if (code == CHVM__AGENT__ERROR_CODE__ERROR_UNAUTHENTICATED)
        conn_close (c);
    }
  else
    route_find (f->body_case)->handle (c, f);
  chvm__agent__frame__free_unpacked (f, NULL);
}
