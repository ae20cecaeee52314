/* SPDX-License-Identifier: Apache-2.0 */
/* chvm inspect NAME...: vm.json plus what only reality knows (status, dir,
   CDP address), as a JSON array. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "supervisor/supervisor.h"
#include "sys/cgroup.h"
#include "sys/json.h"
#include "vm/vmctl.h"
#include "vm/vmmuser.h"

/* "endpoint" (http://ADDR:PORT) and "supervisor": its health, pid and,
   when it answers, its own status (state, clients, wakes...). */
static void
add_supervisor (struct json_object *o, const struct vmctl *c)
{
  cleanup_err struct err *err = NULL;
  enum vm_status st = vmctl_status (c);
  struct json_object *sup = NULL;
  char line[SUPCTL_LINE_MAX], ep[128];
  pid_t pid;
  const char *health = supervisor_health (c->dir, c->rec.cdp_endpoint, st, &pid);

  if (c->rec.cdp_endpoint[0] == '\0')
    return;
  vmrec_endpoint_url (&c->rec, ep, sizeof ep);
  json_object_object_add (o, "endpoint", json_object_new_string (ep));
  if (pid > 0 && supervisor_query (c->dir, "status", line, sizeof line, 2000, &err) == 0)
    sup = json_tokener_parse (line);
  if (sup == NULL || !json_object_is_type (sup, json_type_object))
    {
      json_object_put (sup);
      sup = json_object_new_object ();
    }
  json_object_object_add (sup, "health", json_object_new_string (health));
  json_object_object_add (sup, "pid", json_object_new_int (pid));
  json_object_object_add (o, "supervisor", sup);
}

/* "cgroup": the VM's cgroup v2 ("path" and its limits while its VMM runs;
   "path" null and "why" when it has none). */
static void
add_cgroup (struct json_object *o, const struct vmctl *c)
{
  static const char *const files[] = { "cpu.max", "memory.max", "pids.max" };
  struct json_object *cg = json_object_new_object ();
  cleanup_err struct err *err = NULL;
  char path[VM_PATH_MAX], v[64];
  struct stat st;

  if (vmmuser_cgroup_find (c->dir, c->rec.name, path, sizeof path, &err) < 0)
    {
      json_object_object_add (cg, "path", NULL);
      snprintf (path, sizeof path, "%s: its processes are ended by the VMM's uid, no limits",
                err->msg);
      json_object_object_add (cg, "why", json_object_new_string (path));
    }
  else if (stat (path, &st) < 0)
    {
      json_object_object_add (cg, "path", NULL);
      json_object_object_add (cg, "why", json_object_new_string ("no VMM running"));
    }
  else
    {
      json_object_object_add (cg, "path", json_object_new_string (path));
      for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        {
          cgroup_read (path, files[i], v, sizeof v);
          /* A controller not enabled here: no such limit. */
          json_object_object_add (cg, files[i], v[0] ? json_object_new_string (v) : NULL);
        }
    }
  json_object_object_add (o, "cgroup", cg);
}

static int
usage (FILE *out, int status)
{
  fprintf (out, "Usage: chvm inspect NAME...\n\nPrint VMs' state as JSON.\n");
  return status;
}

int
cmd_inspect (const struct global_opts *g, int argc, char **argv)
{
  cleanup_json struct json_object *arr = NULL;
  int rc = cli_help_only (argc, argv, usage, true);

  if (rc >= 0)
    return rc;
  rc = 0;
  arr = json_object_new_array ();
  for (int i = optind; i < argc; i++)
    {
      cleanup_err struct err *err = NULL;
      cleanup_free struct vmctl *c = calloc (1, sizeof *c);
      cleanup_free char *text = NULL;
      struct json_object *o, *hm;
      char cdp[128];

      if (c == NULL)
        return 1;
      if (vmctl_open (g->state_dir, argv[i], false, c, &err) < 0
          || vmrec_to_json (&c->rec, &text, &err) < 0)
        {
          rc = cli_fail ("inspect", &err);
          continue;
        }
      o = json_tokener_parse (text);
      vmctl_cdp_address (&c->rec, cdp, sizeof cdp);
      json_object_object_add (o, "status",
                              json_object_new_string (vm_status_name (vmctl_status (c))));
      json_object_object_add (o, "dir", json_object_new_string (c->dir));
      json_object_object_add (o, "cdp", json_object_new_string (cdp));
      add_supervisor (o, c);
      add_cgroup (o, c);
      hm = json_object_new_object ();
      cli_add_host_memory (hm, c, vmctl_status (c));
      json_object_object_add (o, "host_memory", hm);
      json_object_array_add (arr, o);
    }
  /* Without --json for people: the same document, indented. */
  if (g->json)
    json_print (stdout, arr);
  else
    puts (json_object_to_json_string_ext (arr, JSON_C_TO_STRING_PRETTY
                                                   | JSON_C_TO_STRING_NOSLASHESCAPE));
  return rc;
}
