/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm pause NAME... / chvm resume NAME...: stop a running VM's vCPUs where
 * they are (CH vm.pause, QEMU's QMP stop) and let them go on (vm.resume,
 * cont).  The VMM, guest RAM and the devices stay; the guest's clock jumps
 * by the pause.  One file for the pair: each is the other undone.
 *
 * vm.json records "paused", which `ps` shows (it asks the VMM first) and
 * which the supervisor reads: no idle standby of a paused VM (a later wake
 * would restore it running), and a CDP client gets no answer from the
 * guest until it is resumed (connecting is not a wake).  stop kills a
 * paused VM at once (it cannot see the power button), standby snapshots
 * it without the agent's quiesce and restore brings it back running.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "sys/json.h"
#include "vm/vmctl.h"

/* Pauses (resume false) or resumes VM name under the state lock and
   records it.  A VM that is not running (pause) or not paused (resume) is
   an error that names its status. */
static int
pause_one (const struct global_opts *g, const char *name, bool resume, struct err **err)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  enum vm_status from = resume ? VM_STATUS_PAUSED : VM_STATUS_RUNNING;
  enum vm_status to = resume ? VM_STATUS_RUNNING : VM_STATUS_PAUSED;
  cleanup_err struct err *undo = NULL;
  enum vm_status st;
  int r = -1;

  if (c == NULL)
    return err_make (err, ENOMEM, "%s", resume ? "resume" : "pause");
  if (vmctl_open (g->state_dir, name, true, c, err) < 0)
    goto out;
  st = vmctl_status (c);
  if (st != from)
    {
      err_make (err, 0, "VM '%s' is %s, not %s", name, vm_status_name (st), vm_status_name (from));
      goto out;
    }
  if ((resume ? c->be->resume : c->be->pause) (&c->rec.rt, err) < 0)
    goto out;
  c->rec.state = to;
  r = vmctl_save (c, err);
  /* Not recorded: as it was, so that the record and the VMM agree. */
  if (r < 0)
    (resume ? c->be->pause : c->be->resume) (&c->rec.rt, &undo);
out:
  vmctl_close (c);
  return r;
}

static int
usage_pause (FILE *out, int status)
{
  fputs ("Usage: chvm pause NAME... [--json]\n\n"
         "Pause running VMs: their vCPUs stop where they are (the VMM, guest RAM and\n"
         "devices stay) until `chvm resume NAME`.  A paused VM answers nothing, CDP\n"
         "included; its supervisor does not stand it by when idle.\n",
         out);
  return status;
}

static int
usage_resume (FILE *out, int status)
{
  fputs ("Usage: chvm resume NAME... [--json]\n\n"
         "Resume VMs paused by `chvm pause`: their vCPUs go on from where they\n"
         "stopped.\n",
         out);
  return status;
}

/* Each NAME in turn; --json: [{"name","state"}] of those that went. */
static int
pause_all (const struct global_opts *g, int argc, char **argv, bool resume)
{
  const char *cmd = resume ? "resume" : "pause";
  cleanup_json struct json_object *arr = NULL;
  int rc = cli_help_only (argc, argv, resume ? usage_resume : usage_pause, true);

  if (rc >= 0)
    return rc;
  rc = 0;
  arr = g->json ? json_object_new_array () : NULL;
  for (int i = optind; i < argc; i++)
    {
      cleanup_err struct err *err = NULL;
      const char *state = vm_status_name (resume ? VM_STATUS_RUNNING : VM_STATUS_PAUSED);
      struct json_object *o;

      if (pause_one (g, argv[i], resume, &err) < 0)
        rc = cli_fail (cmd, &err);
      else if (arr == NULL)
        printf ("%s: %s\n", argv[i], state);
      else
        {
          o = json_object_new_object ();
          json_object_object_add (o, "name", json_object_new_string (argv[i]));
          json_object_object_add (o, "state", json_object_new_string (state));
          json_object_array_add (arr, o);
        }
    }
  if (arr != NULL)
    json_print (stdout, arr);
  return rc;
}

int
cmd_pause (const struct global_opts *g, int argc, char **argv)
{
  return pause_all (g, argc, argv, false);
}

int
cmd_resume (const struct global_opts *g, int argc, char **argv)
{
  return pause_all (g, argc, argv, true);
}
