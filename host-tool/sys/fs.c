/* SPDX-License-Identifier: Apache-2.0 */
/* Files on the host: mkdir -p, bounded reads, durable writes and renames,
   fsync of trees, removal of trees, flock with a timeout. */
#include "sys/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "cleanup.h"

int
fs_mkdir_p (const char *path, mode_t mode, struct err **err)
{
  char buf[PATH_MAX];
  size_t n = strlen (path);

  if (n == 0 || n >= sizeof buf)
    return err_make (err, ENAMETOOLONG, "mkdir %s", path);
  memcpy (buf, path, n + 1);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/')
      {
        *p = '\0';
        if (mkdir (buf, mode) < 0 && errno != EEXIST)
          return err_make (err, errno, "mkdir %s", buf);
        *p = '/';
      }
  if (mkdir (buf, mode) < 0 && errno != EEXIST)
    return err_make (err, errno, "mkdir %s", buf);
  return 0;
}

int
fs_read_small (const char *path, size_t max, char **out, size_t *len, struct err **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  cleanup_free char *buf = NULL;
  struct stat st;
  size_t got = 0;

  if (fd < 0)
    return err_make (err, errno, "open %s", path);
  if (fstat (fd, &st) < 0)
    return err_make (err, errno, "stat %s", path);
  if ((size_t) st.st_size > max)
    return err_make (err, 0, "%s: larger than %zu bytes", path, max);
  buf = malloc ((size_t) st.st_size + 1);
  if (buf == NULL)
    return err_make (err, ENOMEM, "read %s", path);
  while (got < (size_t) st.st_size)
    {
      ssize_t n = TEMP_FAILURE_RETRY (read (fd, buf + got, (size_t) st.st_size - got));
      if (n < 0)
        return err_make (err, errno, "read %s", path);
      if (n == 0)
        break;
      got += (size_t) n;
    }
  buf[got] = '\0';
  *out = steal_ptr (&buf);
  *len = got;
  return 0;
}

void (*fs_fsync_hook) (const char *path);

static int
fsync_fd (int fd, const char *path, struct err **err)
{
  if (fsync (fd) < 0)
    return err_make (err, errno, "fsync %s", path);
  if (fs_fsync_hook != NULL)
    fs_fsync_hook (path);
  return 0;
}

int
fs_fsync_path (const char *path, struct err **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  if (fd < 0)
    return err_make (err, errno, "open %s to fsync it", path);
  return fsync_fd (fd, path, err);
}

static int
parent_of (const char *path, char *out, size_t len, struct err **err)
{
  const char *slash = strrchr (path, '/');

  if (slash == NULL)
    return snprintf (out, len, ".") < 0 ? -1 : 0;
  if ((size_t) (slash - path) + 1 >= len)
    return err_make (err, ENAMETOOLONG, "%s", path);
  if (slash == path)
    slash++; /* the root */
  memcpy (out, path, (size_t) (slash - path));
  out[slash - path] = '\0';
  return 0;
}

int
fs_rename_durable (const char *from, const char *to, struct err **err)
{
  char pf[PATH_MAX], pt[PATH_MAX];

  if (parent_of (from, pf, sizeof pf, err) < 0 || parent_of (to, pt, sizeof pt, err) < 0)
    return -1;
  if (rename (from, to) < 0)
    return err_make (err, errno, "rename %s to %s", from, to);
  /* The rename is only on disk once the directory holding the new name is. */
  if (fs_fsync_path (pt, err) < 0)
    return err_wrap (err, "renamed %s to %s", from, to);
  if (strcmp (pf, pt) != 0 && fs_fsync_path (pf, err) < 0)
    return err_wrap (err, "renamed %s to %s", from, to);
  return 0;
}

int
fs_write_atomic (const char *path, const void *data, size_t len, mode_t mode, struct err **err)
{
  char tmp[PATH_MAX + 16];
  cleanup_close int fd = -1;
  const char *p = data;
  size_t off = 0;

  if ((size_t) snprintf (tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= sizeof tmp)
    return err_make (err, ENAMETOOLONG, "%s", path);
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0)
    return err_make (err, errno, "create %s", tmp);
  while (off < len)
    {
      ssize_t n = TEMP_FAILURE_RETRY (write (fd, p + off, len - off));
      if (n < 0)
        {
          int saved = errno;
          unlink (tmp);
          return err_make (err, saved, "write %s", tmp);
        }
      off += (size_t) n;
    }
  if (fchmod (fd, mode) < 0)
    {
      int saved = errno;
      unlink (tmp);
      return err_make (err, saved, "write %s", path);
    }
  if (fsync_fd (fd, tmp, err) < 0)
    {
      unlink (tmp);
      return err_wrap (err, "write %s", path);
    }
  if (fs_rename_durable (tmp, path, err) < 0)
    {
      unlink (tmp);
      return err_wrap (err, "write %s", path);
    }
  return 0;
}

/* nftw passes no context; these commands are single-threaded. */
static struct err **tree_err;

static int
fsync_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) ftw;
  if (flag != FTW_F && flag != FTW_DP)
    return 0; /* symlinks and the like hold no data of ours */
  return fs_fsync_path (path, tree_err) < 0 ? -1 : 0;
}

int
fs_fsync_tree (const char *dir, struct err **err)
{
  int r;

  /* FTW_DEPTH: files before the directory naming them. */
  tree_err = err;
  r = nftw (dir, fsync_one, 16, FTW_DEPTH | FTW_PHYS);
  tree_err = NULL;
  if (r < 0)
    return err_make (err, errno, "fsync %s", dir);
  if (r > 0)
    return err_wrap (err, "fsync %s", dir);
  return 0;
}

static int
rm_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) ftw;
  if (flag == FTW_DP)
    return rmdir (path) < 0 && errno != ENOENT ? -1 : 0;
  return unlink (path) < 0 && errno != ENOENT ? -1 : 0;
}

int
fs_rmtree (const char *path, struct err **err)
{
  if (nftw (path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
    return err_make (err, errno, "remove %s", path);
  return 0;
}

static void
on_alarm (int sig)
{
  (void) sig; /* only there to interrupt flock() */
}

int
fs_flock_wait (int fd, int timeout_ms)
{
  struct sigaction sa = { .sa_handler = on_alarm }, old;
  struct itimerval it = { 0 };
  int r, saved;

  if (flock (fd, LOCK_EX | LOCK_NB) == 0)
    return 0;
  if (errno != EWOULDBLOCK)
    return -1;
  /* Someone holds it: block, with a timer (no SA_RESTART) bounding the wait. */
  sigemptyset (&sa.sa_mask);
  sigaction (SIGALRM, &sa, &old);
  it.it_value.tv_sec = timeout_ms / 1000;
  it.it_value.tv_usec = (timeout_ms % 1000) * 1000;
  setitimer (ITIMER_REAL, &it, NULL);
  r = flock (fd, LOCK_EX);
  saved = errno;
  memset (&it, 0, sizeof it);
  setitimer (ITIMER_REAL, &it, NULL);
  sigaction (SIGALRM, &old, NULL);
  errno = r < 0 && saved == EINTR ? ETIMEDOUT : saved;
  return r;
}
