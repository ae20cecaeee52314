/* SPDX-License-Identifier: Apache-2.0 */
#include "reap.h"

#include <errno.h>
#include <poll.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "mount.h"

#define TERM_GRACE_MS 3000
#define KILL_GRACE_MS 2000

int
reap_setup (sigset_t *old, struct err **err)
{
  sigset_t all;
  int fd;

  sigfillset (&all);
  if (sigprocmask (SIG_SETMASK, &all, old) < 0)
    return err_make (err, errno, "block signals");
  fd = signalfd (-1, &all, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0)
    return err_make (err, errno, "signalfd");
  return fd;
}

static int
exit_status (int status)
{
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  return WEXITSTATUS (status);
}

/* Reaps what has exited; returns 1 once no child is left (ECHILD).  Stores
   the status of main_pid in main_status when it is among them, and warns
   about agent_pid. */
static int
reap_children (pid_t main_pid, pid_t agent_pid, int *main_status)
{
  for (;;)
    {
      int status;
      pid_t pid = waitpid (-1, &status, WNOHANG);

      if (pid < 0)
        return errno == ECHILD;
      if (pid == 0)
        return 0;
      if (pid == main_pid)
        *main_status = exit_status (status);
      else if (pid == agent_pid)
        log_warn ("agent exited status %d", exit_status (status));
      else
        log_debug ("reaped %d (status %d)", (int)pid, exit_status (status));
    }
}

/* Waits for the next signal (up to timeout_ms, -1 = forever) and returns its
   number, or 0 on timeout. */
static int
next_signal (int sfd, int timeout_ms)
{
  for (;;)
    {
      struct pollfd pfd = { .fd = sfd, .events = POLLIN };
      struct signalfd_siginfo si;
      int r = poll (&pfd, 1, timeout_ms);

      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return 0;
      if (read (sfd, &si, sizeof si) == (ssize_t)sizeof si)
        return (int)si.ssi_signo;
    }
}

int
reap_until (int sfd, pid_t main_pid, pid_t agent_pid)
{
  int main_status = -1;

  for (;;)
    {
      int sig;

      reap_children (main_pid, agent_pid, &main_status);
      if (main_status >= 0)
        return main_status;
      sig = next_signal (sfd, -1);
      if (sig == SIGTERM || sig == SIGINT)
        kill (main_pid, sig);
      else if (sig == SIGPWR)
        kill (main_pid, SIGTERM);
    }
}

/* Reaps until no child is left or the deadline passes; returns 1 when none
   is left. */
static int
reap_all (int sfd, int ms)
{
  struct timespec deadline = deadline_in (ms);
  int ignored = -1;

  while (!reap_children (0, 0, &ignored))
    {
      int left = deadline_left_ms (&deadline);
      if (left == 0)
        return 0;
      next_signal (sfd, left);
    }
  return 1;
}

void
reap_poweroff (int sfd)
{
  kill (-1, SIGTERM);
  kill (-1, SIGCONT);
  if (!reap_all (sfd, TERM_GRACE_MS))
    {
      log_warn ("processes left after %d ms, sending SIGKILL", TERM_GRACE_MS);
      kill (-1, SIGKILL);
      reap_all (sfd, KILL_GRACE_MS);
    }
  mnt_teardown ();
  log_info ("poweroff");
  reboot (RB_POWER_OFF);
  /* Only reached if the kernel refused; exiting would panic it. */
  log_error ("reboot(RB_POWER_OFF): %m");
  for (;;)
    pause ();
}
