/* SPDX-License-Identifier: Apache-2.0 */
/* What the other files of image/ share: bounded reads, path joins, tree
   removal, progress messages, and running a tool (skopeo, umoci, mkfs)
   with its output in a log. */
#include "image/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "sys/proc.h"

/* An import of a large image on a slow disk takes minutes; this only
   bounds a tool that hangs. */
#define TOOL_TIMEOUT_MS (30 * 60 * 1000)

int
image_read_bounded (const char *path, size_t max, char **out, size_t *len, struct err **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  cleanup_free char *buf = NULL;
  size_t used = 0;
  ssize_t n;

  if (fd < 0)
    return err_make (err, errno, "open %s", path);
  buf = malloc (max + 1);
  if (buf == NULL)
    return err_make (err, ENOMEM, "read %s", path);
  while ((n = TEMP_FAILURE_RETRY (read (fd, buf + used, max + 1 - used))) > 0)
    if ((used += (size_t) n) > max)
      return err_make (err, EFBIG, "%s: more than %zu bytes", path, max);
  if (n < 0)
    return err_make (err, errno, "read %s", path);
  buf[used] = '\0';
  *out = steal_ptr (&buf);
  *len = used;
  return 0;
}

int
image_path_join (char **out, const char *a, const char *b, struct err **err)
{
  if (asprintf (out, "%s/%s", a, b) < 0)
    return err_make (err, ENOMEM, "path");
  return 0;
}

int
image_run_tool (const char *const argv[], const char *log, struct err **err)
{
  char last[512];
  pid_t pid;
  int st = 0, r;

  if (proc_spawn (argv, log, &pid, err) < 0)
    {
      if (*err != NULL && (*err)->status == ENOENT)
        return err_wrap (err, "%s is not installed (make deps)", argv[0]);
      return -1;
    }
  r = proc_wait_exit (pid, TOOL_TIMEOUT_MS, &st, err);
  if (r == 0)
    {
      proc_terminate (pid, 2000, NULL);
      return err_make (err, ETIMEDOUT, "%s did not finish within %d min", argv[0],
                       TOOL_TIMEOUT_MS / 60000);
    }
  if (r < 0)
    return r;
  if (st != -1 && WIFEXITED (st) && WEXITSTATUS (st) == 0)
    return 0;
  proc_log_last_line (log, last, sizeof last);
  if (st != -1 && WIFSIGNALED (st))
    return err_make (err, 0, "%s was killed by signal %d: %s", argv[0], WTERMSIG (st), last);
  return err_make (err, 0, "%s failed (exit %d): %s", argv[0],
                   st != -1 && WIFEXITED (st) ? WEXITSTATUS (st) : -1, last);
}

void
image_progress (image_progress_fn fn, void *ctx, const char *fmt, ...)
{
  char buf[512];
  va_list ap;

  if (fn == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  fn (ctx, buf);
}
