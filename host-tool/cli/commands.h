/* SPDX-License-Identifier: Apache-2.0 */
/* The chvm subcommands, one file each (cmd_<name>.c), dispatched by the
   table in main.c. */
#ifndef CHVM_COMMANDS_H
#define CHVM_COMMANDS_H

#include <stdbool.h>

struct global_opts
{
  bool json;             /* --json: machine-readable output on stdout */
  const char *state_dir; /* --state-dir or $CHVM_STATE_DIR */
};

/* The warning for a CDP endpoint beyond loopback (%s: its address). */
#define CLI_CDP_BEYOND                                                                             \
  "--cdp %s: the endpoint is open beyond this host; only its token (in the URLs `chvm cdp "        \
  "NAME` prints) guards the browser, and plain HTTP carries it unencrypted"

typedef int (*command_fn) (const struct global_opts *g, int argc, char **argv);

struct command
{
  const char *name;
  command_fn fn;
  const char *summary;
};

/* Each command returns the process exit status (0 ok, 1 error, 2 usage).
   argv[0] is the command name; getopt-style parsing starts at argv[1]. */
int cmd_image (const struct global_opts *g, int argc, char **argv);
int cmd_version (const struct global_opts *g, int argc, char **argv);
int cmd_doctor (const struct global_opts *g, int argc, char **argv);
int cmd_inspect (const struct global_opts *g, int argc, char **argv);
int cmd_logs (const struct global_opts *g, int argc, char **argv);
/* chvm pause and chvm resume (cmd_pause.c). */
int cmd_pause (const struct global_opts *g, int argc, char **argv);
int cmd_resume (const struct global_opts *g, int argc, char **argv);
int cmd_ps (const struct global_opts *g, int argc, char **argv);
int cmd_restore (const struct global_opts *g, int argc, char **argv);
int cmd_rm (const struct global_opts *g, int argc, char **argv);
int cmd_run (const struct global_opts *g, int argc, char **argv);
/* chvm run --from TEMPLATE (cmd_run_from.c); cmd_run hands it over. */
int cmd_run_from (const struct global_opts *g, int argc, char **argv);
int cmd_standby (const struct global_opts *g, int argc, char **argv);
int cmd_stop (const struct global_opts *g, int argc, char **argv);
int cmd_agent (const struct global_opts *g, int argc, char **argv);
int cmd_cdp (const struct global_opts *g, int argc, char **argv);
int cmd_exec (const struct global_opts *g, int argc, char **argv);
int cmd_template (const struct global_opts *g, int argc, char **argv);
int cmd_supervise (const struct global_opts *g, int argc, char **argv);

#endif
