/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd-shim-chvm-v1 (runtime io.containerd.chvm.v1).  containerd runs
 *   containerd-shim-chvm-v1 -namespace NS -address A -publish-binary B -id ID [-debug] start
 * in the bundle: it binds the shim's socket, starts the daemon (this binary
 * again, without an action, in a session of its own, the socket as fd 3),
 * writes the bundle's `address` file and prints the address on stdout
 * (containerd reads stdout and stderr together: nothing else is printed).
 *   ... -id ID -bundle DIR delete
 * cleans up after a daemon that is gone, from the bundle's chvm-shim.json
 * alone, and prints a DeleteResponse.  See shim.h for the parts.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "events.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "log.h"
#include "names.h"
#include "shim.h"
#include "spec.h"
#include "state/vmstate.h"
#include "sys/fs.h"
#include "sys/json.h"
#include "sys/proc.h"

struct flags
{
  const char *ns, *address, *publish_binary, *id, *bundle, *action;
  bool debug;
};

static int
parse_flags (int argc, char **argv, struct flags *f)
{
  static const char *const names[] = { "namespace", "address", "publish-binary", "id", "bundle" };
  const char **slots[] = { &f->ns, &f->address, &f->publish_binary, &f->id, &f->bundle };

  *f = (struct flags){ .ns = "", .address = "", .publish_binary = "", .id = "", .bundle = "" };
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      size_t k;

      if (a[0] != '-')
        {
          f->action = a;
          continue;
        }
      a += a[1] == '-' ? 2 : 1;
      if (strcmp (a, "debug") == 0)
        {
          f->debug = true;
          continue;
        }
      if (strcmp (a, "v") == 0 || strcmp (a, "version") == 0 || strcmp (a, "info") == 0)
        {
          f->action = "version";
          continue;
        }
      for (k = 0; k < sizeof names / sizeof *names && strcmp (a, names[k]) != 0; k++)
        ;
      if (k == sizeof names / sizeof *names || i + 1 >= argc)
        return -1;
      *slots[k] = argv[++i];
    }
  return 0;
}

/* Fills the shim's names: socket, chvm binary, state dir. */
static int
shim_setup (struct shim *s, const struct flags *f, struct err **err)
{
  const char *bin = getenv ("CHVM_BIN");
  char self[PATH_MAX];
  ssize_t n;

  snprintf (s->ns, sizeof s->ns, "%s", f->ns);
  snprintf (s->id, sizeof s->id, "%s", f->id);
  snprintf (s->address, sizeof s->address, "%s", f->address);
  snprintf (s->publish_binary, sizeof s->publish_binary, "%s", f->publish_binary);
  if (f->ns[0] == '\0' || f->id[0] == '\0' || f->address[0] != '/')
    return err_make (err, EINVAL, "-namespace, -id and an absolute -address are required");
  names_socket (f->address, f->ns, f->id, s->socket_path, sizeof s->socket_path);
  if (vmstate_root (NULL, s->state_root, sizeof s->state_root, err) < 0)
    return -1;
  if (bin != NULL && bin[0] == '/')
    snprintf (s->chvm, sizeof s->chvm, "%s", bin);
  else if ((n = readlink ("/proc/self/exe", self, sizeof self - 1)) > 0
           && (self[n] = '\0', snprintf (s->chvm, sizeof s->chvm, "%s/chvm", dirname (self)) > 0)
           && access (s->chvm, X_OK) == 0)
    ;
  else if (proc_find_exec ("chvm", s->chvm, sizeof s->chvm) < 0)
    return err_make (err, ENOENT, "no chvm beside the shim, in $CHVM_BIN or in PATH");
  return 0;
}

static int
listen_socket (const char *path, struct err **err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  cleanup_free char *dir = strdup (path);
  cleanup_close int fd = -1;

  if (dir == NULL)
    return err_make (err, ENOMEM, "socket");
  if (fs_mkdir_p (dirname (dir), 0711, err) < 0)
    return -1;
  if (strlen (path) >= sizeof sa.sun_path)
    return err_make (err, ENAMETOOLONG, "socket path %s", path);
  memcpy (sa.sun_path, path, strlen (path) + 1);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return err_make (err, errno, "socket");
  unlink (path); /* a dead daemon's */
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0 || chmod (path, 0600) < 0
      || listen (fd, 16) < 0)
    return err_make (err, errno, "listen on %s", path);
  return steal_fd (&fd);
}

static int
write_small (const char *path, const char *text, struct err **err)
{
  return fs_write_atomic (path, text, strlen (text), 0600, err);
}

