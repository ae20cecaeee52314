/* SPDX-License-Identifier: Apache-2.0 */
#include "vmm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "num.h"
#include "path.h"
#include "sys/cgroup.h"
#include "sys/fs.h"
#include "sys/proc.h"

extern char **environ;

#define RING_SIZE (256u << 10) /* socket -> file backlog before output is dropped */
#define CHUNK (64u << 10)      /* one read / one write */
#define CONNECT_WAIT_MS 60000  /* logger start to the VMM binding console.sock */

/* $CHVM_CONSOLE_MAX (bytes, optionally K or M; at least CONSOLE_MAX_MIN),
   else CONSOLE_MAX_DEFAULT. */
static size_t
console_max (void)
{
  const char *s = getenv ("CHVM_CONSOLE_MAX");
  size_t digits, mul = 1;
  uint64_t v;

  if (s == NULL || *s == '\0')
    return CONSOLE_MAX_DEFAULT;
  digits = strspn (s, "0123456789");
  if (s[digits] == 'K' || s[digits] == 'k')
    mul = 1u << 10;
  else if (s[digits] == 'M' || s[digits] == 'm')
    mul = 1u << 20;
  else if (s[digits] != '\0')
    return CONSOLE_MAX_DEFAULT;
  if (digits == 0 || (mul != 1 && s[digits + 1] != '\0')
      || num_parse_u64 (s, digits, (1ull << 40) / mul, &v) < 0)
    return CONSOLE_MAX_DEFAULT;
  v *= mul;
  return v < CONSOLE_MAX_MIN ? CONSOLE_MAX_MIN : (size_t) v;
}

/* ---- the logger process ---- */

struct logger
{
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char ring[RING_SIZE];
  size_t head, len; /* bytes ring[head..head+len) (mod RING_SIZE) wait for the file */
  uint64_t dropped; /* bytes the ring had no room for, not yet reported */
  bool eof;
  /* The writer thread's alone: */
  char path[PATH_MAX], path1[PATH_MAX];
  int fd;
  size_t size, max;
};

static void
out_open (struct logger *l, bool truncate)
{
  cleanup_err struct err *e = NULL;
  struct stat st;

  if (l->fd >= 0)
    close (l->fd);
  /* The VM dir is writable by the VMM's uid: never through its links. */
  l->fd = fs_open_log (l->path, truncate, &e);
  l->size = l->fd >= 0 && fstat (l->fd, &st) == 0 ? (size_t) st.st_size : 0;
}

/* console.log -> console.log.1 (replacing it), then a new console.log.  The
   old file is closed first: once the new one exists, nothing more goes to
   the old one (the followers rely on that). */
static void
out_rotate (struct logger *l)
{
  if (l->fd >= 0)
    close (l->fd);
  l->fd = -1;
  rename (l->path, l->path1);
  out_open (l, true);
}

/* Writes data with the cap: a write that would take console.log past max
   goes up to the last line end that fits (the whole room when a line is
   longer than a file), the rest to a new file.  A write that fails (ENOSPC,
   EIO) drops the data: the logger must go on reading the socket. */
static void
out_write (struct logger *l, const char *data, size_t n)
{
  while (n > 0)
    {
      size_t room = l->size < l->max ? l->max - l->size : 0, cut = n;

      if (n > room)
        {
          const char *nl = room ? memrchr (data, '\n', room) : NULL;
          cut = nl ? (size_t) (nl - data) + 1 : l->size == 0 ? room : 0;
        }
      if (cut > 0 && l->fd >= 0)
        {
          size_t done = 0;
          while (done < cut)
            {
              ssize_t w = write (l->fd, data + done, cut - done);
              if (w < 0 && errno == EINTR)
                continue;
              if (w <= 0)
                break;
              done += (size_t) w;
            }
          l->size += done;
        }
      data += cut;
      n -= cut;
      if (n > 0)
        out_rotate (l);
    }
}

