/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor as the CLI sees it (supervisor.h): started, found,
   stopped and asked through its control socket from `chvm run`, `restore`,
   `ps`, `inspect`, `stop`, `rm` and `cdp`. */
#include "supervisor/supervisor.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "net/net.h"
#include "path.h"
#include "sys/dial.h"
#include "sys/proc.h"

#define SUP_START_MS 10000

pid_t
supervisor_pid (const char *dir)
{
  char path[VM_PATH_MAX + 32];
  pid_t pid;

  if (path_in (path, sizeof path, dir, "supervisor.pid", NULL) < 0)
    return 0;
  pid = proc_read_pid_file (path);
  return pid > 0 && proc_pid_names_dir (pid, dir) ? pid : 0;
}

int
supervisor_start (const char *dir, const char *netns, bool booting, struct err **err)
{
  const char *argv[] = { "chvm", SUPERVISOR_CMD, dir, booting ? "--booting" : NULL, NULL };
  char sock[VM_PATH_MAX + 32], log[VM_PATH_MAX + 32], last[256];
  pid_t pid;

  if (supervisor_pid (dir) > 0)
    return 0;
  if (path_in (sock, sizeof sock, dir, "supervisor.sock", err) < 0
      || path_in (log, sizeof log, dir, "supervisor.log", err) < 0)
    return -1;
  unlink (sock);
  /* Its listener is on the clients' side: the namespace chvm started in. */
  if (net_enter_netns (NULL, err) < 0)
    return -1;
  if (proc_spawn_self (argv, &pid, err) < 0)
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
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &sun, sizeof sun) < 0)
    return err_make (err, errno, "the supervisor's control socket %s", sun.sun_path);
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
