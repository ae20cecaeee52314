/* SPDX-License-Identifier: Apache-2.0 */
/* chvm inspect NAME...: vm.json plus what only reality knows (status, dir,
   CDP address), as a JSON array. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "commands.h"
#include "vmctl.h"

int
cmd_inspect (const struct global_opts *g, int argc, char **argv)
{
  struct json_object *arr;
  int rc = 0;

  if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      fprintf (argc < 2 ? stderr : stdout,
               "Usage: chvm inspect NAME...\n\nPrint VMs' state as JSON.\n");
      return argc < 2 ? 2 : 0;
    }
  arr = json_object_new_array ();
  for (int i = 1; i < argc; i++)
    {
      cleanup_err struct err *err = NULL;
      cleanup_free struct vmctl *c = calloc (1, sizeof *c);
      cleanup_free char *text = NULL;
      struct json_object *o;
      char cdp[128];

      if (c == NULL)
        return 1;
      if (vmctl_open (g, argv[i], false, c, &err) < 0 || vmrec_to_json (&c->rec, &text, &err) < 0)
        {
          rc = vmctl_fail ("inspect", &err);
          continue;
        }
      o = json_tokener_parse (text);
      vmctl_cdp_address (&c->rec, cdp, sizeof cdp);
      json_object_object_add (o, "status",
                              json_object_new_string (vm_status_name (vmctl_status (c))));
      json_object_object_add (o, "dir", json_object_new_string (c->dir));
      json_object_object_add (o, "cdp", json_object_new_string (cdp));
      json_object_array_add (arr, o);
    }
  puts (json_object_to_json_string_ext (
      arr, g->json ? JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE
                   : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (arr);
  return rc;
}
