/* SPDX-License-Identifier: Apache-2.0 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

double
boot_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_BOOTTIME, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

void
phase (const char *name)
{
  log_info ("[%.6f] phase %s", boot_seconds (), name);
}

char *
read_file (const char *path, size_t max, size_t *len, struct err **err)
{
  cleanup_close int fd = -1;
  cleanup_free char *buf = NULL;
  size_t used = 0;

  fd = TEMP_FAILURE_RETRY (open (path, O_RDONLY | O_CLOEXEC));
  if (fd < 0)
    return err_make (err, errno, "open %s", path), NULL;
  buf = malloc (max + 1);
  if (buf == NULL)
    return err_make (err, ENOMEM, "read %s", path), NULL;
  while (used < max)
    {
      ssize_t n = TEMP_FAILURE_RETRY (read (fd, buf + used, max - used));
      if (n < 0)
        return err_make (err, errno, "read %s", path), NULL;
      if (n == 0)
        break;
      used += (size_t) n;
    }
  buf[used] = '\0';
  if (len != NULL)
    *len = used;
  return steal_ptr (&buf);
}

int
write_file (const char *path, const char *data, size_t len, mode_t mode, struct err **err)
{
  cleanup_close int fd = -1;
  struct stat st;

  if (lstat (path, &st) == 0 && S_ISLNK (st.st_mode) && unlink (path) < 0)
    return err_make (err, errno, "unlink %s", path);
  fd = TEMP_FAILURE_RETRY (
      open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd < 0)
    return err_make (err, errno, "create %s", path);
  while (len > 0)
    {
      ssize_t n = TEMP_FAILURE_RETRY (write (fd, data, len));
      if (n < 0)
        return err_make (err, errno, "write %s", path);
      data += n;
      len -= (size_t) n;
    }
  if (fchmod (fd, mode) < 0)
    return err_make (err, errno, "chmod %s", path);
  return 0;
}

int
mkdir_p (const char *path, mode_t mode, struct err **err)
{
  char buf[PATH_MAX];
  size_t n = strlen (path);

  if (n >= sizeof buf)
    return err_make (err, ENAMETOOLONG, "mkdir %s", path);
  memcpy (buf, path, n + 1);
  for (char *p = buf + 1;; p++)
    if (*p == '/' || *p == '\0')
      {
        char c = *p;
        *p = '\0';
        if (mkdir (buf, mode) < 0 && errno != EEXIST)
          return err_make (err, errno, "mkdir %s", buf);
        if (c == '\0')
          return 0;
        *p = c;
      }
}

int
copy_file (const char *src, const char *dst, mode_t mode, struct err **err)
{
  cleanup_close int in = -1, out = -1;
  char buf[65536];

  in = TEMP_FAILURE_RETRY (open (src, O_RDONLY | O_CLOEXEC));
  if (in < 0)
    return err_make (err, errno, "open %s", src);
  out = TEMP_FAILURE_RETRY (open (dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (out < 0)
    return err_make (err, errno, "create %s", dst);
  for (;;)
    {
      ssize_t n = TEMP_FAILURE_RETRY (read (in, buf, sizeof buf)), off = 0;
      if (n < 0)
        return err_make (err, errno, "read %s", src);
      if (n == 0)
        return 0;
      while (off < n)
        {
          ssize_t w = TEMP_FAILURE_RETRY (write (out, buf + off, n - off));
          if (w < 0)
            return err_make (err, errno, "write %s", dst);
          off += w;
        }
    }
}
