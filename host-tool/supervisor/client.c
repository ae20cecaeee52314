/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor as the CLI sees it (supervisor.h): started, found,
   stopped and asked through its control socket from `chvm run`, `restore`,
   `ps`, `inspect`, `stop`, `rm` and `cdp`. */
#include "supervisor/supervisor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "net/net.h"
#include "path.h"
#include "sys/dial.h"
#include "sys/proc.h"

#define SUP_START_MS 10000
#define SUPERVISOR_ENV_MAX 32

extern char **environ;

pid_t
supervisor_pid (const char *dir)
{
  char path[VM_PATH_MAX + 32];
  pid_t pid;

  if (path_in (path, sizeof path, dir, "supervisor.pid", NULL) < 0)
    return 0;
  pid = proc_read_pid_file (path);
  return pid > 0 && proc_pid_is_daemon (pid, SUPERVISOR_CMD, dir) ? pid : 0;
}

int
supervisor_listen (const char *addr, uint16_t *port, int *fd_out, struct err **err)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons (*port) };
  socklen_t sl = sizeof sin;
  cleanup_close int fd = -1;
  int one = 1, e;

  if (inet_pton (AF_INET, addr, &sin.sin_addr) != 1)
    return err_make (err, 0, "bad CDP endpoint address '%s' (IPv4)", addr);
  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return err_make (err, errno, "socket");
  /* As the supervisor's own listener: TIME_WAIT leftovers do not count. */
  (void) setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &sin, sizeof sin) < 0)
    {
      e = errno;
      return err_make (err, e, "CDP endpoint %s:%u", addr, (unsigned) *port);
    }
  if (listen (fd, SUPERVISOR_BACKLOG) < 0 || getsockname (fd, (struct sockaddr *) &sin, &sl) < 0)
    return err_make (err, errno, "listen on %s:%u", addr, (unsigned) *port);
  *port = ntohs (sin.sin_port);
  *fd_out = steal_fd (&fd);
  return 0;
}

void
supervisor_record_env (struct vm_record *r)
{
  for (size_t i = 0; i < VM_ENV_N; i++)
    {
      const char *v = getenv (vm_env_names[i]);
      bool binary = strcmp (vm_env_names[i], "CLOUD_HYPERVISOR") == 0
                    || strcmp (vm_env_names[i], "CHVM_QEMU") == 0;
      r->vmm_env[i][0] = '\0';
      if (v == NULL || v[0] == '\0')
        continue;
      /* A name is found in run's PATH now, not in the supervisor's. */
      if (!binary || proc_find_exec (v, r->vmm_env[i], sizeof r->vmm_env[i]) < 0)
        snprintf (r->vmm_env[i], sizeof r->vmm_env[i], "%s", v);
    }
}

#ifdef CHVM_TEST_HOOKS
/* The test-hooks build (build/tests/chvm-hooks): its hooks' variables
   (CHVM_SUPERVISOR_EXEC, CHVM_FAULT, the stub's STUB_*) reach the
   supervisor's children.  The product build passes none. */
static bool
hook_var_p (const char *kv)
{
  return strncmp (kv, "CHVM_SUPERVISOR_EXEC=", 21) == 0 || strncmp (kv, "CHVM_FAULT=", 11) == 0
         || strncmp (kv, "STUB_", 5) == 0;
}
#endif

/* The supervisor's whole environment into env (cap entries, NULL-ended). */
static void
supervisor_env (const char **env, size_t cap)
{
  size_t n = 0;

  env[n++] = "PATH=" SUPERVISOR_PATH;
#ifdef CHVM_TEST_HOOKS
  for (char **e = environ; *e != NULL && n + 1 < cap; e++)
    if (hook_var_p (*e))
      env[n++] = *e;
#endif
  env[n] = NULL;
  (void) cap;
}

int
supervisor_start (const char *dir, const char *netns, bool booting, struct err **err)
{
  return supervisor_start_fd (dir, netns, booting, -1, err);
}

int
supervisor_start_fd (const char *dir, const char *netns, bool booting, int listen_fd,
                     struct err **err)
{
  const char *argv[6] = { "chvm", SUPERVISOR_CMD, dir };
  const char *env[SUPERVISOR_ENV_MAX];
  char sock[VM_PATH_MAX + 32], log[VM_PATH_MAX + 32], last[256], fdarg[16];
  size_t n = 3;
  pid_t pid;

  if (booting)
    argv[n++] = "--booting";
  if (listen_fd >= 0)
    {
      snprintf (fdarg, sizeof fdarg, "--listen-fd=%d", PROC_PASS_FD);
      argv[n++] = fdarg;
    }
  argv[n] = NULL;
  supervisor_env (env, sizeof env / sizeof env[0]);

