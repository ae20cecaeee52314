/* SPDX-License-Identifier: Apache-2.0 */
#include "reap.h"
#include "clock.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "button.h"
#include "cleanup.h"
#include "io.h"
#include "log.h"
#include "mount.h"

#define TERM_GRACE_MS 3000
#define KILL_GRACE_MS 2000
/* A stop request gives the entrypoint this long after SIGTERM.  Shorter than
   `chvm stop`'s default 10 s, so that the guest still unmounts cleanly
   before the host gives up and kills the VMM. */
#define STOP_GRACE_MS 8000

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
      pid_t pid = reap_sys->waitpid (-1, &status, WNOHANG);

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

/* Milliseconds left until the CLOCK_MONOTONIC deadline (0 once passed). */
static int
left_ms (int64_t deadline)
{
  int64_t left = deadline - reap_sys->now_ms ();

  return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int) left;
}

/* Waits up to timeout_ms (-1 = forever) for a signal or, when btn is not
   NULL, a power button press; returns the signal number, REAP_EVENT_BUTTON,
   or 0 on timeout or a wakeup that needs nothing (a key release, a uevent),
   after which the caller looks at its deadline again. */
static int
real_next_event (int sfd, struct button *btn, int timeout_ms)
{
  struct pollfd pfd[BUTTON_MAX + 2] = { { .fd = sfd, .events = POLLIN } };
  struct signalfd_siginfo si;
  size_t n = 1 + (btn ? button_pollfds (btn, pfd + 1) : 0);

  /* Every signal is blocked, so poll() cannot fail with EINTR. */
  if (poll (pfd, n, timeout_ms) <= 0)
    return 0;
  if (btn != NULL && button_pressed (btn, pfd + 1, n - 1))
    return REAP_EVENT_BUTTON;
  if (pfd[0].revents && read (sfd, &si, sizeof si) == (ssize_t) sizeof si)
    return (int) si.ssi_signo;
  return 0;
}

static int64_t
real_now_ms (void)
{
  return (int64_t) clock_now_ms ();
}

/* "PID (COMM) S PPID ..." of /proc/PID/stat; COMM may hold spaces and
   parentheses, so it ends at the last ')'. */
static void
real_log_left (void)
{
  cleanup_dir DIR *dir = opendir ("/proc");
  struct dirent *de;

  while (dir != NULL && (de = readdir (dir)) != NULL)
    {
      char path[64];
      cleanup_free char *text = NULL;
      char *open_p, *close_p, state;
      int ppid;

      if (!isdigit ((unsigned char) de->d_name[0]) || strcmp (de->d_name, "1") == 0)
        continue;
      snprintf (path, sizeof path, "/proc/%.16s/stat", de->d_name);
      text = read_file (path, 4096, NULL, NULL);
      if (text == NULL || (open_p = strchr (text, '(')) == NULL
          || (close_p = strrchr (text, ')')) == NULL || close_p < open_p
          || sscanf (close_p + 1, " %c %d", &state, &ppid) != 2)
        continue;
      /* Kernel threads are children of kthreadd (2) or of nobody. */
      if (ppid == 2 || ppid == 0)
        continue;
      log_warn ("still running: pid %s (%.*s), state %c", de->d_name, (int) (close_p - open_p - 1),
                open_p + 1, state);
    }
}

static const struct reap_sys real_sys = {
  .waitpid = waitpid,
  .kill = kill,
  .next_event = real_next_event,
  .now_ms = real_now_ms,
  .thaw = mnt_thaw,
  .log_left = real_log_left,
};
const struct reap_sys *reap_sys = &real_sys;

/* A graceful stop request: SIGTERM to the entrypoint, and a deadline after
   which everything is killed. */
struct stop
{
  const char *why; /* NULL while none was requested */
  int64_t deadline;
};

static void
stop_request (struct stop *st, const char *why, pid_t main_pid)
{
  if (st->why != NULL)
    return; /* already under way: a second press changes nothing */
  st->why = why;
  st->deadline = reap_sys->now_ms () + STOP_GRACE_MS;
  log_info ("%s: stopping the entrypoint", why);
  /* An entrypoint writing to a frozen filesystem could not stop. */
  reap_sys->thaw ();
  reap_sys->kill (main_pid, SIGTERM);
  reap_sys->kill (main_pid, SIGCONT);
}

/* Reaps until main_pid exits (or, for main_pid 0, no child is left) or the
   deadline passes; returns 1 when done. */
static int
reap_wait (int sfd, pid_t main_pid, pid_t agent_pid, int *main_status, int ms)
{
  int64_t deadline = reap_sys->now_ms () + ms;

  for (;;)
    {
      int none_left = reap_children (main_pid, agent_pid, main_status);
      if (main_pid > 0 ? *main_status >= 0 : none_left)
        return 1;
      if (left_ms (deadline) == 0)
        return 0;
      reap_sys->next_event (sfd, NULL, left_ms (deadline));
    }
}

int
reap_until (int sfd, struct button *btn, pid_t main_pid, pid_t agent_pid, bool *restart)
{
  struct stop st = { 0 };
  int main_status = -1;

  *restart = false;
  for (;;)
    {
      int sig;

      reap_children (main_pid, agent_pid, &main_status);
      if (main_status >= 0)
        return main_status;
      sig = reap_sys->next_event (sfd, btn, st.why ? left_ms (st.deadline) : -1);
      if (sig == 0 && st.why && left_ms (st.deadline) == 0)
        break;
      else if (sig == REAP_EVENT_BUTTON)
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
        reap_sys->kill (main_pid, sig);
    }
  log_warn ("%s: entrypoint still running after %d s, killing every process", st.why,
            STOP_GRACE_MS / 1000);
  /* Thawed first: the agent, killed too, could no longer thaw, and a
     process blocked on a frozen filesystem does not die of SIGKILL. */
  reap_sys->thaw ();
  reap_sys->kill (-1, SIGKILL);
  /* Bounded: a process in D state never dies, and the guest must still
     power off. */
  if (!reap_wait (sfd, main_pid, agent_pid, &main_status, KILL_GRACE_MS))
    {
      log_warn ("%s: entrypoint %d still there %d ms after SIGKILL; stopping anyway", st.why,
                (int) main_pid, KILL_GRACE_MS);
      reap_sys->log_left ();
      return 128 + SIGKILL;
    }
  return main_status;
}

int
reap_stop_all (int sfd)
{
  int ignored = -1;

  /* The agent ignores SIGTERM while it holds a freeze (docs/style.md), and
     SIGKILL would leave the filesystems frozen: thaw before either. */
  reap_sys->thaw ();
  reap_sys->kill (-1, SIGTERM);
  reap_sys->kill (-1, SIGCONT);
  if (reap_wait (sfd, 0, 0, &ignored, TERM_GRACE_MS))
    return 1;
  log_warn ("processes left after %d ms, sending SIGKILL", TERM_GRACE_MS);
  reap_sys->thaw ();
  reap_sys->kill (-1, SIGKILL);
  if (reap_wait (sfd, 0, 0, &ignored, KILL_GRACE_MS))
    return 1;
  log_warn ("processes left %d ms after SIGKILL; powering off anyway", KILL_GRACE_MS);
  reap_sys->log_left ();
  return 0;
}

void
reap_poweroff (int sfd, bool restart)
{
  reap_stop_all (sfd);
  mnt_teardown ();
  log_info ("%s", restart ? "reboot" : "poweroff");
  reboot (restart ? RB_AUTOBOOT : RB_POWER_OFF);
  /* Only reached if the kernel refused; exiting would panic it. */
  log_error ("reboot: %m");
  for (;;)
    pause ();
}
