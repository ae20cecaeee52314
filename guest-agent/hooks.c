/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image hooks (docs/DESIGN.md "Image hooks"): the executable regular files
 * of HOOKS_DIR in the image, run in name order with the event as their one
 * argument: "quiesce" before the agent freezes the filesystems (a failing
 * one fails the Quiesce: nothing was frozen, the VM runs on), "thaw" after
 * a Thaw, "fork" after the Identity of a VM made from a template (failures
 * of these two are logged, the reply goes out).  Names starting with '.'
 * are skipped.  Each runs in a session of its own, stdin /dev/null, stdout
 * and stderr into the agent's log (the VM's console, `chvm logs`) line by
 * line, at most HOOK_OUT_MAX bytes kept; after HOOK_TIMEOUT_MS its process
 * group is killed.  Synchronous, as qemu-ga runs its fsfreeze-hook: the
 * agent answers nothing else meanwhile, which is why the time is bounded.
 */
#include "hooks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"

#define HOOK_OUT_MAX 4096

static int
by_name (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The hooks of dir, sorted; *n of them (none when dir is missing). */
static int
list_hooks (const char *dir, char *names[HOOKS_MAX], size_t *n, struct err **err)
{
  DIR *d = opendir (dir);
  struct dirent *de;

  *n = 0;
  if (d == NULL)
    return errno == ENOENT || errno == ENOTDIR ? 0 : err_make (err, errno, "opendir %s", dir);
  while ((de = readdir (d)) != NULL)
    {
      struct stat st;

      if (de->d_name[0] == '.' || fstatat (dirfd (d), de->d_name, &st, 0) < 0
          || !S_ISREG (st.st_mode) || (st.st_mode & 0111) == 0)
        continue;
      if (*n == HOOKS_MAX)
        {
          closedir (d);
          return err_make (err, E2BIG, "%s: more than %d hooks", dir, HOOKS_MAX);
        }
      if ((names[*n] = strdup (de->d_name)) == NULL)
        {
          closedir (d);
          return err_make (err, ENOMEM, "hook name");
        }
      (*n)++;
    }
  closedir (d);
  qsort (names, *n, sizeof *names, by_name);
  return 0;
}

/* Logs out's complete lines (and the rest at the end). */
static void
log_lines (const char *name, char *out, size_t len, bool end)
{
  char *p = out, *nl;

  while ((nl = memchr (p, '\n', len - (size_t) (p - out))) != NULL || (end && p < out + len))
    {
      int l = nl ? (int) (nl - p) : (int) (len - (size_t) (p - out));
      log_info ("hook %s: %.*s", name, l, p);
      p += l + (nl != NULL);
    }
}

static pid_t
spawn (const char *path, const char *event, int out)
{
  pid_t pid = fork ();

  if (pid == 0)
    {
      int null = open ("/dev/null", O_RDONLY | O_CLOEXEC);
      char *const argv[] = { (char *) path, (char *) event, NULL };

      setsid ();
      if (null < 0 || dup2 (null, 0) < 0 || dup2 (out, 1) < 0 || dup2 (out, 2) < 0)
        _exit (126);
      sigset_t none;
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      signal (SIGPIPE, SIG_DFL);
      execv (path, argv);
      _exit (127);
    }
  return pid;
}

/* Reads what the hook wrote into out (at most HOOK_OUT_MAX kept); false at
   EOF. */
static bool
read_out (int rd, char *out, size_t *len, size_t *dropped)
{
  char buf[1024];
  ssize_t k = read (rd, buf, sizeof buf);
  size_t keep;

  if (k < 0)
    return errno == EINTR || errno == EAGAIN;
  if (k == 0)
    return false;
  keep = (size_t) k < HOOK_OUT_MAX - *len ? (size_t) k : HOOK_OUT_MAX - *len;
  memcpy (out + *len, buf, keep);
  *len += keep;
  *dropped += (size_t) k - keep;
  return true;
}

/* One hook to its end; 0 when it exited 0, else -1 with err. */
static int
run_one (const char *dir, const char *name, const char *event, int timeout_ms, struct err **err)
{
  cleanup_close int rd = -1, wr = -1, pfd = -1;
  char path[PATH_MAX], out[HOOK_OUT_MAX];
  size_t len = 0, dropped = 0;
  double t0 = clock_now_ms (), deadline = t0 + timeout_ms;
  int fds[2], st = 0;
  bool reading = true, exited = false;
  pid_t pid;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  if (pipe2 (fds, O_CLOEXEC) < 0)
    return err_make (err, errno, "hook %s: pipe", name);
  rd = fds[0];
  wr = fds[1];
  if ((pid = spawn (path, event, wr)) < 0)
    return err_make (err, errno, "hook %s: fork", name);
  close (steal_fd (&wr));
  if ((pfd = (int) syscall (SYS_pidfd_open, pid, 0)) < 0)
    {
      kill (-pid, SIGKILL);
      waitpid (pid, &st, 0);
      return err_make (err, errno, "hook %s: pidfd_open", name);
    }
  /* Its output until EOF and its exit, or the deadline. */
  while ((reading || !exited) && clock_left_ms (deadline) > 0)
    {
      struct pollfd p[2] = { { .fd = reading ? rd : -1, .events = POLLIN },
                             { .fd = exited ? -1 : pfd, .events = POLLIN } };

      if (poll (p, 2, (int) clock_left_ms (deadline)) <= 0)
        continue;
      if (p[0].revents)
        reading = read_out (rd, out, &len, &dropped);
      if (p[1].revents)
        exited = waitpid (pid, &st, 0) == pid;
    }
  if (reading || !exited)
    kill (-pid, SIGKILL); /* its group: what it left behind too */
  if (!exited)
    {
      kill (pid, SIGKILL);
      waitpid (pid, &st, 0);
    }
  log_lines (name, out, len, true);
  if (dropped)
    log_warn ("hook %s: %zu more bytes of output dropped", name, dropped);
  if (!exited)
    return err_make (err, ETIMEDOUT, "hook %s %s: killed after %d ms", name, event, timeout_ms);
  if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
    return err_make (err, 0, "hook %s %s: %s %d", name, event,
                     WIFEXITED (st) ? "exited with status" : "killed by signal",
                     WIFEXITED (st) ? WEXITSTATUS (st) : WTERMSIG (st));
  log_info ("hook %s %s: done in %.0f ms", name, event, clock_now_ms () - t0);
  return 0;
}

int
hooks_run (const char *dir, const char *event, int timeout_ms, struct err **err)
{
  char *names[HOOKS_MAX];
  size_t n;
  int r = 0;

  if (list_hooks (dir, names, &n, err) < 0)
    return -1;
  for (size_t i = 0; i < n; i++)
    {
      if (r >= 0 && run_one (dir, names[i], event, timeout_ms, err) < 0)
        r = -1;
      else if (r >= 0)
        r++;
      free (names[i]);
    }
  return r;
}

void
hooks_after (const char *event)
{
  cleanup_err struct err *err = NULL;
  char buf[512];

  if (hooks_run (HOOKS_DIR, event, HOOK_TIMEOUT_MS, &err) < 0)
    log_warn ("%s", err_str (err, buf, sizeof buf));
}