  if (supervisor_pid (dir) > 0)
    return 0;
  if (path_in (sock, sizeof sock, dir, "supervisor.sock", err) < 0
      || path_in (log, sizeof log, dir, "supervisor.log", err) < 0)
    return -1;
  unlink (sock);
  /* Its listener is on the clients' side: the namespace chvm started in. */
  if (net_enter_netns (NULL, err) < 0)
    return -1;
  if (proc_spawn_self_env (argv, env, listen_fd, &pid, err) < 0)
    return -1;
  /* Back to the VM's side for what the caller does next. */
  if (net_enter_netns (netns, err) < 0)
    {
      proc_terminate (pid, 1000, NULL);
      return -1;
    }
  if (proc_wait_socket (pid, sock, SUP_START_MS, err) < 0)
    {
      proc_log_last_line (log, last, sizeof last);
      proc_terminate (pid, 1000, NULL);
      return err_wrap (err, "the supervisor did not start%s%s", last[0] ? ": " : "", last);
    }
  return 0;
}

void
supervisor_stop (const char *dir, int grace_ms)
{
  pid_t pid = supervisor_pid (dir);
  char path[VM_PATH_MAX + 32];

  if (pid > 0)
    proc_terminate (pid, grace_ms, NULL);
  if (path_in (path, sizeof path, dir, "supervisor.sock", NULL) == 0)
    unlink (path);
}

/* The name is root's own socket (the VMM's uid may create names in the VM
   dir while none is there, a link to another VM's socket say; the dir's
   sticky bit keeps it from replacing root's), and a supervisor lives. */
static int
check_socket (const char *dir, const char *path, struct err **err)
{
  struct stat st;

  if (supervisor_pid (dir) == 0)
    return err_make (err, ESRCH, "no supervisor runs for %s", dir);
  if (lstat (path, &st) < 0)
    return err_make (err, errno, "the supervisor's control socket %s", path);
  if (!S_ISSOCK (st.st_mode) || st.st_uid != 0)
    return err_make (err, EPERM, "%s is not root's socket: not the supervisor's", path);
  return 0;
}

/* The peer is the supervisor supervisor.pid names, as root. */
static int
check_peer (const char *dir, int fd, const char *path, struct err **err)
{
  struct ucred cred;
  socklen_t len = sizeof cred;

  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return err_make (err, errno, "the supervisor's control socket %s", path);
  if (cred.uid != 0 || cred.pid != supervisor_pid (dir))
    return err_make (err, EPERM, "%s is served by pid %d uid %u, not root's supervisor", path,
                     (int) cred.pid, (unsigned) cred.uid);
  return 0;
}

int
supervisor_query (const char *dir, const char *cmd, char *out, size_t cap, int timeout_ms,
                  struct err **err)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int64_t deadline = clock_now_ms () + timeout_ms;
  cleanup_close int fd = -1;
  char req[64];
  size_t got = 0;
  int n;

  if ((size_t) snprintf (sun.sun_path, sizeof sun.sun_path, "%s/supervisor.sock", dir)
      >= sizeof sun.sun_path)
    return err_make (err, ENAMETOOLONG, "%s/supervisor.sock", dir);
  if (check_socket (dir, sun.sun_path, err) < 0)
    return -1;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &sun, sizeof sun) < 0)
    return err_make (err, errno, "the supervisor's control socket %s", sun.sun_path);
  if (check_peer (dir, fd, sun.sun_path, err) < 0)
    return -1;
  n = snprintf (req, sizeof req, "{\"cmd\":\"%s\"}\n", cmd);
  if (dial_write_all (fd, req, (size_t) n, deadline, err) < 0)
    return -1;
  while (got + 1 < cap)
    {
      ssize_t r;
      if (dial_wait_fd (fd, POLLIN, deadline, "the supervisor's answer", err) < 0)
        return -1;
      r = read (fd, out + got, cap - 1 - got);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return err_make (err, errno, "read the supervisor's answer");
      if (r == 0)
        break;
      got += (size_t) r;
      if (memchr (out, '\n', got) != NULL)
        break;
    }
  out[got] = '\0';
  out[strcspn (out, "\n")] = '\0';
  if (got == 0)
    return err_make (err, 0, "the supervisor closed its control socket without an answer");
  return 0;
}

const char *
supervisor_health (const char *dir, const char *endpoint, enum vm_status st, pid_t *pid)
{
  *pid = supervisor_pid (dir);
  if (*pid > 0)
    return "running";
  return endpoint[0] && supervisor_wanted (st) ? "gone" : "none";
}

int
supervisor_check_idle (unsigned idle_s, bool tap, struct err **err)
{
  if (idle_s > 0 && !tap)
    return err_make (err, 0,
                     "--idle-standby needs a tap (--net tap): a connection through QEMU's user "
                     "network ends with the QEMU process at every standby");
  return 0;
}

bool
supervisor_wanted (enum vm_status st)
{
  return st == VM_STATUS_RUNNING || st == VM_STATUS_PAUSED || st == VM_STATUS_STANDBY;
}