/* The id of the shim that serves the bundle in the working directory: a
   CRI pod's container joins its sandbox's shim (docs/containerd.md). */
static int
bundle_group (const char *id, char *out, size_t len, struct err **err)
{
  cleanup_free char *json = NULL;
  cleanup_spec struct shim_spec *spec = NULL;
  size_t n;

  if (fs_read_small ("config.json", OCI_JSON_MAX, &json, &n, err) < 0
      || shim_spec_parse (json, n, &spec, err) < 0)
    return err_wrap (err, "bundle");
  snprintf (out, len, "%s", shim_spec_group (spec, id));
  return 0;
}

static int
cmd_start (const struct flags *f, struct err **err)
{
  struct shim s = { 0 };
  cleanup_close int fd = -1;
  char addr[PATH_MAX + 16], pid[32], group[256];
  pid_t child;
  const char *argv[] = { "containerd-shim-chvm-v1",
                         "-namespace",
                         f->ns,
                         "-id",
                         f->id,
                         "-address",
                         f->address,
                         "-publish-binary",
                         f->publish_binary,
                         f->debug ? "-debug" : NULL,
                         NULL };

  if (shim_setup (&s, f, err) < 0 || bundle_group (f->id, group, sizeof group, err) < 0)
    return -1;
  if (strcmp (group, f->id) != 0)
    {
      /* A pod's container: its sandbox's shim serves it (no shim.pid here:
         this bundle's `delete` must not kill that shim). */
      names_socket (f->address, f->ns, group, s.socket_path, sizeof s.socket_path);
      if (access (s.socket_path, F_OK) < 0)
        return err_make (err, errno, "the shim of sandbox %s (%s)", group, s.socket_path);
      snprintf (addr, sizeof addr, "unix://%s", s.socket_path);
      if (write_small ("address", addr, err) < 0)
        return -1;
      printf ("%s", addr);
      return 0;
    }
  if ((fd = listen_socket (s.socket_path, err)) < 0)
    return -1;
  if (proc_spawn_self_env (argv, NULL, fd, &child, err) < 0)
    return err_wrap (err, "start the shim daemon");
  snprintf (addr, sizeof addr, "unix://%s", s.socket_path);
  snprintf (pid, sizeof pid, "%d", (int) child);
  if (write_small ("address", addr, err) < 0 || write_small ("shim.pid", pid, err) < 0)
    return -1;
  printf ("%s", addr);
  return 0;
}

/* `chvm ARGS...` to completion, its output dropped (delete's cleanup). */
static void
run_quiet (const char *chvm, const char *root, const char *a, const char *b, const char *c)
{
  cleanup_err struct err *err = NULL;
  const char *argv[] = { chvm, "--state-dir", root, a, b, c, NULL };

  if (proc_run (argv, NULL, true, &err) < 0)
    log_warn ("%s %s %s: failed", a, b, c);
}

/* containerd lost the daemon: the VM, its cache entry and the socket go,
   from what the bundle's state file says. */
static int
cmd_delete (const struct flags *f, struct err **err)
{
  Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
  Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  cleanup_json struct json_object *o = NULL;
  cleanup_free char *text = NULL;
  cleanup_free uint8_t *out = NULL;
  struct json_object *v[5];
  char path[PATH_MAX];
  size_t len;
  pid_t daemon;

  struct shim s = { 0 };

  /* The socket: also after a clean Shutdown, which containerd 1.6 follows
     with this delete as well. */
  if (shim_setup (&s, f, NULL) == 0)
    unlink (s.socket_path);
  snprintf (path, sizeof path, "%s/shim.pid", f->bundle[0] ? f->bundle : ".");
  daemon = proc_read_pid_file (path);
  if (daemon > 0 && proc_pid_names_dir (daemon, "containerd-shim-chvm-v1"))
    kill (daemon, SIGKILL);
  snprintf (path, sizeof path, "%s/%s", f->bundle[0] ? f->bundle : ".", SHIM_STATE_FILE);
  if (fs_read_small (path, 65536, &text, &len, NULL) == 0 && (o = json_tokener_parse (text)) != NULL
      && json_object_object_get_ex (o, "vm", &v[0]) && json_object_object_get_ex (o, "image", &v[1])
      && json_object_object_get_ex (o, "state_dir", &v[2])
      && json_object_object_get_ex (o, "chvm", &v[3])
      && json_object_object_get_ex (o, "socket", &v[4]))
    {
      const char *chvm = json_object_get_string (v[3]), *root = json_object_get_string (v[2]);

      run_quiet (chvm, root, "rm", "-f", json_object_get_string (v[0]));
      if (json_object_get_string_len (v[1]) > 0) /* a clone has no image of its own */
        run_quiet (chvm, root, "image", "rm", json_object_get_string (v[1]));
      unlink (json_object_get_string (v[4]));
      unlink (path);
    }
  at.seconds = time (NULL);
  resp.exit_status = 137; /* as runc's shim: killed */
  resp.exited_at = &at;
  len = containerd__task__v2__delete_response__get_packed_size (&resp);
  if ((out = malloc (len ?: 1)) == NULL)
    return err_make (err, ENOMEM, "response");
  containerd__task__v2__delete_response__pack (&resp, out);
  if (fwrite (out, 1, len, stdout) != len)
    return err_make (err, errno, "write the response");
  return 0;
}

