/* SPDX-License-Identifier: Apache-2.0 */
/* Files on the host: mkdir -p, bounded reads, durable writes and renames,
   fsync of trees, removal of trees, flock with a timeout. */
#include "sys/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* Reads the open file fd (path, for errors) whole; closes fd. */
static int
read_small_fd (int fd_in, const char *path, size_t max, char **out, size_t *len, struct err **err)
{
  cleanup_close int fd = fd_in;
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

int
fs_read_small (const char *path, size_t max, char **out, size_t *len, struct err **err)
{
  return read_small_fd (open (path, O_RDONLY | O_CLOEXEC), path, max, out, len, err);
}

int
fs_read_small_regular (const char *path, size_t max, char **out, size_t *len, struct err **err)
{
  return read_small_fd (fs_open_read (path), path, max, out, len, err);
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

/* fsync(2) of a file or directory by path. */
static int
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

/* The deepest tree fs_fsync_tree walks (a snapshot is flat). */
#define TREE_DEPTH_MAX 16

/* fsync of what dfd/name holds below it, then of it: directories are
   walked through the fds they were opened by, nothing is followed, and
   only regular files and directories are opened for data (a FIFO or a
   device someone else put there is neither opened nor waited on). */
static int
fsync_at (int dfd, const char *name, const char *path, int depth, struct err **err)
{
  cleanup_close int fd
      = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  struct stat st;

  if (fd < 0)
    {
      if (errno == ELOOP || errno == ENXIO || errno == ENOENT)
        return 0; /* a symlink, a socket, gone: no data of ours */
      return err_make (err, errno, "open %s to fsync it", path);
    }
  if (fstat (fd, &st) < 0)
    return err_make (err, errno, "stat %s", path);
  if (S_ISDIR (st.st_mode))
    {
      cleanup_dir DIR *d = NULL;
      struct dirent *e;
      int dup_fd;

      if (depth >= TREE_DEPTH_MAX)
        return err_make (err, ELOOP, "fsync %s: deeper than %d", path, TREE_DEPTH_MAX);
      dup_fd = fcntl (fd, F_DUPFD_CLOEXEC, 0);
      if (dup_fd < 0)
        return err_make (err, errno, "read %s", path);
      d = fdopendir (dup_fd);
      if (d == NULL)
        {
          close (dup_fd);
          return err_make (err, errno, "read %s", path);
        }
      while ((e = readdir (d)) != NULL)
        {
          char sub[PATH_MAX];

          if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
          if ((size_t) snprintf (sub, sizeof sub, "%s/%s", path, e->d_name) >= sizeof sub)
            return err_make (err, ENAMETOOLONG, "%s/%s", path, e->d_name);
          if (fsync_at (fd, e->d_name, sub, depth + 1, err) < 0)
            return -1;
        }
    }
  else if (!S_ISREG (st.st_mode))
    return 0;
  return fsync_fd (fd, path, err);
}

int
fs_fsync_tree (const char *dir, struct err **err)
{
  if (fsync_at (AT_FDCWD, dir, dir, 0, err) < 0)
    return err_wrap (err, "fsync %s", dir);
  return 0;
}

/* Removes dfd/name and all below it by names relative to directories
   opened without following: a directory swapped for a symlink while the
   walk runs is removed as the link, never walked into.  top names the tree
   in errors.  Each level holds one directory fd: RM_DEPTH_MAX bounds them
   (an unpacked root filesystem nests deeper than a snapshot). */
#define RM_DEPTH_MAX 1024

static int
rm_at (int dfd, const char *name, const char *top, int depth, struct err **err)
{
  cleanup_dir DIR *d = NULL;
  struct dirent *e;
  int fd;

  if (unlinkat (dfd, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return err_make (err, errno, "remove %s%s%s", top, name == top ? "" : ": ",
                     name == top ? "" : name);
  if (depth >= RM_DEPTH_MAX)
    return err_make (err, ELOOP, "remove %s: deeper than %d", top, RM_DEPTH_MAX);
  fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && (errno == ENOTDIR || errno == ELOOP)) /* replaced meanwhile */
    {
      if (unlinkat (dfd, name, 0) < 0 && errno != ENOENT)
        return err_make (err, errno, "remove %s%s%s", top, name == top ? "" : ": ",
                         name == top ? "" : name);
      return 0;
    }
  if (fd < 0)
    return errno == ENOENT ? 0
                           : err_make (err, errno, "open %s%s%s", top, name == top ? "" : ": ",
                                       name == top ? "" : name);
  d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return err_make (err, errno, "read %s%s%s", top, name == top ? "" : ": ",
                       name == top ? "" : name);
    }
  while ((e = readdir (d)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      if (rm_at (dirfd (d), e->d_name, top, depth + 1, err) < 0)
        return -1;
    }
  if (unlinkat (dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return err_make (err, errno, "remove %s%s%s", top, name == top ? "" : ": ",
                     name == top ? "" : name);
  return 0;
}

int
fs_rmtree (const char *path, struct err **err)
{
  if (rm_at (AT_FDCWD, path, path, 0, err) < 0)
    return -1;
  return 0;
}

int
fs_open_log (const char *path, bool truncate, struct err **err)
{
  for (int tries = 0; tries < 8; tries++)
    {
      int fd = open (path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
      struct stat st;

      if (fd >= 0)
        {
          if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && st.st_nlink == 1
              && st.st_uid == geteuid ())
            {
              if (truncate && ftruncate (fd, 0) < 0)
                {
                  int saved = errno;
                  close (fd);
                  return err_make (err, saved, "truncate %s", path);
                }
              return fd;
            }
          close (fd);
        }
      else if (errno != ENOENT && errno != ELOOP && errno != ENXIO && errno != EISDIR)
        return err_make (err, errno, "open %s", path);
      /* Not a plain file of ours (a link, a FIFO, someone else's): its
         name goes, and a new file takes it, or someone took the name
         first and we look again. */
      if (fd >= 0 || errno != ENOENT)
        {
          if (unlink (path) < 0 && errno != ENOENT && errno != EISDIR)
            return err_make (err, errno, "remove %s", path);
          if (errno == EISDIR && rmdir (path) < 0 && errno != ENOENT)
            return err_make (err, errno, "remove %s", path);
        }
      fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd >= 0)
        return fd;
      if (errno != EEXIST)
        return err_make (err, errno, "create %s", path);
    }
  return err_make (err, EAGAIN, "create %s: the name keeps being taken", path);
}

int
fs_open_read (const char *path)
{
  int fd = open (path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  struct stat st;

  if (fd < 0)
    return -1;
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode))
    {
      close (fd);
      errno = EINVAL;
      return -1;
    }
  return fd;
}

int
fs_give (const char *path, uid_t uid, gid_t gid, int mode, bool must, struct err **err)
{
  cleanup_close int fd = open (path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  char self[64];

  if (fd < 0)
    {
      if (errno == ENOENT && !must)
        return 0;
      return err_make (err, errno, "open %s to give it to %u:%u", path, (unsigned) uid,
                       (unsigned) gid);
    }
  if (fstat (fd, &st) < 0)
    return err_make (err, errno, "stat %s", path);
  if (!(S_ISREG (st.st_mode) && st.st_nlink == 1) && !S_ISDIR (st.st_mode))
    return err_make (err, EPERM, "%s: not a plain file or directory, not given to %u:%u", path,
                     (unsigned) uid, (unsigned) gid);
  if (fchownat (fd, "", uid, gid, AT_EMPTY_PATH) < 0)
    return err_make (err, errno, "chown %s to %u:%u", path, (unsigned) uid, (unsigned) gid);
  /* fchmod needs a file opened for data; the fd's /proc name is the very
     inode opened above, whatever the name points to now. */
  snprintf (self, sizeof self, "/proc/self/fd/%d", fd);
  if (mode >= 0 && chmod (self, (mode_t) mode) < 0)
    return err_make (err, errno, "chmod %s", path);
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

/* Copies src's data segments (SEEK_DATA/SEEK_HOLE) into dst, which has
   src's size: holes stay holes. */
static int
copy_data (int in, int out, off_t size, const char *src, struct err **err)
{
  off_t pos = 0;

  while (pos < size)
    {
      off_t data = lseek (in, pos, SEEK_DATA), hole;
      if (data < 0 && errno == ENXIO)
        break; /* only a hole is left */
      if (data < 0 || (hole = lseek (in, data, SEEK_HOLE)) < 0)
        return err_make (err, errno, "copy %s: seek", src);
      for (off_t at = data; at < hole;)
        {
          loff_t ri = at, ro = at;
          ssize_t n = copy_file_range (in, &ri, out, &ro, (size_t) (hole - at), 0);
          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            return err_make (err, n < 0 ? errno : EIO, "copy %s", src);
          at += n;
        }
      pos = hole;
    }
  return 0;
}

int
fs_copy_file (const char *src, const char *dst, mode_t mode, struct err **err)
{
  cleanup_close int in = fs_open_read (src);
  cleanup_close int out = -1;
  struct stat st;

  if (in < 0 || fstat (in, &st) < 0)
    return err_make (err, errno, "open %s", src);
  out = open (dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (out < 0)
    return err_make (err, errno, "create %s", dst);
  if (ftruncate (out, st.st_size) < 0)
    return err_make (err, errno, "size %s", dst);
  if (copy_data (in, out, st.st_size, src, err) < 0 || fsync (out) < 0)
    {
      int e = errno;
      unlink (dst);
      return err && *err ? -1 : err_make (err, e, "fsync %s", dst);
    }
  return 0;
}
