/* SPDX-License-Identifier: Apache-2.0 */
/* `chvm __supervise DIR [--booting]`: the supervisor's process.  It takes
   the VM's lock, logs to supervisor.log, listens on the CDP endpoint, forks
   the worker that serves it (as nobody: priv.c, worker.c), listens on the
   control socket, writes its pid file, and runs the event loop until the
   VM is gone or it is told to stop. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "net/net.h"
#include "num.h"
#include "path.h"
#include "state/probe.h"
#include "state/vmstate.h"
#include "supervisor/control.h"
#include "supervisor/idle.h"
#include "supervisor/live.h"
#include "supervisor/priv.h"
#include "supervisor/sup.h"
#include "supervisor/supervisor.h"
#include "supervisor/sync.h"
#include "sys/fs.h"
#include "sys/port.h"

#define LOCK_WAIT_MS 2000 /* for a supervisor that is exiting */

/* "ADDR:PORT" (IPv4) into sin. */
static int
parse_endpoint (const char *s, struct sockaddr_in *sin, struct err **err)
{
  char addr[64] = "";
  uint16_t port;

  memset (sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  if (strchr (s, ':') == NULL || port_parse (s, addr, sizeof addr, &port, NULL) < 0 || port == 0)
    return err_make (err, 0, "bad CDP endpoint '%s' (ADDR:PORT)", s);
  if (inet_pton (AF_INET, addr, &sin->sin_addr) != 1)
    return err_make (err, 0, "bad CDP endpoint address '%s' (IPv4)", addr);
  sin->sin_port = htons (port);
  return 0;
}

/* Where the guest's DevTools is reached: its address on the tap, else the
   port QEMU's user network forwards to it. */
static int
find_upstream (struct sup *s, struct err **err)
{
  if (vm_cdp_upstream (&s->rec, s->up_host, sizeof s->up_host, &s->up_port) < 0)
    return err_make (err, 0, "VM %s: its DevTools port %u is not published", s->name,
                     s->rec.cdp_port);
  snprintf (s->up_hostport, sizeof s->up_hostport, "%s:%u", s->up_host, s->up_port);
  return 0;
}

static int
write_pid_file (struct sup *s, struct err **err)
{
  char path[VM_PATH_MAX + 32], line[24];
  int n;

  if (path_in (path, sizeof path, s->dir, "supervisor.pid", err) < 0)
    return -1;
  n = snprintf (line, sizeof line, "%d\n", (int) getpid ());
  return fs_write_atomic (path, line, (size_t) n, 0644, err);
}

/* Our environment, which our `chvm standby|restore` children get: a fixed
   PATH and the settings the VM's run recorded, whoever started us. */
static int
sup_env (const struct sup *s, struct err **err)
{
  if (setenv ("PATH", SUPERVISOR_PATH, 1) < 0)
    return err_make (err, errno, "setenv");
  for (size_t i = 0; i < VM_ENV_N; i++)
    if ((s->rec.vmm_env[i][0] ? setenv (vm_env_names[i], s->rec.vmm_env[i], 1)
                              : unsetenv (vm_env_names[i]))
        < 0)
      return err_make (err, errno, "setenv %s", vm_env_names[i]);
  return 0;
}

/* listen_fd is the endpoint's listener run made: a socket listening on
   sin, or it is refused. */
static int
check_listen_fd (int fd, const struct sockaddr_in *sin, struct err **err)
{
  struct sockaddr_in got = { 0 };
  socklen_t sl = sizeof got;
  int on = 0;
  socklen_t ol = sizeof on;

  if (getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) < 0 || !on
      || getsockname (fd, (struct sockaddr *) &got, &sl) < 0 || got.sin_family != AF_INET
      || got.sin_port != sin->sin_port || got.sin_addr.s_addr != sin->sin_addr.s_addr)
    return err_make (err, 0, "fd %d is not a listener on the CDP endpoint", fd);
  /* Ours alone: no child of ours (standby, restore) gets it. */
  if (fcntl (fd, F_SETFD, FD_CLOEXEC) < 0)
    return err_make (err, errno, "fcntl");
  return 0;
}

