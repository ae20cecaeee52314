/* SPDX-License-Identifier: Apache-2.0 */
/* chvm: Chromium in Cloud Hypervisor microVMs.  main() parses the global
   options and dispatches to one file per subcommand. */
#include "cli/commands.h"
#include "supervisor/supervisor.h"
#include "sys/json.h"
#include "vmm/console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CHVM_VERSION
#define CHVM_VERSION "0.1.0"
#endif

/* Keep sorted by name. */
static const struct command commands[] = {
  { "agent", cmd_agent, "talk to a guest's agent (health, ready, quiesce, exec, forward...)" },
  { "cdp", cmd_cdp, "print a VM's CDP endpoint (ws:// URL)" },
  { "doctor", cmd_doctor, "say what this host can run, and why not" },
  { "exec", cmd_exec, "run a command in a VM's guest (through its agent)" },
  { "image", cmd_image, "import, list and remove images" },
  { "inspect", cmd_inspect, "print a VM's state as JSON" },
  { "logs", cmd_logs, "print a VM's console or VMM log" },
  { "pause", cmd_pause, "pause a VM's vCPUs (chvm resume goes on)" },
  { "ps", cmd_ps, "list VMs" },
  { "restore", cmd_restore, "bring a VM back from standby" },
  { "resume", cmd_resume, "resume a paused VM" },
  { "rm", cmd_rm, "remove VMs" },
  { "run", cmd_run, "create and boot a VM from an image" },
  { "standby", cmd_standby, "snapshot a VM to disk and stop its VMM" },
  { "stop", cmd_stop, "stop VMs" },
  { "supervise", cmd_supervise, "start a VM's supervisor (CDP endpoint) if none runs" },
  { "template", cmd_template, "make, list and remove templates (chvm run --from)" },
  { "version", cmd_version, "print chvm's version" },
};

static void
usage (FILE *out)
{
  size_t i;

  fprintf (out, "Usage: chvm [--json] [--state-dir DIR] COMMAND [ARGS...]\n\n"
                "Run Chromium container images in Cloud Hypervisor microVMs.\n\n"
                "Commands:\n");
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf (out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf (out, "\nRun 'chvm COMMAND --help' for a command's options.\n");
}

int
cmd_version (const struct global_opts *g, int argc, char **argv)
{
  (void) argc;
  (void) argv;
  if (g->json)
    {
      cleanup_json struct json_object *o = json_object_new_object ();
      json_object_object_add (o, "version", json_object_new_string (CHVM_VERSION));
      json_print (stdout, o);
    }
  else
    printf ("chvm %s\n", CHVM_VERSION);
  return 0;
}

int
main (int argc, char **argv)
{
  struct global_opts g = { .json = false, .state_dir = getenv ("CHVM_STATE_DIR") };
  size_t i;
  int a = 1;

  for (; a < argc && argv[a][0] == '-'; a++)
    {
      if (strcmp (argv[a], "--json") == 0)
        g.json = true;
      else if (strcmp (argv[a], "--state-dir") == 0 && a + 1 < argc)
        g.state_dir = argv[++a];
      else if (strcmp (argv[a], "--help") == 0 || strcmp (argv[a], "-h") == 0)
        {
          usage (stdout);
          return 0;
        }
      else if (strcmp (argv[a], "--version") == 0)
        return cmd_version (&g, 0, NULL);
      else
        {
          fprintf (stderr, "chvm: unknown option '%s'\n", argv[a]);
          usage (stderr);
          return 2;
        }
    }
  if (a >= argc)
    {
      usage (stderr);
      return 2;
    }
  /* `--json` is also accepted after the command name, up to a `--` that
     starts a guest command line (chvm agent exec -- CMD --json). */
  for (int k = a + 1; k < argc && strcmp (argv[k], "--") != 0; k++)
    if (strcmp (argv[k], "--json") == 0)
      {
        g.json = true;
        memmove (&argv[k], &argv[k + 1], (argc - k) * sizeof *argv);
        argc--;
        k--;
      }
  /* Not a user command: the console logger chvm starts for each VMM. */
  if (strcmp (argv[a], CONSOLE_LOGGER_CMD) == 0)
    return console_logger_main (argc - a, argv + a);
  /* Nor is the per-VM supervisor that run and restore start. */
  if (strcmp (argv[a], SUPERVISOR_CMD) == 0)
    return supervisor_main (argc - a, argv + a);
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp (commands[i].name, argv[a]) == 0)
      return commands[i].fn (&g, argc - a, argv + a);
  fprintf (stderr, "chvm: unknown command '%s' (see chvm --help)\n", argv[a]);
  return 2;
}
