/* SPDX-License-Identifier: Apache-2.0 */
#include "vmm/qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "sys/proc.h"

#define QMP_MAX_PENDING 256

struct qmp
{
  int fd;
  char *buf; /* bytes read but not yet parsed into a message */
  size_t len;
  struct json_object *pending[QMP_MAX_PENDING]; /* events seen while waiting for a reply */
  size_t n_pending;
};

/* Reads the next message (one line) before the deadline. */
static int
read_msg (struct qmp *q, double deadline, struct json_object **msg, struct err **err)
{
  for (;;)
    {
      char *nl = q->len ? memchr (q->buf, '\n', q->len) : NULL;
      if (nl != NULL)
        {
          size_t n = (size_t) (nl - q->buf) + 1;
          struct json_object *o;
          *nl = '\0';
          o = json_tokener_parse (q->buf);
          memmove (q->buf, q->buf + n, q->len - n);
          q->len -= n;
          if (o == NULL || !json_object_is_type (o, json_type_object))
            {
              json_object_put (o);
              return err_make (err, EPROTO, "QMP: malformed message");
            }
          *msg = o;
          return 0;
        }
      if (q->len >= QMP_MAX_MSG)
        return err_make (err, EMSGSIZE, "QMP: message larger than %d bytes", QMP_MAX_MSG);
      struct pollfd p = { .fd = q->fd, .events = POLLIN };
      int left = clock_left_ms (deadline);
      int r = left > 0 ? TEMP_FAILURE_RETRY (poll (&p, 1, left)) : 0;
      if (r < 0)
        return err_make (err, errno, "QMP: poll");
      if (r == 0)
        return err_make (err, ETIMEDOUT, "QMP: no answer");
      ssize_t got = TEMP_FAILURE_RETRY (read (q->fd, q->buf + q->len, QMP_MAX_MSG - q->len));
      if (got < 0)
        return err_make (err, errno, "QMP: read");
      if (got == 0)
        return err_make (err, ECONNRESET, "QMP: QEMU closed the monitor");
      q->len += (size_t) got;
    }
}

static int
write_all (int fd, const char *s, size_t n, struct err **err)
{
  while (n > 0)
    {
      ssize_t w = TEMP_FAILURE_RETRY (send (fd, s, n, MSG_NOSIGNAL));
      if (w < 0)
        return err_make (err, errno, "QMP: write");
      s += w;
      n -= (size_t) w;
    }
  return 0;
}

void
qmp_close (struct qmp *q)
{
  if (q == NULL)
    return;
  if (q->fd >= 0)
    close (q->fd);
  for (size_t i = 0; i < q->n_pending; i++)
    json_object_put (q->pending[i]);
  free (q->buf);
  free (q);
}

static void
keep_event (struct qmp *q, struct json_object *ev)
{
  if (q->n_pending == QMP_MAX_PENDING)
    {
      /* Oldest first out: a flood of events must not grow memory. */
      json_object_put (q->pending[0]);
      memmove (q->pending, q->pending + 1, (QMP_MAX_PENDING - 1) * sizeof q->pending[0]);
      q->n_pending--;
    }
  q->pending[q->n_pending++] = ev;
}

static int
execute_until (struct qmp *q, const char *cmd, struct json_object *args, struct json_object **ret,
               double deadline, struct err **err)
{
  struct json_object *req = json_object_new_object ();
  const char *s;

  json_object_object_add (req, "execute", json_object_new_string (cmd));
  if (args != NULL)
    json_object_object_add (req, "arguments", args);
  s = json_object_to_json_string_ext (req, JSON_C_TO_STRING_PLAIN);
  if (write_all (q->fd, s, strlen (s), err) < 0 || write_all (q->fd, "\n", 1, err) < 0)
    {
      json_object_put (req);
      return err_wrap (err, "%s", cmd);
    }
  json_object_put (req);
  for (;;)
    {
      struct json_object *msg, *v;
      if (read_msg (q, deadline, &msg, err) < 0)
        return err_wrap (err, "%s", cmd);
      if (json_object_object_get_ex (msg, "event", NULL))
        {
          keep_event (q, msg);
          continue;
        }
      if (json_object_object_get_ex (msg, "error", &v))
        {
          struct json_object *cls = NULL, *desc = NULL;
          json_object_object_get_ex (v, "class", &cls);
          json_object_object_get_ex (v, "desc", &desc);
          err_make (err, 0, "QMP %s: %s: %s", cmd, cls ? json_object_get_string (cls) : "?",
                    desc ? json_object_get_string (desc) : "?");
          json_object_put (msg);
          return -1;
        }
      if (json_object_object_get_ex (msg, "return", &v))
        {
          if (ret != NULL)
            *ret = json_object_get (v);
          json_object_put (msg);
          return 0;
        }
      json_object_put (msg); /* neither reply nor event: ignore */
    }
}

