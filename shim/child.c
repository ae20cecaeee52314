/* SPDX-License-Identifier: Apache-2.0 */
/* Children run off the event loop (child.h). */
#include "child.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"

extern char **environ;

struct child
{
  pid_t pid;
  int pidfd, out, errout;
  bool captured; /* out and errout are our memfds (else the caller's) */
  struct event *ev;
  child_done_fn fn;
  void *arg;
};

static char *
slurp (int fd)
{
  off_t size = lseek (fd, 0, SEEK_END);
  size_t n = size < 0 ? 0 : (size_t) size > CHILD_OUTPUT_MAX ? CHILD_OUTPUT_MAX : (size_t) size;
  char *buf = calloc (1, n + 1);
  ssize_t got;

  if (buf == NULL)
    return NULL;
  got = pread (fd, buf, n, 0);
  buf[got > 0 ? (size_t) got : 0] = '\0';
  return buf;
}

static void
child_exited (evutil_socket_t fd, short what, void *arg)
{
  struct child *c = arg;
  cleanup_free char *out = NULL, *errout = NULL;
  int st = 0, status;

  (void) fd;
  (void) what;
  if (TEMP_FAILURE_RETRY (waitpid (c->pid, &st, 0)) < 0)
    status = 255;
  else
    status = WIFEXITED (st) ? WEXITSTATUS (st) : 128 + WTERMSIG (st);
  if (c->captured)
    {
      out = slurp (c->out);
      errout = slurp (c->errout);
    }
  event_free (c->ev);
  close (c->pidfd);
  close (c->out);
  close (c->errout);
  c->fn (c->arg, status, out ?: "", errout ?: "");
  free (c);
}

/* A memfd holding in_len bytes of in, at offset 0. */
static int
input_fd (const void *in, size_t in_len, struct err **err)
{
  int fd = memfd_create ("child-in", MFD_CLOEXEC);

  if (fd < 0)
    return err_make (err, errno, "memfd");
  if (in_len > 0 && write (fd, in, in_len) != (ssize_t) in_len)
    {
      close (fd);
      return err_make (err, errno, "memfd write");
    }
  lseek (fd, 0, SEEK_SET);
  return fd;
}

static int
spawn (struct child *c, const char *const argv[], int in, struct err **err)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none;
  int r;

  sigemptyset (&none);
  posix_spawn_file_actions_init (&fa);
  posix_spawnattr_init (&at);
  posix_spawnattr_setsigmask (&at, &none);
  posix_spawnattr_setflags (&at, POSIX_SPAWN_SETSIGMASK);
  posix_spawn_file_actions_adddup2 (&fa, in, 0);
  posix_spawn_file_actions_adddup2 (&fa, c->out, 1);
  posix_spawn_file_actions_adddup2 (&fa, c->errout, 2);
  /* No connection of ours may outlive us in a child (containerd sees a
     shim's death as its socket's EOF). */
  posix_spawn_file_actions_addclosefrom_np (&fa, 3);
  r = posix_spawn (&c->pid, argv[0], &fa, &at, (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  posix_spawnattr_destroy (&at);
  if (r != 0)
    return err_make (err, r, "run %s", argv[0]);
  return 0;
}

static void
close_outs (struct child *c)
{
  if (c->out >= 0)
    close (c->out);
  if (c->errout >= 0)
    close (c->errout);
}

/* Spawns argv with stdin in and c's outputs, and watches its exit; on
   failure c's fds are closed. */
static int
start (struct event_base *base, struct child *c, const char *const argv[], int in, struct err **err)
{
  int r = spawn (c, argv, in, err);

  if (r == 0)
    {
      c->pidfd = (int) syscall (SYS_pidfd_open, c->pid, 0);
      c->ev = c->pidfd < 0 ? NULL : event_new (base, c->pidfd, EV_READ, child_exited, c);
      if (c->ev == NULL || event_add (c->ev, NULL) < 0)
        {
          /* Cannot watch it: wait for it here rather than lose it. */
          int st;

          waitpid (c->pid, &st, 0);
          if (c->pidfd >= 0)
            close (c->pidfd);
          r = err_make (err, errno, "watch %s", argv[0]);
        }
    }
  if (r < 0)
    close_outs (c);
  return r;
}

int
child_spawn (struct event_base *base, const char *const argv[], const void *in, size_t in_len,
             child_done_fn fn, void *arg, struct err **err)
{
  cleanup_free struct child *c = calloc (1, sizeof *c);
  cleanup_close int infd = -1;

  if (c == NULL)
    return err_make (err, ENOMEM, "child");
  *c = (struct child){ .pidfd = -1, .fn = fn, .arg = arg, .captured = true };
  if ((infd = input_fd (in, in_len, err)) < 0)
    return -1;
  c->out = memfd_create ("child-out", MFD_CLOEXEC);
  c->errout = memfd_create ("child-err", MFD_CLOEXEC);
  if (c->out < 0 || c->errout < 0)
    {
      int r = err_make (err, errno, "memfd");

      close_outs (c);
      return r;
    }
  if (start (base, c, argv, infd, err) < 0)
    return -1;
  steal_ptr (&c);
  return 0;
}

int
child_spawn_io (struct event_base *base, const char *const argv[], int out, int errout,
                child_done_fn fn, void *arg, pid_t *pid, struct err **err)
{
  cleanup_free struct child *c = calloc (1, sizeof *c);
  cleanup_close int null = open ("/dev/null", O_RDONLY | O_CLOEXEC);

  if (c == NULL || null < 0)
    return err_make (err, c == NULL ? ENOMEM : errno, "child");
  *c = (struct child){ .pidfd = -1, .fn = fn, .arg = arg };
  c->out = fcntl (out, F_DUPFD_CLOEXEC, 3);
  c->errout = fcntl (errout, F_DUPFD_CLOEXEC, 3);
  if (c->out < 0 || c->errout < 0)
    {
      int r = err_make (err, errno, "dup");

      close_outs (c);
      return r;
    }
  if (start (base, c, argv, null, err) < 0)
    return -1;
  *pid = c->pid;
  steal_ptr (&c);
  return 0;
}

void
child_last_line (const char *text, char *line, size_t len)
{
  const char *end = text + strlen (text), *start;

  while (end > text && (end[-1] == '\n' || end[-1] == ' '))
    end--;
  start = end;
  while (start > text && start[-1] != '\n')
    start--;
  snprintf (line, len, "%.*s", (int) (end - start), start);
}
