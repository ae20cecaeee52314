/* SPDX-License-Identifier: Apache-2.0 */
/* chvm logs [-f] [--source console|vmm] NAME: the guest console (default)
   or the VMM's own output; -f follows until the VMM exits. */
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
#include "commands.h"
#include "vmctl.h"

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
logs (struct vmctl *c, const char *source, bool follow, struct err **err)
{
  char path[VM_PATH_MAX + 32];
  cleanup_close int fd = -1, ino = -1, pidfd = -1;

  snprintf (path, sizeof path, "%s/%s.log", c->dir, source);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return err_make (err, errno, "%s", path);
  if (follow)
    {
      ino = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
      if (ino < 0 || inotify_add_watch (ino, path, IN_MODIFY) < 0)
        return err_make (err, errno, "watch %s", path);
      if (c->rec.rt.vmm_pid > 0 && vm_pid_is_ours (c->rec.rt.vmm_pid, c->dir))
        pidfd = pidfd_open (c->rec.rt.vmm_pid, 0);
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
        if (strcmp (optarg, "console") != 0 && strcmp (optarg, "vmm") != 0)
          {
            fprintf (stderr, "chvm logs: --source must be console or vmm\n");
            return 2;
          }
        source = optarg;
        break;
      case 'h':
        printf ("Usage: chvm logs [-f|--follow] [--source console|vmm] NAME\n\n"
                "Print the guest console (default) or the VMM's output.\n");
        return 0;
      default:
        fprintf (stderr, "chvm logs: unknown option '%s'\n", argv[optind - 1]);
        return 2;
      }
  if (optind + 1 != argc)
    {
      fprintf (stderr, "Usage: chvm logs [-f] [--source console|vmm] NAME\n");
      return 2;
    }
  if (c == NULL)
    return 1;
  if (vmctl_open (g, argv[optind], false, c, &err) < 0)
    return vmctl_fail ("logs", &err);
  r = logs (c, source, follow, &err);
  return r < 0 ? vmctl_fail ("logs", &err) : 0;
}
