/* SPDX-License-Identifier: Apache-2.0 */
/* chvm stop NAME...: stop the VMM (a standby VM loses its snapshot); the VM
   and its files stay until `chvm rm`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "commands.h"
#include "vmctl.h"

static int
stop_one (const struct global_opts *g, const char *name, struct err **err)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  char snap[VM_PATH_MAX + 16];
  enum vm_status st;
  int r = -1;

  if (c == NULL)
    return err_make (err, ENOMEM, "stop");
  if (vmctl_open (g, name, true, c, err) < 0)
    goto out;
  st = vmctl_status (c);
  if (st == VM_STATUS_RUNNING || st == VM_STATUS_PAUSED)
    {
      if (c->be->shutdown (&c->rec.rt, err) < 0)
        goto out;
    }
  snprintf (snap, sizeof snap, "%s/snapshot", c->dir);
  if (vmctl_rmtree (snap, err) < 0)
    goto out;
  c->rec.state = VM_STATUS_STOPPED;
  c->rec.rt.vmm_pid = 0;
  r = vmctl_save (c, err);
out:
  vmctl_close (c);
  return r;
}

int
cmd_stop (const struct global_opts *g, int argc, char **argv)
{
  int rc = 0;

  if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      fprintf (argc < 2 ? stderr : stdout, "Usage: chvm stop NAME...\n\n"
                                           "Stop VMs (their files stay until chvm rm).\n");
      return argc < 2 ? 2 : 0;
    }
  for (int i = 1; i < argc; i++)
    {
      cleanup_err struct err *err = NULL;
      if (stop_one (g, argv[i], &err) < 0)
        rc = vmctl_fail ("stop", &err);
      else if (!g->json)
        printf ("%s\n", argv[i]);
    }
  return rc;
}
