/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static const char *log_prog = "chvm";
static int log_fd = 2;
static int log_enabled = 1;
static enum log_level log_max = LOG_LVL_INFO;

void
log_init (const char *prog, int fd, enum log_level max)
{
  log_prog = prog;
  log_fd = fd;
  log_max = max;
}

void
log_set_enabled (int enabled)
{
  log_enabled = enabled;
}

void
log_msg (enum log_level lvl, const char *fmt, ...)
{
  static const char *const names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
  char line[1024];
  int saved = errno, n, m;
  va_list ap;

  if (!log_enabled || log_fd < 0 || lvl > log_max)
    {
      errno = saved;
      return;
    }
  n = snprintf (line, sizeof line, "%s %s[%d]: ", names[lvl], log_prog, (int) getpid ());
  if (n < 0 || (size_t) n >= sizeof line)
    n = 0;
  va_start (ap, fmt);
  m = vsnprintf (line + n, sizeof line - n - 1, fmt, ap);
  va_end (ap);
  if (m < 0)
    m = 0;
  n += m;
  if ((size_t) n > sizeof line - 2)
    n = sizeof line - 2;
  line[n++] = '\n';
  if (write (log_fd, line, n) < 0)
    { /* nowhere left to report it */
    }
  errno = saved;
}
