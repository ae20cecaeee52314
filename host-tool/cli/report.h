/* SPDX-License-Identifier: Apache-2.0 */
/* What commands share in what they print: errors, the phase report of
   standby and restore with its facts, and where chvm's own data lies. */
#ifndef CHVM_CLI_REPORT_H
#define CHVM_CLI_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/commands.h"
#include "err.h"
#include "vm/vmctl.h"

/* A file of the data dir (kernel/vmlinuz, initrd.cpio.gz,
   images/standin/oci): $CHVM_DATA_DIR, else the build tree the binary
   sits in (<bindir>/.. holding kernel/vmlinuz), else <bindir>/../share/chvm. */
int cli_data_path (const char *rel, char *out, size_t len, struct err **err);

/* Prints "chvm CMD: message" to stderr; returns 1. */
int cli_fail (const char *cmd, struct err **err);

/* Appends phase name lasting from *t to now (at most BACKEND_MAX_PHASES)
   and sets *t to now. */
void cli_phase (struct phase *p, size_t *n, const char *name, double *t);

/* An operation timed phase by phase (standby, restore); opt is its one
   option (quiesce, agent). */
typedef int (*cli_phased_fn) (struct vmctl *c, bool opt, struct phase *ph, size_t *n,
                              struct err **err);

/* One option of such a command: a switch (value NULL; *set becomes true)
   or, with value, an option taking an argument (*value). */
struct cli_arg
{
  const char *flag;
  bool *set;
  const char **value;
};

/* Arguments of such a command: `[ARGS...] [--timeout SECONDS] NAME`, the
   latter only where timeout_s is not NULL.  Returns NAME and sets what
   args name and *timeout_s when given; or NULL after printing usage, with
   *status 0 for --help/-h (usage on stdout) and 2 otherwise. */
const char *cli_phased_args (int argc, char **argv, const struct cli_arg *args, size_t n_args,
                             const char *usage, unsigned *timeout_s, int *status);

/* Opens VM name under the state lock, runs op, unlocks, and prints the
   phase table of command cmd with c's facts (--json: {"phases":{name:ms},
   "total_ms":..,facts}).  Returns 0, or 1 after printing the error.
   c->rec stays readable afterwards for the caller's own output. */
int cli_run_phased (const struct global_opts *g, const char *cmd, const char *name, bool opt,
                    cli_phased_fn op, struct vmctl *c);

#endif