static void *
writer_thread (void *arg)
{
  struct logger *l = arg;
  static char chunk[CHUNK];

  for (;;)
    {
      size_t n = 0;
      uint64_t dropped = 0;

      pthread_mutex_lock (&l->mu);
      while (l->len == 0 && l->dropped == 0 && !l->eof)
        pthread_cond_wait (&l->cv, &l->mu);
      if (l->len == 0 && l->dropped == 0)
        {
          pthread_mutex_unlock (&l->mu);
          return NULL;
        }
      while (n < sizeof chunk && l->len > 0)
        {
          size_t k = RING_SIZE - l->head;
          if (k > l->len)
            k = l->len;
          if (k > sizeof chunk - n)
            k = sizeof chunk - n;
          memcpy (chunk + n, l->ring + l->head, k);
          n += k;
          l->head = (l->head + k) % RING_SIZE;
          l->len -= k;
        }
      /* Said where the loss happened: after what the ring held. */
      if (l->len == 0)
        {
          dropped = l->dropped;
          l->dropped = 0;
        }
      pthread_mutex_unlock (&l->mu);
      out_write (l, chunk, n);
      if (dropped)
        {
          char note[128];
          int k = snprintf (note, sizeof note,
                            "\n[chvm: %llu bytes of console output dropped: the host's disk "
                            "did not keep up]\n",
                            (unsigned long long) dropped);
          out_write (l, note, (size_t) k);
        }
    }
}

int
console_logger_main (int argc, char **argv)
{
  static struct logger l
      = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .fd = -1 };
  static char buf[CHUNK];
  cleanup_err struct err *err = NULL;
  char sock[PATH_MAX];
  cleanup_close int s = -1;
  uint64_t pid;
  pthread_t tid;

  if (argc != 3 || argv[1][0] != '/' || num_parse_u64_str (argv[2], INT32_MAX, &pid) < 0)
    {
      fprintf (stderr, "usage: chvm %s DIR VMM_PID (started by chvm)\n", CONSOLE_LOGGER_CMD);
      return 2;
    }
  signal (SIGPIPE, SIG_IGN);
  l.max = console_max ();
  if (path_in (l.path, sizeof l.path, argv[1], "console.log", &err) < 0
      || path_in (l.path1, sizeof l.path1, argv[1], "console.log.1", &err) < 0
      || path_in (sock, sizeof sock, argv[1], "console.sock", &err) < 0)
    return 1;
  out_open (&l, false);
  if (l.size >= l.max)
    out_rotate (&l);
  /* Only one connection: CH drops the previous client for a new one. */
  s = proc_connect_socket ((pid_t) pid, sock, CONNECT_WAIT_MS, &err);
  if (s < 0)
    return 1;
  if (pthread_create (&tid, NULL, writer_thread, &l) != 0)
    return 1;
  /* Never blocks on the file: what the ring cannot take is counted and
     dropped.  The socket is never written to (that is guest input) nor
     shut down (CH v48 would take that for the client leaving). */
  for (;;)
    {
      ssize_t n = read (s, buf, sizeof buf);
      size_t take;

      if (n < 0 && errno == EINTR)
        continue;
      pthread_mutex_lock (&l.mu);
      if (n <= 0)
        {
          l.eof = true;
          pthread_cond_signal (&l.cv);
          pthread_mutex_unlock (&l.mu);
          break;
        }
      take = RING_SIZE - l.len < (size_t) n ? RING_SIZE - l.len : (size_t) n;
      for (size_t i = 0; i < take;)
        {
          size_t at = (l.head + l.len) % RING_SIZE, k = RING_SIZE - at;
          if (k > take - i)
            k = take - i;
          memcpy (l.ring + at, buf + i, k);
          l.len += k;
          i += k;
        }
      l.dropped += (size_t) n - take;
      pthread_cond_signal (&l.cv);
      pthread_mutex_unlock (&l.mu);
    }
  pthread_join (tid, NULL);
  if (l.fd >= 0)
    close (l.fd);
  return 0;
}

/* ---- starting and stopping it ---- */

