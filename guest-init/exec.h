/* SPDX-License-Identifier: Apache-2.0 */
/* Starting the agent and the entrypoint as children of PID 1. */
#ifndef CHVM_INIT_EXEC_H
#define CHVM_INIT_EXEC_H

#include <signal.h>
#include <sys/types.h>

#include "err.h"
#include "spec.h"

struct spawn
{
  char *const *argv;
  char *const *envp;            /* argv[0] is looked up in its PATH, as docker does */
  const char *workdir;          /* chdir target */
  const struct spec_user *user; /* NULL: stay root */
  const sigset_t *sigmask;      /* restored in the child before exec */
  int keep_fd;                  /* an fd >= 3 the program inherits (0: none) */
};

/* Forks and execs s in a new session with the console as stdio, signals as
   before init blocked them, and every other fd but s->keep_fd closed.
   Returns the pid once execve() succeeded; when the child cannot exec, reaps
   it and returns <0 with the reason. */
pid_t spawn_process (const struct spawn *s, struct err **err);

#endif