int
qmp_execute (struct qmp *q, const char *cmd, struct json_object *args, struct json_object **ret,
             int timeout_ms, struct err **err)
{
  return execute_until (q, cmd, args, ret, clock_now_ms () + timeout_ms, err);
}

struct qmp *
qmp_open (const char *path, int timeout_ms, char *version, size_t version_len, struct err **err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  double deadline = clock_now_ms () + timeout_ms;
  struct json_object *greet = NULL, *v;
  struct qmp *q;

  if (strlen (path) >= sizeof sa.sun_path)
    {
      err_make (err, ENAMETOOLONG, "QMP socket path %s", path);
      return NULL;
    }
  memcpy (sa.sun_path, path, strlen (path) + 1);
  q = calloc (1, sizeof *q);
  if (q == NULL || (q->buf = malloc (QMP_MAX_MSG + 1)) == NULL)
    {
      free (q);
      err_make (err, ENOMEM, "QMP");
      return NULL;
    }
  q->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (q->fd < 0 || connect (q->fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    {
      err_make (err, errno, "QMP: connect %s", path);
      qmp_close (q);
      return NULL;
    }
  if (read_msg (q, deadline, &greet, err) < 0 || !json_object_object_get_ex (greet, "QMP", &v))
    {
      if (greet != NULL)
        err_make (err, EPROTO, "QMP: no greeting on %s", path);
      json_object_put (greet);
      qmp_close (q);
      return NULL;
    }
  if (version != NULL && version_len > 0)
    {
      struct json_object *ver, *qemu, *maj, *min, *mic;
      version[0] = '\0';
      if (json_object_object_get_ex (v, "version", &ver)
          && json_object_object_get_ex (ver, "qemu", &qemu)
          && json_object_object_get_ex (qemu, "major", &maj)
          && json_object_object_get_ex (qemu, "minor", &min)
          && json_object_object_get_ex (qemu, "micro", &mic))
        snprintf (version, version_len, "qemu %d.%d.%d", json_object_get_int (maj),
                  json_object_get_int (min), json_object_get_int (mic));
    }
  json_object_put (greet);
  if (execute_until (q, "qmp_capabilities", NULL, NULL, deadline, err) < 0)
    {
      qmp_close (q);
      return NULL;
    }
  return q;
}

static bool
event_is (struct json_object *ev, const char *name, qmp_event_match match, void *opaque,
          struct json_object **data)
{
  struct json_object *n, *d = NULL;

  if (!json_object_object_get_ex (ev, "event", &n)
      || strcmp (json_object_get_string (n), name) != 0)
    return false;
  json_object_object_get_ex (ev, "data", &d);
  if (match != NULL && !match (d, opaque))
    return false;
  if (data != NULL)
    *data = d ? json_object_get (d) : NULL;
  return true;
}

int
qmp_wait_event (struct qmp *q, const char *name, qmp_event_match match, void *opaque,
                struct json_object **data, int timeout_ms, struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;

  for (size_t i = 0; i < q->n_pending; i++)
    if (event_is (q->pending[i], name, match, opaque, data))
      {
        json_object_put (q->pending[i]);
        memmove (q->pending + i, q->pending + i + 1, (q->n_pending - i - 1) * sizeof q->pending[0]);
        q->n_pending--;
        return 0;
      }
  for (;;)
    {
      struct json_object *msg;
      bool hit;
      if (read_msg (q, deadline, &msg, err) < 0)
        return err_wrap (err, "waiting for QMP event %s", name);
      hit = event_is (msg, name, match, opaque, data);
      json_object_put (msg);
      if (hit)
        return 0;
    }
}
