/* SPDX-License-Identifier: Apache-2.0 */
#include "reap.h"

#include <errno.h>
#include <poll.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "button.h"
#include "io.h"
#include "log.h"
#include "mount.h"

#define TERM_GRACE_MS 3000
#define KILL_GRACE_MS 2000
/* A stop request gives the entrypoint this long after SIGTERM.  Shorter than
   `chvm stop`'s default 10 s, so that the guest still unmounts cleanly
   before the host gives up and kills the VMM. */
#define STOP_GRACE_MS 8000
/* next_event: a power button press (signals are > 0, a timeout 0). */
#define EVENT_BUTTON (-1)

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
        log_debug ("reaped %d (status %d)", (int) pid, exit_status (status));
    }
}

/* Waits up to timeout_ms (-1 = forever) for a signal or, when btn is not
   NULL, a power button press; returns the signal number, EVENT_BUTTON, or 0
   on timeout or a wakeup that needs nothing (a key release, a uevent), after
   which the caller looks at its deadline again. */
static int
next_event (int sfd, struct button *btn, int timeout_ms)
{
  struct pollfd pfd[BUTTON_MAX + 2] = { { .fd = sfd, .events = POLLIN } };
  struct signalfd_siginfo si;
  size_t n = 1 + (btn ? button_pollfds (btn, pfd + 1) : 0);

  /* Every signal is blocked, so poll() cannot fail with EINTR. */
  if (poll (pfd, n, timeout_ms) <= 0)
    return 0;
  if (btn != NULL && button_pressed (btn, pfd + 1, n - 1))
    return EVENT_BUTTON;
  if (pfd[0].revents && read (sfd, &si, sizeof si) == (ssize_t) sizeof si)
    return (int) si.ssi_signo;
  return 0;
}

/* A graceful stop request: SIGTERM to the entrypoint, and a deadline after
   which everything is killed. */
struct stop
{
  const char *why; /* NULL while none was requested */
  struct timespec deadline;
};

static void
stop_request (struct stop *st, const char *why, pid_t main_pid)
{
  if (st->why != NULL)
    return; /* already under way: a second press changes nothing */
  st->why = why;
  st->deadline = deadline_in (STOP_GRACE_MS);
  log_info ("%s: stopping the entrypoint", why);
  kill (main_pid, SIGTERM);
  kill (main_pid, SIGCONT);
}

int
reap_until (int sfd, struct button *btn, pid_t main_pid, pid_t agent_pid, bool *restart)
{
  struct stop st = { 0 };
  bool killed = false;
  int main_status = -1;

  *restart = false;
  for (;;)
    {
      int sig;

      reap_children (main_pid, agent_pid, &main_status);
      if (main_status >= 0)
        return main_status;
      sig = next_event (sfd, btn, st.why && !killed ? deadline_left_ms (&st.deadline) : -1);
      if (sig == 0 && st.why && !killed && deadline_left_ms (&st.deadline) == 0)
        {
          log_warn ("%s: entrypoint still running after %d s, killing every process", st.why,
                    STOP_GRACE_MS / 1000);
          kill (-1, SIGKILL);
          killed = true;
        }
      else if (sig == EVENT_BUTTON)
        stop_request (&st, "power button", main_pid);
      else if (sig == SIGPWR)
        stop_request (&st, "SIGPWR", main_pid);
      else if (sig == SIGRTMIN + 5)
        {
          /* systemd's "reboot" signal, sent by the agent's Shutdown. */
          if (st.why == NULL)
            *restart = true;
          stop_request (&st, "reboot request", main_pid);
        }
      else if (sig == SIGTERM || sig == SIGINT)
        kill (main_pid, sig);
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
      next_event (sfd, NULL, left);
    }
  return 1;
}

void
reap_poweroff (int sfd, bool restart)
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
  log_info ("%s", restart ? "reboot" : "poweroff");
  reboot (restart ? RB_AUTOBOOT : RB_POWER_OFF);
  /* Only reached if the kernel refused; exiting would panic it. */
  log_error ("reboot: %m");
  for (;;)
    pause ();
}
