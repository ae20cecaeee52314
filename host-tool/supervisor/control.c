/* SPDX-License-Identifier: Apache-2.0 */
/* The control socket, DIR/supervisor.sock: one JSON line in
   ({"cmd":"status"} or {"cmd":"stop"}), one JSON line out (the status:
   state, clients, idle clock, wake figures; or {"stopping":true}; or
   {"error":...}).  `chvm ps`, `inspect` and `cdp` ask it (client.c). */
#include "supervisor/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "path.h"
#include "supervisor/sup.h"
#include "supervisor/supervisor.h"
#include "sys/json.h"

int
supctl_parse_request (const char *line, size_t len, char *cmd, size_t cap, struct err **err)
{
  cleanup_json struct json_object *o = NULL;
  struct json_tokener *tok;
  struct json_object *v;
  const char *s;
  int rc = -1;

  if (len == 0 || len > SUPCTL_LINE_MAX)
    return err_make (err, 0, "request empty or longer than %d bytes", SUPCTL_LINE_MAX);
  if (memchr (line, '\0', len) != NULL)
    return err_make (err, 0, "request holds a NUL");
  tok = json_tokener_new_ex (8);
  if (tok == NULL)
    return err_make (err, ENOMEM, "request");
  o = json_tokener_parse_ex (tok, line, (int) len);
  if (o == NULL || json_tokener_get_error (tok) != json_tokener_success
      || json_tokener_get_parse_end (tok) != len)
    err_make (err, 0, "request is not one JSON object");
  else if (!json_object_is_type (o, json_type_object) || !json_object_object_get_ex (o, "cmd", &v)
           || !json_object_is_type (v, json_type_string))
    err_make (err, 0, "request has no \"cmd\" string");
  else if ((s = json_object_get_string (v)), strcmp (s, "status") != 0 && strcmp (s, "stop") != 0)
    err_make (err, 0, "unknown command (status or stop)");
  else if (strlen (s) >= cap)
    err_make (err, ENAMETOOLONG, "command");
  else
    {
      snprintf (cmd, cap, "%s", s);
      rc = 0;
    }
  json_tokener_free (tok);
  return rc;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static double
pct (const double *v, unsigned n, double p)
{
  double sorted[WAKE_KEEP];

  if (n == 0)
    return 0;
  memcpy (sorted, v, n * sizeof *v);
  qsort (sorted, n, sizeof *sorted, cmp_double);
  return sorted[(unsigned) (p * (n - 1) + 0.5)];
}

static char *
status_json (struct sup *s)
{
  cleanup_json struct json_object *o = json_object_new_object ();
  struct json_object *w = json_object_new_array (), *r = json_object_new_array ();
  unsigned n = s->wakes < WAKE_KEEP ? s->wakes : WAKE_KEEP;
  char url[384];

  json_object_object_add (o, "pid", json_object_new_int (getpid ()));
  json_object_object_add (o, "state", json_object_new_string (sup_state_name (s->state)));
  json_object_object_add (o, "endpoint", json_object_new_string (s->listen));
  snprintf (url, sizeof url, "ws://%s%s", s->listen, s->browser_path);
  json_object_object_add (o, "ws", json_object_new_string (s->browser_path[0] ? url : ""));
  json_object_object_add (o, "upstream", json_object_new_string (s->up_hostport));
  json_object_object_add (o, "clients", json_object_new_int ((int) s->n_conns));
  json_object_object_add (o, "max_clients", json_object_new_int ((int) s->rec.cdp_max_clients));
  json_object_object_add (o, "idle_standby", json_object_new_int ((int) s->rec.idle_standby_s));
  json_object_object_add (o, "idle_ms",
                          json_object_new_int64 ((int64_t) (clock_now_ms () - s->last_activity)));
  json_object_object_add (o, "live_view_ms",
                          json_object_new_int64 (s->live_fd >= 0 && s->live_last > 0
                                                     ? (int64_t) (clock_now_ms () - s->live_last)
                                                     : -1));
  json_object_object_add (o, "outstanding", json_object_new_int64 (s->outstanding));
  json_object_object_add (o, "wakes", json_object_new_int ((int) s->wakes));
  json_object_object_add (o, "wake_failures", json_object_new_int ((int) s->wake_fails));
  json_object_object_add (o, "idle_standbys", json_object_new_int ((int) s->idle_standbys));
  for (unsigned i = 0; i < n; i++)
    {
      json_object_array_add (w, json_object_new_int64 ((int64_t) s->wake_ms[i]));
      json_object_array_add (r, json_object_new_int64 ((int64_t) s->restore_ms[i]));
    }
  json_object_object_add (o, "wake_ms", w);
  json_object_object_add (o, "restore_ms", r);
  json_object_object_add (o, "wake_p50_ms",
                          json_object_new_int64 ((int64_t) pct (s->wake_ms, n, 0.5)));
  json_object_object_add (o, "wake_p95_ms",
                          json_object_new_int64 ((int64_t) pct (s->wake_ms, n, 0.95)));
  json_object_object_add (o, "last_error", json_object_new_string (s->last_error));
  return strdup (json_text (o));
}

static void
ctl_done (struct bufferevent *bev, void *ctx)
{
  (void) ctx;
  if (evbuffer_get_length (bufferevent_get_output (bev)) == 0)
    bufferevent_free (bev);
}

static void
ctl_event (struct bufferevent *bev, short what, void *ctx)
{
  (void) what;
  (void) ctx;
  bufferevent_free (bev);
}

static void
ctl_read (struct bufferevent *bev, void *ctx)
{
  struct sup *s = ctx;
  struct evbuffer *in = bufferevent_get_input (bev);
  cleanup_err struct err *e = NULL;
  cleanup_free char *line = NULL, *reply = NULL;
  size_t n = 0;
  char cmd[16];

  line = evbuffer_readln (in, &n, EVBUFFER_EOL_LF);
  if (line == NULL)
    {
      if (evbuffer_get_length (in) > SUPCTL_LINE_MAX)
        bufferevent_free (bev);
      return;
    }
  bufferevent_disable (bev, EV_READ);
  if (supctl_parse_request (line, n, cmd, sizeof cmd, &e) < 0)
    {
      cleanup_json struct json_object *o = json_object_new_object ();
      json_object_object_add (o, "error", json_object_new_string (e->msg ? e->msg : "bad request"));
      reply = strdup (json_text (o));
    }
  else if (strcmp (cmd, "stop") == 0)
    {
      reply = strdup ("{\"stopping\":true}");
      sup_quit (s, "asked to stop");
    }
  else
    reply = status_json (s);
  if (reply != NULL)
    {
      bufferevent_write (bev, reply, strlen (reply));
      bufferevent_write (bev, "\n", 1);
    }
  bufferevent_setcb (bev, NULL, ctl_done, ctl_event, s);
  ctl_done (bev, s);
}

static void
ctl_accept (struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *ctx)
{
  struct sup *s = ctx;
  struct bufferevent *bev = bufferevent_socket_new (s->base, fd, BEV_OPT_CLOSE_ON_FREE);
  struct timeval tv = { .tv_sec = 5 };

  (void) l;
  (void) sa;
  (void) salen;
  if (bev == NULL)
    {
      close (fd);
      return;
    }
  bufferevent_setwatermark (bev, EV_READ, 0, SUPCTL_LINE_MAX + 1);
  bufferevent_set_timeouts (bev, &tv, &tv);
  bufferevent_setcb (bev, ctl_read, NULL, ctl_event, s);
  bufferevent_enable (bev, EV_READ | EV_WRITE);
}

int
control_listen (struct sup *s, struct err **err)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  char path[VM_PATH_MAX + 32];

  if (path_in (path, sizeof path, s->dir, "supervisor.sock", err) < 0)
    return -1;
  if (strlen (path) >= sizeof sun.sun_path)
    return err_make (err, ENAMETOOLONG, "%s", path);
  memcpy (sun.sun_path, path, strlen (path) + 1);
  unlink (path);
  s->ctl = evconnlistener_new_bind (s->base, ctl_accept, s,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
                                    (struct sockaddr *) &sun, sizeof sun);
  if (s->ctl == NULL)
    return err_make (err, errno, "listen on %s", path);
  chmod (path, 0600);
  return 0;
}
