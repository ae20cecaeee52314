/* SPDX-License-Identifier: Apache-2.0 */
/* Exec (exec.c). */
#ifndef CHVM_EXEC_H
#define CHVM_EXEC_H

#include "conn.h"

void exec_handle (struct conn *c, const Frame *f);
/* On SIGCHLD: reaps every exited child. */
void exec_sigchld (void);
void exec_free_all (void);
/* Pure check, kept free of I/O so it can be unit-tested and fuzzed. */
int exec_validate (const Chvm__Agent__ExecRequest *rq, const char **why);

#endif