/* How long a restarted supervisor waits for its endpoint's port: after a
   SIGKILL its predecessor's worker is killed with it (PR_SET_PDEATHSIG),
   but its exit, which closes the listener, may not have run yet. */
#define ENDPOINT_REBIND_MS 5000
#define ENDPOINT_REBIND_POLL_MS 20

/* The endpoint's listener: fd from run, checked, else bound here. */
static int
endpoint_fd (const struct sockaddr_in *sin, int *fd, struct err **err)
{
  char addr[INET_ADDRSTRLEN];
  uint16_t port = ntohs (sin->sin_port);
  double deadline = clock_now_ms () + ENDPOINT_REBIND_MS;

  if (*fd >= 0)
    return check_listen_fd (*fd, sin, err);
  inet_ntop (AF_INET, &sin->sin_addr, addr, sizeof addr);
  for (;;)
    {
      cleanup_err struct err *e = NULL;

      if (supervisor_listen (addr, &port, fd, &e) == 0)
        return 0;
      if (e->status != EADDRINUSE || clock_now_ms () >= deadline)
        return err_make (err, e->status, "%s", e->msg);
      poll (NULL, 0, ENDPOINT_REBIND_POLL_MS);
    }
}

static int
sup_setup (struct sup *s, int listen_fd, struct err **err)
{
  struct sockaddr_in sin;
  struct rlimit rl;

  /* Two fds a client, up to 4096 clients: the hard limit, not the soft. */
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      (void) setrlimit (RLIMIT_NOFILE, &rl);
    }
  if (vmrec_load (s->root, s->name, &s->rec, err) < 0 || sup_env (s, err) < 0)
    return -1;
  if (s->rec.cdp_endpoint[0] == '\0')
    return err_make (err, 0, "VM %s has no CDP endpoint (made before supervisors)", s->name);
  if (s->rec.cdp_token[0] == '\0')
    return err_make (err, 0,
                     "VM %s has no endpoint token (made before tokens): chvm rm it and run again",
                     s->name);
  if (s->rec.cdp_max_clients == 0)
    s->rec.cdp_max_clients = SUPERVISOR_DEFAULT_MAX_CLIENTS;
  if (parse_endpoint (s->rec.cdp_endpoint, &sin, err) < 0 || find_upstream (s, err) < 0)
    return -1;
  /* In the namespace chvm was started in: the clients' side. */
  if (endpoint_fd (&sin, &listen_fd, err) < 0)
    return -1;
  snprintf (s->listen, sizeof s->listen, "%s", s->rec.cdp_endpoint);
  /* The worker holds clients until told the VM runs; it takes the
     listener, and no fd of ours but its channels. */
  s->state = SUP_STANDBY;
  if (priv_fork (s, listen_fd, err) < 0)
    return -1;
  s->base = event_base_new ();
  if (s->base == NULL)
    return err_make (err, ENOMEM, "event base");
  if (live_init (s, err) < 0 || write_pid_file (s, err) < 0 || control_listen (s, err) < 0)
    return -1;
  /* The guest's side: the tap lives in the VM's namespace (and the
     sockets dialled for the worker). */
  if (net_enter_netns (s->rec.netns, err) < 0)
    return -1;
  if (sync_watch (s, err) < 0 || idle_init (s, err) < 0 || priv_watch (s, err) < 0)
    return -1;
  return 0;
}

/* s's dir, name and state root from the VM dir named on the command line. */
static int
sup_paths (struct sup *s, const char *arg)
{
  char tmp[VM_PATH_MAX], real[PATH_MAX];

  if (realpath (arg, real) == NULL || strlen (real) >= sizeof s->dir)
    return -1;
  memcpy (s->dir, real, strlen (real) + 1);
  snprintf (tmp, sizeof tmp, "%s", s->dir);
  snprintf (s->name, sizeof s->name, "%s", basename (tmp));
  snprintf (tmp, sizeof tmp, "%s", s->dir);
  snprintf (s->root, sizeof s->root, "%s", dirname (dirname (tmp)));
  return 0;
}

