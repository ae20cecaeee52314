/* SPDX-License-Identifier: Apache-2.0 */
/* Running a command in a guest through its agent, for `chvm agent exec`
   and `chvm exec` (exec.c). */
#ifndef CHVM_CLI_EXEC_H
#define CHVM_CLI_EXEC_H

#include <stdbool.h>

#include "agent/agent_client.h"

/* Runs cmd (env: NAME=VALUE..., NULL-terminated, or NULL; in cwd, NULL: /)
   in the guest: its
   output streamed to our stdout and stderr as it comes, or with json one
   {"code", "signal", "stdout", "stderr"} object at the end; has_input sends
   our stdin (read whole first).  exec_timeout_ms bounds the command in the
   guest (0: none), connect_ms the agent's answers.  Returns the command's
   exit status (128+N for signal N; 0 with json), or 1 after printing
   what: the error. */
int cli_exec (bool json, struct agent_client *a, char **cmd, char **env, const char *cwd,
              bool has_input, unsigned exec_timeout_ms, int connect_ms, const char *what);

#endif