static void
on_signal (evutil_socket_t sig, short what, void *arg)
{
  (void) what;
  log_info ("signal %d: exiting", (int) sig);
  shim_exit (arg);
}

/* The daemon: the Task service on fd PROC_PASS_FD until Shutdown. */
static int
cmd_serve (const struct flags *f, struct err **err)
{
  struct shim s = { 0 };
  struct event *sigev[2] = { NULL, NULL };
  char log_path[PATH_MAX];
  int logfd, rc;

  snprintf (log_path, sizeof log_path, "log");
  /* containerd reads the bundle's log fifo and copies it to its own log. */
  logfd = open (log_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  log_init ("containerd-shim-chvm-v1", logfd >= 0 ? logfd : 2,
            f->debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
  signal (SIGPIPE, SIG_IGN);
  if (shim_setup (&s, f, err) < 0)
    return -1;
  if (getcwd (s.bundle, sizeof s.bundle) == NULL)
    return err_make (err, errno, "getcwd");
  s.base = event_base_new ();
  s.events = s.base == NULL ? NULL : events_new (s.base, f->publish_binary, f->address, f->ns);
  if (s.events == NULL)
    return err_make (err, ENOMEM, "event loop");
  if (ttrpc_server_new (s.base, PROC_PASS_FD, task_dispatch, &s, &s.server, err) < 0)
    return -1;
  sigev[0] = evsignal_new (s.base, SIGTERM, on_signal, &s);
  sigev[1] = evsignal_new (s.base, SIGINT, on_signal, &s);
  for (int i = 0; i < 2; i++)
    if (sigev[i] != NULL)
      event_add (sigev[i], NULL);
  log_info ("serving %s/%s on %s (chvm %s, state %s)", f->ns, f->id, s.socket_path, s.chvm,
            s.state_root);
  rc = event_base_dispatch (s.base);
  log_info ("exiting");
  unlink (s.socket_path);
  ttrpc_server_free (s.server);
  for (size_t i = 0; i < SHIM_TASKS_MAX; i++)
    task_free (s.tasks[i]);
  events_free (s.events);
  for (int i = 0; i < 2; i++)
    if (sigev[i] != NULL)
      event_free (sigev[i]);
  event_base_free (s.base);
  return rc < 0 ? err_make (err, 0, "event loop failed") : 0;
}

int
main (int argc, char **argv)
{
  cleanup_err struct err *err = NULL;
  struct flags f;
  char buf[1024];
  int r;

  if (parse_flags (argc, argv, &f) < 0)
    {
      fputs ("usage: containerd-shim-chvm-v1 -namespace NS -address A -publish-binary B "
             "-id ID [-bundle DIR] [-debug] [start|delete]\n",
             stderr);
      return 2;
    }
  if (f.action != NULL && strcmp (f.action, "version") == 0)
    {
      printf ("containerd-shim-chvm-v1 (chvm)\n");
      return 0;
    }
  if (f.action == NULL)
    r = cmd_serve (&f, &err);
  else if (strcmp (f.action, "start") == 0)
    r = cmd_start (&f, &err);
  else if (strcmp (f.action, "delete") == 0)
    {
      log_init ("containerd-shim-chvm-v1", 2, LOG_LVL_WARN);
      r = cmd_delete (&f, &err);
    }
  else
    r = err_make (&err, EINVAL, "unknown action '%s' (start or delete)", f.action);
  if (r < 0)
    {
      /* start: containerd shows stdout and stderr together as the error. */
      fprintf (stderr, "containerd-shim-chvm-v1: %s\n", err_str (err, buf, sizeof buf));
      return 1;
    }
  return 0;
}
