/* SPDX-License-Identifier: Apache-2.0 */
/* chvm supervise [--idle-standby S] [--cdp-max-clients N] NAME: starts the
   VM's supervisor (its CDP endpoint, idle clock and wake on connect) when
   none runs, e.g. after one was killed: the VM itself ran on meanwhile,
   only its clients' connections ended.  The options change what vm.json
   records; a running supervisor follows vm.json at once. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "num.h"
#include "supervisor/supervisor.h"
#include "sys/json.h"
#include "vm/vmctl.h"

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: chvm supervise [--idle-standby SECONDS] [--cdp-max-clients N] NAME [--json]\n\n"
           "Start the VM's supervisor, which holds its CDP endpoint, unless one runs\n"
           "(chvm run and restore start it; this takes over after one died).\n"
           "  --idle-standby S     stand the VM by after S seconds without a CDP byte\n"
           "                       (0: never; needs a tap)\n"
           "  --cdp-max-clients N  at most N clients on the endpoint at once\n");
}

/* Records the new settings under the state lock. */
static int
update (const struct global_opts *g, const char *name, long idle, long max, struct err **err)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  int r = -1;

  if (c == NULL)
    return err_make (err, ENOMEM, "supervise");
  if (vmctl_open (g->state_dir, name, true, c, err) < 0)
    goto out;
  if (idle >= 0 && supervisor_check_idle ((unsigned) idle, c->rec.tap[0] != '\0', err) < 0)
    goto out;
  if (idle >= 0)
    c->rec.idle_standby_s = (unsigned) idle;
  if (max >= 0)
    c->rec.cdp_max_clients = (unsigned) max;
  r = vmctl_save (c, err);
out:
  vmctl_close (c);
  return r;
}

int
cmd_supervise (const struct global_opts *g, int argc, char **argv)
{
  static const struct option longopts[] = { { "idle-standby", required_argument, NULL, 'I' },
                                            { "cdp-max-clients", required_argument, NULL, 'X' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };
  cleanup_err struct err *err = NULL;
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  long idle = -1, max = -1;
  enum vm_status st;
  uint64_t v;
  pid_t pid;
  int o;

  optind = 1;
  opterr = 0;
  while ((o = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    switch (o)
      {
      case 'I':
        if (num_parse_u64_str (optarg, 86400, &v) < 0)
          {
            fprintf (stderr, "chvm supervise: bad --idle-standby '%s' (0-86400)\n", optarg);
            return 2;
          }
        idle = (long) v;
        break;
      case 'X':
        if (num_parse_u64_str (optarg, 4096, &v) < 0 || v == 0)
          {
            fprintf (stderr, "chvm supervise: bad --cdp-max-clients '%s' (1-4096)\n", optarg);
            return 2;
          }
        max = (long) v;
        break;
      case 'h':
        usage (stdout);
        return 0;
      default:
        usage (stderr);
        return 2;
      }
  if (optind + 1 != argc)
    {
      usage (stderr);
      return 2;
    }
  if (c == NULL)
    return 1;
  if ((idle >= 0 || max >= 0) && update (g, argv[optind], idle, max, &err) < 0)
    return cli_fail ("supervise", &err);
  if (vmctl_open (g->state_dir, argv[optind], false, c, &err) < 0)
    return cli_fail ("supervise", &err);
  st = vmctl_status (c);
  if (!supervisor_wanted (st))
    {
      err_make (&err, 0, "VM %s is %s: nothing to supervise", c->rec.name, vm_status_name (st));
      return cli_fail ("supervise", &err);
    }
  if (c->rec.cdp_endpoint[0] == '\0')
    {
      err_make (&err, 0, "VM %s has no CDP endpoint (made before supervisors)", c->rec.name);
      return cli_fail ("supervise", &err);
    }
  if (supervisor_start (c->dir, c->rec.netns, false, &err) < 0)
    return cli_fail ("supervise", &err);
  pid = supervisor_pid (c->dir);
  if (g->json)
    {
      cleanup_json struct json_object *o = json_object_new_object ();
      char endpoint[128];
      vmrec_endpoint_url (&c->rec, endpoint, sizeof endpoint);
      json_object_object_add (o, "name", json_object_new_string (c->rec.name));
      json_object_object_add (o, "supervisor_pid", json_object_new_int (pid));
      json_object_object_add (o, "endpoint", json_object_new_string (endpoint));
      json_object_object_add (o, "idle_standby", json_object_new_int64 (c->rec.idle_standby_s));
      json_print (stdout, o);
    }
  else
    {
      char endpoint[128];
      vmrec_endpoint_url (&c->rec, endpoint, sizeof endpoint);
      printf ("%s: supervisor pid %d, CDP endpoint %s, idle standby %u s\n", c->rec.name, (int) pid,
              endpoint, c->rec.idle_standby_s);
    }
  return 0;
}