int
console_logger_start (const char *dir, pid_t vmm_pid, struct err **err)
{
  char log[PATH_MAX], pidfile[PATH_MAX], vmm[24], line[24];
  const char *argv[] = { "chvm", CONSOLE_LOGGER_CMD, dir, vmm, NULL };
  cleanup_close int fd = -1;
  pid_t pid;
  int n;

  if (path_in (log, sizeof log, dir, "console.log", err) < 0
      || path_in (pidfile, sizeof pidfile, dir, "console-log.pid", err) < 0)
    return -1;
  /* Readers open console.log as soon as the VMM runs. */
  fd = fs_open_log (log, false, err);
  if (fd < 0)
    return -1;
  snprintf (vmm, sizeof vmm, "%d", (int) vmm_pid);
  /* Its own session, default signals: it outlives this chvm (no
     PR_SET_PDEATHSIG) and ends at the VMM's EOF, or when stop/rm kill it. */
  if (proc_spawn_self (argv, &pid, err) < 0)
    return err_wrap (err, "start the console logger");
  n = snprintf (line, sizeof line, "%d\n", (int) pid);
  /* Into its VMM's cgroup (if any): the VM's kill ends it too. */
  if (cgroup_join_like (pid, vmm_pid, err) < 0
      || fs_write_atomic (pidfile, line, (size_t) n, 0644, err) < 0)
    {
      proc_terminate (pid, 1000, NULL);
      return err_wrap (err, "record the console logger");
    }
  return 0;
}

pid_t
console_logger_pid (const char *dir)
{
  char pidfile[PATH_MAX];
  pid_t pid;

  if (path_in (pidfile, sizeof pidfile, dir, "console-log.pid", NULL) < 0)
    return 0;
  pid = proc_read_pid_file (pidfile);
  /* Only our logger of this VM: root's, its command line names the VM dir. */
  return pid > 0 && proc_pid_is_daemon (pid, CONSOLE_LOGGER_CMD, dir) ? pid : 0;
}

void
console_logger_stop (const char *dir, int grace_ms)
{
  char pidfile[PATH_MAX];
  pid_t pid = console_logger_pid (dir);

  if (pid > 0 && proc_wait_exit (pid, grace_ms, NULL, NULL) == 0)
    proc_terminate (pid, 1000, NULL);
  if (path_in (pidfile, sizeof pidfile, dir, "console-log.pid", NULL) == 0)
    unlink (pidfile);
}

/* ---- following console.log ---- */

static int
copy_fd (int fd, console_sink sink, void *ctx, struct err **err)
{
  char buf[65536];
  ssize_t n;
  int r;

  while ((n = TEMP_FAILURE_RETRY (read (fd, buf, sizeof buf))) > 0)
    if ((r = sink (ctx, buf, (size_t) n, err)) != 0)
      return r;
  if (n < 0)
    return err_make (err, errno, "read console");
  return 0;
}

int
console_follow_open (struct console_follow *f, const char *dir, bool old, console_sink sink,
                     void *ctx, struct err **err)
{
  char old_path[sizeof f->path + 4];
  int r;

  f->fd = -1;
  f->ino = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
  if (path_in (f->path, sizeof f->path, dir, "console.log", err) < 0)
    return -1;
  if (f->ino < 0 || inotify_add_watch (f->ino, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0)
    return err_make (err, errno, "watch %s", dir);
  if (old)
    {
      cleanup_close int fd = -1;
      snprintf (old_path, sizeof old_path, "%s.1", f->path);
      fd = fs_open_read (old_path);
      if (fd >= 0 && (r = copy_fd (fd, sink, ctx, err)) != 0)
        return r;
    }
  f->fd = fs_open_read (f->path);
  if (f->fd < 0)
    return err_make (err, errno, "%s", f->path);
  return 0;
}

int
console_follow_read (struct console_follow *f, console_sink sink, void *ctx, struct err **err)
{
  char ev[4096];
  int r;

  while (read (f->ino, ev, sizeof ev) > 0)
    ;
  for (;;)
    {
      struct stat now, cur;
      int fd;

      if ((r = copy_fd (f->fd, sink, ctx, err)) != 0)
        return r;
      /* Rotated: the logger wrote its last to the old file before the new
         one existed, so read the old one to its end once more, then go on
         with the new one from its start.  While neither exists (between
         the two steps of a rotation) the next event brings it. */
      if (stat (f->path, &now) < 0 || fstat (f->fd, &cur) < 0
          || (now.st_ino == cur.st_ino && now.st_dev == cur.st_dev))
        return 0;
      fd = fs_open_read (f->path);
      if (fd < 0)
        return 0;
      r = copy_fd (f->fd, sink, ctx, err);
      close (f->fd);
      f->fd = fd;
      if (r != 0)
        return r;
    }
}

void
console_follow_close (struct console_follow *f)
{
  if (f->fd >= 0)
    close (f->fd);
  if (f->ino >= 0)
    close (f->ino);
  f->fd = f->ino = -1;
}
