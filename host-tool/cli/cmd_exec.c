/* SPDX-License-Identifier: Apache-2.0 */
/* chvm exec [--env N=V]... [--workdir DIR] [--stdin] [--timeout MS] NAME [--] CMD...:
   CMD in a running VM's guest, through its agent (the record knows where
   and its token), as `docker exec` runs one in a container. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/exec.h"
#include "cli/report.h"
#include "num.h"
#include "vm/vmctl.h"

#define CONNECT_MS 30000

static void
usage (FILE *out)
{
  fputs ("Usage: chvm exec [--env NAME=VALUE]... [--workdir DIR] [--stdin] [--timeout MS]\n"
         "                 NAME [--] CMD [ARG]...\n\n"
         "Run CMD in VM NAME's guest through its agent: as root, in the image's root\n"
         "filesystem, with the agent's environment (only --env's and a default PATH when\n"
         "given).  Its output comes as it is written; chvm exits with its status (128+N when\n"
         "signal N ended it).  --json prints {\"code\", \"signal\", \"stdout\", \"stderr\"} at\n"
         "the end instead.  The VM must be running (in standby: chvm restore NAME first).\n"
         "  --env, -e NAME=VALUE  CMD's environment (repeatable)\n"
         "  --workdir, -w DIR     CMD's working directory (default /)\n"
         "  --stdin, -i           send this stdin to CMD (read whole first, at most ~4 MiB)\n"
         "  --timeout MS          kill CMD in the guest after MS milliseconds\n",
         out);
}

int
cmd_exec (const struct global_opts *g, int argc, char **argv)
{
  static const struct option opts[] = {
    { "env", required_argument, NULL, 'e' },     { "stdin", no_argument, NULL, 'i' },
    { "timeout", required_argument, NULL, 'T' }, { "workdir", required_argument, NULL, 'w' },
    { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
  };
  cleanup_free char **env = NULL;
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  cleanup_err struct err *e = NULL;
  struct agent_client *a = NULL;
  size_t n_env = 0;
  bool has_input = false;
  const char *cwd = NULL;
  uint64_t timeout_ms = 0;
  enum vm_status st;
  char **cmd;
  int o, rc;

  optind = 0; /* "+": the command's own options follow NAME */
  while ((o = getopt_long (argc, argv, "+he:iw:", opts, NULL)) != -1)
    switch (o)
      {
      case 'e':
        {
          char **nv = realloc (env, (n_env + 2) * sizeof *nv);
          if (nv == NULL || strchr (optarg, '=') == NULL)
            {
              fprintf (stderr, "chvm exec: bad --env '%s' (NAME=VALUE)\n", optarg);
              free (nv ?: env);
              env = NULL;
              return 2;
            }
          env = nv;
          env[n_env++] = optarg;
          env[n_env] = NULL;
        }
        break;
      case 'i':
        has_input = true;
        break;
      case 'w':
        cwd = optarg;
        break;
      case 'T':
        if (num_parse_u64_str (optarg, 86400000, &timeout_ms) < 0)
          {
            fprintf (stderr, "chvm exec: bad --timeout '%s' (milliseconds)\n", optarg);
            return 2;
          }
        break;
      case 'h':
        usage (stdout);
        return 0;
      default:
        usage (stderr);
        return 2;
      }
  cmd = argv + optind + 1;
  if (optind < argc && optind + 1 < argc && strcmp (cmd[0], "--") == 0)
    cmd++;
  if (optind >= argc || cmd >= argv + argc)
    {
      usage (stderr);
      return 2;
    }
  if (c == NULL)
    return cli_fail ("exec", &e);
  if (vmctl_open (g->state_dir, argv[optind], false, c, &e) < 0)
    return cli_fail ("exec", &e);
  st = vmctl_status (c);
  if (st != VM_STATUS_RUNNING)
    {
      fprintf (stderr, "chvm exec: VM '%s' is %s, not running%s\n", c->rec.name,
               vm_status_name (st), st == VM_STATUS_STANDBY ? " (chvm restore it first)" : "");
      vmctl_close (c);
      return 1;
    }
  if (vmctl_agent (c, CONNECT_MS, &a, &e) < 0)
    {
      vmctl_close (c);
      return cli_fail ("exec", &e);
    }
  rc = cli_exec (g->json, a, cmd, env, cwd, has_input, (unsigned) timeout_ms, CONNECT_MS, "exec");
  agent_close (a);
  vmctl_close (c);
  return rc;
}
