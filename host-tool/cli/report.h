/* SPDX-License-Identifier: Apache-2.0 */
/* What commands share in what they print: errors, the phase report of
   standby and restore with its facts, and where chvm's own data lies. */
#ifndef CHVM_CLI_REPORT_H
#define CHVM_CLI_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include <json-c/json.h>
#include <stdint.h>

#include "cli/commands.h"
#include "err.h"
#include "vm/vmctl.h"

/* A file of the data dir (kernel/vmlinuz, initrd.cpio.gz,
   images/standin/oci): $CHVM_DATA_DIR, else the build tree the binary
   sits in (<bindir>/.. holding kernel/vmlinuz), else <bindir>/../share/chvm. */
int cli_data_path (const char *rel, char *out, size_t len, struct err **err);

/* Prints "chvm CMD: message" to stderr; returns 1. */
int cli_fail (const char *cmd, struct err **err);

/* An operation timed phase by phase (standby, restore); opts is the
   command's own options struct, which the op may also fill with what the
   report says. */
typedef int (*cli_phased_fn) (struct vmctl *c, void *opts, struct phase *ph, size_t *n,
                              struct err **err);

/* Parses the --timeout SECONDS of such a command (1-86400) into *out; on a
   bad value prints "chvm: bad --timeout ..." and returns -1. */
int cli_timeout_arg (const char *s, unsigned *out);

/* Opens VM name under the state lock, runs op (with opts), unlocks, and
   prints the phase table of command cmd with c's facts (--json:
   {"phases":{name:ms},"total_ms":..,facts}).  Returns 0, or 1 after
   printing the error.  c->rec stays readable afterwards for the caller's
   own output. */
int cli_run_phased (const struct global_opts *g, const char *cmd, const char *name, void *opts,
                    cli_phased_fn op, struct vmctl *c);

/* The arguments of a command whose one option is --help: -1 (optind at the
   first NAME) when they are right (NAMEs when names, none otherwise), else
   the exit status after usage printed the help (stdout, 0) or the usage
   error (stderr, 2). */
int cli_help_only (int argc, char **argv, int (*usage) (FILE *out, int status), bool names);

/* The VM's memory on the host, added to o (ps --json, inspect's
   host_memory): "guest_ram" (bytes), and "vmm_rss" and "vmm_pss" (bytes,
   /proc/PID/smaps_rollup of its VMM while one runs, else null).  Returns
   the PSS, 0 when there is none. */
uint64_t cli_add_host_memory (struct json_object *o, const struct vmctl *c, enum vm_status st);

#endif
