/* SPDX-License-Identifier: Apache-2.0 */
/* chvm ps [-a]: VMs with their status derived from reality (not vm.json's
   last word); without -a only running and paused ones, as docker does. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "supervisor/supervisor.h"
#include "sys/json.h"
#include "vm/vmctl.h"

static void
usage (FILE *out)
{
  fprintf (out, "Usage: chvm ps [-a|--all] [--json]\n\n"
                "List VMs (running and paused; -a: all).  HOST PSS is the proportional set\n"
                "size of the VM's VMM on the host (--json: vmm_pss and vmm_rss in bytes,\n"
                "beside guest_ram).\n");
}

/* o gets the host memory keys (cli_add_host_memory); out the PSS for the
   table, "-" without a VMM. */
static void
host_pss (struct json_object *o, const struct vmctl *v, enum vm_status st, char *out, size_t len)
{
  uint64_t pss = cli_add_host_memory (o, v, st);

  if (pss == 0)
    snprintf (out, len, "-");
  else
    snprintf (out, len, "%lluM", (unsigned long long) (pss >> 20));
}

int
cmd_ps (const struct global_opts *g, int argc, char **argv)
{
  static const struct option longopts[] = { { "all", no_argument, NULL, 'a' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };
  cleanup_err struct err *err = NULL;
  struct global_opts gl = *g;
  cleanup_json struct json_object *arr = NULL;
  char root[VM_PATH_MAX];
  char **names;
  size_t n;
  bool all = false;
  int c;

  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "ah", longopts, NULL)) != -1)
    switch (c)
      {
      case 'a':
        all = true;
        break;
      case 'h':
        usage (stdout);
        return 0;
      default:
        usage (stderr);
        return 2;
      }
  if (vmstate_root (g->state_dir, root, sizeof root, &err) < 0
      || vmstate_list (root, &names, &n, &err) < 0)
    return cli_fail ("ps", &err);
  gl.state_dir = root;
  if (g->json)
    arr = json_object_new_array ();
  else
    printf ("%-20s %-8s %-17s %4s %7s %8s %-24s %-21s %-10s %s\n", "NAME", "STATUS", "BACKEND",
            "CPUS", "MEMORY", "HOST PSS", "CDP", "ENDPOINT", "SUPERVISOR", "IMAGE");
  for (size_t i = 0; i < n; i++)
    {
      cleanup_free struct vmctl *v = calloc (1, sizeof *v);
      enum vm_status st;
      char cdp[128], sup[32], pss[24];
      struct json_object *o = NULL;
      const char *health;
      pid_t sup_pid;

      if (v == NULL)
        break;
      /* Reading needs no lock: vm.json is replaced atomically. */
      if (vmctl_open (gl.state_dir, names[i], false, v, &err) < 0)
        {
          cli_fail ("ps", &err);
          continue;
        }
      st = vmctl_status (v);
      if (!all && st != VM_STATUS_RUNNING && st != VM_STATUS_PAUSED)
        continue;
      vmctl_cdp_address (&v->rec, cdp, sizeof cdp);
      health = supervisor_health (v->dir, v->rec.cdp_endpoint, st, &sup_pid);
      if (sup_pid > 0)
        snprintf (sup, sizeof sup, "pid %d", (int) sup_pid);
      else
        snprintf (sup, sizeof sup, "%s", strcmp (health, "gone") == 0 ? "gone" : "-");
      o = json_object_new_object ();
      host_pss (o, v, st, pss, sizeof pss);
      if (g->json)
        {
          json_object_object_add (o, "name", json_object_new_string (v->rec.name));
          json_object_object_add (o, "status", json_object_new_string (vm_status_name (st)));
          json_object_object_add (o, "backend", json_object_new_string (v->rec.backend));
          json_object_object_add (o, "pid", json_object_new_int (v->rec.rt.vmm_pid));
          json_object_object_add (o, "cpus", json_object_new_int ((int) v->rec.cpus));
          json_object_object_add (o, "memory_mib",
                                  json_object_new_int64 ((int64_t) v->rec.memory_mib));
          json_object_object_add (o, "cdp", json_object_new_string (cdp));
          json_object_object_add (o, "endpoint", json_object_new_string (v->rec.cdp_endpoint));
          json_object_object_add (o, "supervisor", json_object_new_string (health));
          json_object_object_add (o, "supervisor_pid", json_object_new_int (sup_pid));
          json_object_object_add (o, "image", json_object_new_string (v->rec.image));
          json_object_object_add (o, "created", json_object_new_int64 (v->rec.created));
          json_object_array_add (arr, o);
        }
      else
        {
          printf ("%-20s %-8s %-17s %4u %6lluM %8s %-24s %-21s %-10s %s\n", v->rec.name,
                  vm_status_name (st), v->rec.backend, v->rec.cpus,
                  (unsigned long long) v->rec.memory_mib, pss, cdp,
                  v->rec.cdp_endpoint[0] ? v->rec.cdp_endpoint : "-", sup, v->rec.image);
          json_object_put (o);
        }
    }
  vmstate_list_free (names, n);
  if (g->json)
    json_print (stdout, arr);
  return 0;
}
