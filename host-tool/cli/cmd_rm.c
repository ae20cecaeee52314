/* SPDX-License-Identifier: Apache-2.0 */
/* chvm rm [-f] NAME...: remove VMs, leaving no process, tap, nft element or
   file behind.  A running VM needs -f. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "net/net.h"
#include "net/netns.h"
#include "supervisor/supervisor.h"
#include "sys/fs.h"
#include "vm/vmctl.h"
#include "vmm/console.h"

/* Whether another VM still uses the bridge in netns. */
static bool
bridge_in_use (const char *root, const char *self, const char *netns)
{
  cleanup_err struct err *err = NULL;
  bool used = false;
  char **names;
  size_t n;

  if (vmstate_list (root, &names, &n, &err) < 0)
    return true;
  for (size_t i = 0; i < n && !used; i++)
    {
      cleanup_free struct vm_record *r = malloc (sizeof *r);
      if (strcmp (names[i], self) == 0 || r == NULL)
        continue;
      if (vmrec_load (root, names[i], r, &err) < 0)
        {
          err_release (&err);
          used = true; /* unknown: keep the shared parts */
          continue;
        }
      used = r->tap[0] && strcmp (r->netns, netns) == 0;
    }
  vmstate_list_free (names, n);
  return used;
}

static int
rm_one (const struct global_opts *g, const char *name, bool force, struct err **err)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  enum vm_status st;
  int r = -1;

  if (c == NULL)
    return err_make (err, ENOMEM, "rm");
  if (vmctl_open (g->state_dir, name, true, c, err) < 0)
    goto out;
  supervisor_stop (c->dir, 2000);
  st = vmctl_status (c);
  if (st == VM_STATUS_RUNNING || st == VM_STATUS_PAUSED)
    {
      if (!force)
        {
          err_make (err, 0, "VM '%s' is %s: stop it first or use rm -f", name, vm_status_name (st));
          goto out;
        }
      if (c->be->shutdown (&c->rec.rt, err) < 0)
        goto out;
    }
  if (c->rec.tap[0])
    {
      if (net_teardown_vm (NULL, &c->rec, err) < 0)
        goto out;
      if (!bridge_in_use (c->root, name, c->rec.netns) && net_teardown_all (NULL, err) < 0)
        goto out;
    }
  /* A clone's namespace is its own (chvm run --from). */
  if (c->rec.netns_owned
      && (net_enter_netns ("", err) < 0 || net_netns_delete (c->rec.netns, err) < 0))
    goto out;
  /* Whatever the status: a logger must not outlive its VM dir. */
  vmctl_vmm_gone (c);
  r = fs_rmtree (c->dir, err);
out:
  vmctl_close (c);
  return r;
}

int
cmd_rm (const struct global_opts *g, int argc, char **argv)
{
  static const struct option longopts[] = { { "force", no_argument, NULL, 'f' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };
  bool force = false;
  int c, rc = 0;

  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "fh", longopts, NULL)) != -1)
    switch (c)
      {
      case 'f':
        force = true;
        break;
      case 'h':
        printf ("Usage: chvm rm [-f|--force] NAME...\n\n"
                "Remove VMs and everything they own (-f: stop running ones first).\n");
        return 0;
      default:
        fprintf (stderr, "chvm rm: unknown option '%s'\n", argv[optind - 1]);
        return 2;
      }
  if (optind >= argc)
    {
      fprintf (stderr, "Usage: chvm rm [-f] NAME...\n");
      return 2;
    }
  for (int i = optind; i < argc; i++)
    {
      cleanup_err struct err *err = NULL;
      if (rm_one (g, argv[i], force, &err) < 0)
        rc = cli_fail ("rm", &err);
      else if (!g->json)
        printf ("%s\n", argv[i]);
    }
  return rc;
}
