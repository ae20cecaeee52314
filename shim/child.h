/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Programs the shim runs without blocking its loop (`chvm ...`, containerd's
 * `publish`): stdin fed from a buffer, stdout and stderr captured in memfds,
 * the exit seen on a pidfd; the callback gets the exit status and both
 * outputs (each cut at CHILD_OUTPUT_MAX).
 */
#ifndef CHVM_SHIM_CHILD_H
#define CHVM_SHIM_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

#define CHILD_OUTPUT_MAX (256u << 10)

struct event_base;

/* status: the wait status's exit code, or 128+signal. */
typedef void (*child_done_fn) (void *arg, int status, const char *out, const char *errout);

int child_spawn (struct event_base *base, const char *const argv[], const void *in, size_t in_len,
                 child_done_fn fn, void *arg, struct err **err);

/* argv with stdin /dev/null and its stdout and stderr on out and errout
   (not captured: fn gets "" for both); *pid its pid. */
int child_spawn_io (struct event_base *base, const char *const argv[], int out, int errout,
                    child_done_fn fn, void *arg, pid_t *pid, struct err **err);

/* The last non-empty line of text into line (bounded). */
void child_last_line (const char *text, char *line, size_t len);

#endif
