/* SPDX-License-Identifier: Apache-2.0 */
/* chvm logs [-f] [--source console|vmm] NAME: the guest console (default;
   console.log.1 then console.log, see console.h) or the VMM's own output;
   -f follows until the VMM (and the console logger) exit. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "sys/fs.h"
#include "sys/proc.h"
#include "vm/vmctl.h"
#include "vmm/console.h"

static int
copy_new (int fd, struct err **err)
{
  char buf[65536];
  ssize_t n;

  while ((n = TEMP_FAILURE_RETRY (read (fd, buf, sizeof buf))) > 0)
    if (fwrite (buf, 1, (size_t) n, stdout) != (size_t) n)
      return err_make (err, errno, "write");
  if (n < 0)
    return err_make (err, errno, "read");
  fflush (stdout);
  return 0;
}

static int
to_stdout (void *ctx, const char *buf, size_t n, struct err **err)
{
  (void) ctx;
  if (fwrite (buf, 1, n, stdout) != n || fflush (stdout) != 0)
    return err_make (err, errno, "write");
  return 0;
}

/* What -f waits for: the console logger's exit (it writes the console's
   last bytes after the VMM is gone), else the VMM's. */
static int
end_pidfd (const struct vmctl *c, bool console)
{
  pid_t pid = console ? console_logger_pid (c->dir) : 0;

  if (pid == 0 && c->rec.rt.vmm_pid > 0 && proc_pid_names_dir (c->rec.rt.vmm_pid, c->dir))
    pid = c->rec.rt.vmm_pid;
  return pid > 0 ? pidfd_open (pid, 0) : -1;
}

/* The console: console.log.1 (the older part a rotation kept), then
   console.log, following rotations with -f. */
static int
logs_console (struct vmctl *c, bool follow, struct err **err)
{
  struct console_follow f = { .fd = -1, .ino = -1 };
  cleanup_close int pidfd = -1;
  int r;

  if (follow)
    pidfd = end_pidfd (c, true);
  r = console_follow_open (&f, c->dir, true, to_stdout, NULL, err);
  while (r == 0)
    {
      struct pollfd p[2] = { { .fd = f.ino, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };

      if ((r = console_follow_read (&f, to_stdout, NULL, err)) != 0 || !follow)
        break;
      if (TEMP_FAILURE_RETRY (poll (p, pidfd >= 0 ? 2 : 1, -1)) < 0)
        {
          r = err_make (err, errno, "poll");
          break;
        }
      if (pidfd >= 0 && (p[1].revents & POLLIN))
        {
          r = console_follow_read (&f, to_stdout, NULL, err);
          break;
        }
    }
  console_follow_close (&f);
  return r < 0 ? -1 : 0;
}

static int
logs (struct vmctl *c, const char *source, bool follow, struct err **err)
{
  char path[VM_PATH_MAX + 32];
  cleanup_close int fd = -1, ino = -1, pidfd = -1;

  if (strcmp (source, "console") == 0)
    return logs_console (c, follow, err);
  snprintf (path, sizeof path, "%s/%s.log", c->dir, source);
  fd = fs_open_read (path); /* supervisor.log may be missing: the VMM's uid may plant one */
  if (fd < 0)
    return err_make (err, errno, "%s", path);
  if (follow)
    {
      ino = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
      if (ino < 0 || inotify_add_watch (ino, path, IN_MODIFY) < 0)
        return err_make (err, errno, "watch %s", path);
      pidfd = end_pidfd (c, false);
    }
  if (copy_new (fd, err) < 0)
    return -1;
  /* Until the VMM exits (or forever when none runs: ^C ends it). */
  while (follow)
    {
      struct pollfd p[2] = { { .fd = ino, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
      char ev[4096];

      if (TEMP_FAILURE_RETRY (poll (p, pidfd >= 0 ? 2 : 1, -1)) < 0)
        return err_make (err, errno, "poll");
      if ((p[0].revents & POLLIN) && read (ino, ev, sizeof ev) < 0 && errno != EAGAIN)
        return err_make (err, errno, "inotify");
      if (copy_new (fd, err) < 0)
        return -1;
      if (pidfd >= 0 && (p[1].revents & POLLIN))
        break;
    }
  return 0;
}

int
cmd_logs (const struct global_opts *g, int argc, char **argv)
{
  static const struct option longopts[] = { { "follow", no_argument, NULL, 'f' },
                                            { "source", required_argument, NULL, 's' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };
  cleanup_err struct err *err = NULL;
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  const char *source = "console";
  bool follow = false;
  int o, r;

  optind = 1;
  opterr = 0;
  while ((o = getopt_long (argc, argv, "fh", longopts, NULL)) != -1)
    switch (o)
      {
      case 'f':
        follow = true;
        break;
      case 's':
        if (strcmp (optarg, "console") != 0 && strcmp (optarg, "vmm") != 0
            && strcmp (optarg, "supervisor") != 0)
          {
            fprintf (stderr, "chvm logs: --source must be console, vmm or supervisor\n");
            return 2;
          }
        source = optarg;
        break;
      case 'h':
        printf ("Usage: chvm logs [-f|--follow] [--source console|vmm|supervisor] NAME\n\n"
                "Print the guest console (default), the VMM's output, or the supervisor's\n"
                "log (its CDP endpoint, each wake and idle standby with its times).\n");
        return 0;
      default:
        fprintf (stderr, "chvm logs: unknown option '%s'\n", argv[optind - 1]);
        return 2;
      }
  if (optind + 1 != argc)
    {
      fprintf (stderr, "Usage: chvm logs [-f] [--source console|vmm|supervisor] NAME\n");
      return 2;
    }
  if (c == NULL)
    return 1;
  if (vmctl_open (g->state_dir, argv[optind], false, c, &err) < 0)
    return cli_fail ("logs", &err);
  r = logs (c, source, follow, &err);
  return r < 0 ? cli_fail ("logs", &err) : 0;
}