/* supervisor.log becomes our stdout and stderr (sup_log, our children). */
static int
open_log (const struct sup *s, struct err **err)
{
  char path[VM_PATH_MAX + 32];
  cleanup_close int fd = -1;

  if (path_in (path, sizeof path, s->dir, "supervisor.log", err) < 0)
    return -1;
  /* The VM dir is writable by the VMM's uid: never through its links. */
  fd = fs_open_log (path, false, err);
  if (fd >= 0)
    {
      dup2 (fd, STDOUT_FILENO);
      dup2 (fd, STDERR_FILENO);
    }
  return 0;
}

/* DIR [--booting] [--listen-fd=N]: N the endpoint's listener run passed. */
static int
parse_args (int argc, char **argv, bool *booting, int *listen_fd)
{
  if (argc < 2)
    return -1;
  for (int i = 2; i < argc; i++)
    {
      uint64_t v;
      if (strcmp (argv[i], "--booting") == 0)
        *booting = true;
      else if (strncmp (argv[i], "--listen-fd=", 12) == 0
               && num_parse_u64_str (argv[i] + 12, INT32_MAX, &v) == 0 && v > 2)
        *listen_fd = (int) v;
      else
        return -1;
    }
  return 0;
}

int
supervisor_main (int argc, char **argv)
{
  cleanup_err struct err *err = NULL;
  cleanup_free struct sup *s = calloc (1, sizeof *s);
  cleanup_close int lock_fd = -1;
  char path[VM_PATH_MAX + 32], buf[512];
  bool booting = false;
  int listen_fd = -1;

  if (parse_args (argc, argv, &booting, &listen_fd) < 0 || s == NULL)
    {
      fprintf (stderr,
               "usage: chvm %s DIR [--booting] [--listen-fd=N] (started by chvm run and restore)\n",
               SUPERVISOR_CMD);
      return 2;
    }
  /* --booting: run did not wait for the browser (--no-wait). */
  s->ready = !booting;
  s->vmm_fd = -1;
  s->ino_fd = -1;
  s->live_fd = -1;
  s->link.msg_fd = s->link.dial_fd = -1;
  if (sup_paths (s, argv[1]) < 0)
    {
      fprintf (stderr, "chvm %s: %s: %s\n", SUPERVISOR_CMD, argv[1], strerror (errno));
      return 1;
    }
  if (open_log (s, &err) < 0)
    return 1;
  if (path_in (path, sizeof path, s->dir, "supervisor.lock", &err) < 0)
    return 1;
  /* A plain file of root's, as the log (a link or a file the VMM's uid put
     there is replaced, so that it cannot hold the lock either). */
  lock_fd = fs_open_log (path, false, &err);
  /* Waiting for a supervisor that is exiting: it closes its listeners,
     removes its pid file, then lets the lock go. */
  if (lock_fd < 0 || fs_flock_wait (lock_fd, LOCK_WAIT_MS) < 0)
    {
      sup_log ("another supervisor holds %s", path);
      return 1;
    }
  signal (SIGPIPE, SIG_IGN);
  if (sup_setup (s, listen_fd, &err) < 0)
    {
      sup_log ("cannot start: %s", err_str (err, buf, sizeof buf));
      priv_end (s);
      return 1;
    }
  sup_log ("VM %s: CDP endpoint %s -> %s, idle standby %s%u s, at most %u clients", s->name,
           s->listen, s->up_hostport, s->rec.idle_standby_s ? "after " : "off ",
           s->rec.idle_standby_s, s->rec.cdp_max_clients);
  {
    bool ready = s->ready;
    sup_touch (s);
    sup_sync (s);
    s->ready = ready;
  }
  if (s->state == SUP_RUNNING)
    sup_arm_idle (s);
  event_base_dispatch (s->base);
  if (s->child > 0)
    kill (s->child, SIGTERM);
  /* The endpoint (the worker's) is free before `ps` says this one is gone. */
  priv_end (s);
  evconnlistener_free (s->ctl);
  if (path_in (path, sizeof path, s->dir, "supervisor.sock", NULL) == 0)
    unlink (path);
  if (path_in (path, sizeof path, s->dir, "supervisor.pid", NULL) == 0)
    unlink (path);
  return 0;
}
