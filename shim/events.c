/* SPDX-License-Identifier: Apache-2.0 */
/* The ordered publisher of task events (events.h). */
#include "events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"
#include "cleanup.h"
#include "google/protobuf/any.pb-c.h"
#include "log.h"

#define EVENTS_QUEUE_MAX 64

struct queued
{
  char topic[64];
  uint8_t *any; /* the packed Any */
  size_t len;
};

struct events
{
  struct event_base *base;
  char *binary, *address, *ns;
  struct queued q[EVENTS_QUEUE_MAX];
  size_t head, n;
  bool busy;
  void (*idle_fn) (void *);
  void *idle_arg;
};

struct events *
events_new (struct event_base *base, const char *publish_binary, const char *address,
            const char *ns)
{
  struct events *e = calloc (1, sizeof *e);

  if (e == NULL)
    return NULL;
  e->base = base;
  e->binary = strdup (publish_binary);
  e->address = strdup (address);
  e->ns = strdup (ns);
  if (e->binary == NULL || e->address == NULL || e->ns == NULL)
    {
      events_free (e);
      return NULL;
    }
  return e;
}

void
events_free (struct events *e)
{
  if (e == NULL)
    return;
  for (size_t i = 0; i < e->n; i++)
    free (e->q[(e->head + i) % EVENTS_QUEUE_MAX].any);
  free (e->binary);
  free (e->address);
  free (e->ns);
  free (e);
}

static void next (struct events *e);

static void
published (void *arg, int status, const char *out, const char *errout)
{
  struct events *e = arg;
  struct queued *q = &e->q[e->head];
  char line[256];

  (void) out;
  if (status != 0)
    {
      child_last_line (errout, line, sizeof line);
      log_warn ("publish %s: exit status %d: %s", q->topic, status, line);
    }
  free (q->any);
  e->head = (e->head + 1) % EVENTS_QUEUE_MAX;
  e->n--;
  e->busy = false;
  next (e);
}

static void
next (struct events *e)
{
  cleanup_err struct err *err = NULL;
  struct queued *q;
  char buf[256];

  while (!e->busy && e->n > 0)
    {
      q = &e->q[e->head];
      const char *argv[] = { e->binary, "--address",   e->address, "publish", "--topic",
                             q->topic,  "--namespace", e->ns,      NULL };
      if (child_spawn (e->base, argv, q->any, q->len, published, e, &err) == 0)
        {
          e->busy = true;
          return;
        }
      log_warn ("publish %s: %s", q->topic, err_str (err, buf, sizeof buf));
      err_release (&err);
      free (q->any);
      e->head = (e->head + 1) % EVENTS_QUEUE_MAX;
      e->n--;
    }
  if (e->n == 0 && e->idle_fn != NULL)
    {
      void (*fn) (void *) = e->idle_fn;

      e->idle_fn = NULL;
      fn (e->idle_arg);
    }
}

void
events_publish (struct events *e, const char *topic, const char *type_url,
                const ProtobufCMessage *msg)
{
  Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
  cleanup_free uint8_t *value = NULL;
  struct queued *q;
  size_t n = protobuf_c_message_get_packed_size (msg);

  if (e->n >= EVENTS_QUEUE_MAX || (value = malloc (n ?: 1)) == NULL)
    {
      log_warn ("publish %s: queue full or out of memory; dropped", topic);
      return;
    }
  protobuf_c_message_pack (msg, value);
  any.type_url = (char *) type_url;
  any.value.data = value;
  any.value.len = n;
  q = &e->q[(e->head + e->n) % EVENTS_QUEUE_MAX];
  snprintf (q->topic, sizeof q->topic, "%s", topic);
  q->len = google__protobuf__any__get_packed_size (&any);
  if ((q->any = malloc (q->len)) == NULL)
    return;
  google__protobuf__any__pack (&any, q->any);
  e->n++;
  next (e);
}

bool
events_idle (struct events *e)
{
  return e->n == 0;
}

void
events_on_idle (struct events *e, void (*fn) (void *), void *arg)
{
  e->idle_fn = fn;
  e->idle_arg = arg;
  if (e->n == 0)
    next (e);
}
