/* SPDX-License-Identifier: Apache-2.0 */
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* What the child reports through the CLOEXEC pipe when it cannot exec. */
struct child_failure
{
  int err;
  char what[64];
};

/* Looks file up in the PATH of envp like execvp(), but with the target's
   PATH rather than init's.  Fills buf; returns 0 or an errno value. */
static int
find_program (const char *file, char *const *envp, char *buf, size_t len)
{
  const char *path = spec_getenv (envp, "PATH");
  int first_err = ENOENT;

  if (strchr (file, '/') != NULL)
    {
      if ((size_t) snprintf (buf, len, "%s", file) >= len)
        return ENAMETOOLONG;
      return 0;
    }
  if (path == NULL)
    path = SPEC_DEFAULT_PATH;
  for (const char *p = path;; p++)
    {
      const char *end = strchrnul (p, ':');
      struct stat st;
      int n = snprintf (buf, len, "%.*s/%s", (int) (end - p), p, file);

      if (n > 0 && (size_t) n < len && stat (buf, &st) == 0 && S_ISREG (st.st_mode))
        {
          if (access (buf, X_OK) == 0)
            return 0;
          first_err = EACCES;
        }
      if (*end == '\0')
        return first_err;
      p = end;
    }
}

static void __attribute__ ((noreturn)) child_fail (int fd, int e, const char *what)
{
  struct child_failure f = { .err = e };

  snprintf (f.what, sizeof f.what, "%s", what);
  if (write (fd, &f, sizeof f) < 0)
    { /* the parent will see a bare exit status */
    }
  _exit (e == ENOENT ? 127 : 126);
}

static void __attribute__ ((noreturn)) child (const struct spawn *s, int fd)
{
  char path[PATH_MAX];
  int e;

  /* A new session, so a SIGINT or SIGHUP aimed at the console's group does
     not hit init's other children. */
  setsid ();
  if (syscall (SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    child_fail (fd, errno, "close inherited fds");
  /* Marked close-on-exec like the rest, so that init's other children never
     get it; only this child clears the flag. */
  if (s->keep_fd > 2 && fcntl (s->keep_fd, F_SETFD, 0) < 0)
    child_fail (fd, errno, "keep the passed fd");
  if (s->user != NULL)
    {
      if (setgroups (s->user->ngroups, s->user->groups) < 0)
        child_fail (fd, errno, "setgroups");
      if (setgid (s->user->gid) < 0)
        child_fail (fd, errno, "setgid");
      if (setuid (s->user->uid) < 0)
        child_fail (fd, errno, "setuid");
    }
  if (chdir (s->workdir) < 0)
    child_fail (fd, errno, "chdir to the working directory");
  e = find_program (s->argv[0], s->envp, path, sizeof path);
  if (e != 0)
    child_fail (fd, e, "look up in PATH");
  sigprocmask (SIG_SETMASK, s->sigmask, NULL);
  execve (path, s->argv, s->envp);
  child_fail (fd, errno, "execve");
}

pid_t
spawn_process (const struct spawn *s, struct err **err)
{
  cleanup_close int rd = -1, wr = -1;
  struct child_failure f;
  int fds[2];
  ssize_t n;
  pid_t pid;

  if (pipe2 (fds, O_CLOEXEC) < 0)
    return err_make (err, errno, "pipe");
  rd = fds[0];
  wr = fds[1];
  pid = fork ();
  if (pid < 0)
    return err_make (err, errno, "fork");
  if (pid == 0)
    child (s, wr);
  close (steal_fd (&wr));

  n = TEMP_FAILURE_RETRY (read (rd, &f, sizeof f));
  if (n == 0)
    return pid; /* the pipe closed on a successful execve */
  waitpid (pid, NULL, 0);
  if (n != (ssize_t) sizeof f)
    return err_make (err, EPROTO, "exec %s: child failed", s->argv[0]);
  f.what[sizeof f.what - 1] = '\0';
  return err_make (err, f.err, "exec %s: %s", s->argv[0], f.what);
}
