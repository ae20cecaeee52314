/* SPDX-License-Identifier: Apache-2.0 */
/* chvm running itself as a child (template create runs `chvm run` and
   `chvm standby`; run --from --count N runs N clones at once): its stdout
   captured (--json), its stderr the user's (progress and errors). */
#ifndef CHVM_CLI_SELF_H
#define CHVM_CLI_SELF_H

#include <json-c/json.h>
#include <stddef.h>
#include <sys/types.h>

#include "cli/commands.h"
#include "err.h"

#define CLI_SELF_OUT_MAX (1 << 20)

struct cli_self
{
  pid_t pid;
  int out_fd; /* the read end of its stdout */
};

/* Starts `chvm --json [--state-dir DIR] ARGS...` (args NULL-terminated). */
int cli_self_start (const struct global_opts *g, const char *const args[], struct cli_self *s,
                    struct err **err);

/* Reads its stdout to the end (at most CLI_SELF_OUT_MAX bytes kept) into
   *out (NUL-terminated, caller frees) and reaps it: its exit status, or
   128 + signal. */
int cli_self_finish (struct cli_self *s, char **out, struct err **err);

/* Runs chvm ARGS (start and finish): 0, or -1 with an error naming its
   exit status; its --json output parsed into *out either way (NULL when
   it printed none). */
int cli_self_json (const struct global_opts *g, const char *const args[], struct json_object **out,
                   struct err **err);

#endif
