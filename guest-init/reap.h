/* SPDX-License-Identifier: Apache-2.0 */
/* PID 1 duties: signals through a signalfd, reaping, and the shutdown. */
#ifndef CHVM_INIT_REAP_H
#define CHVM_INIT_REAP_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "button.h"

#include "err.h"

/* Blocks every signal (saving the previous mask in *old for children) and
   returns a signalfd for them. */
int reap_setup (sigset_t *old, struct err **err);

/* Reaps every child and forwards SIGTERM/SIGINT to main_pid until it exits;
   returns its status, 128+signal when killed.  A stop request -- a press of
   a power button in btn (may be NULL), SIGPWR, or SIGRTMIN+5 (reboot; sets
   *restart) -- sends SIGTERM to main_pid and, if it still runs after a grace
   period, SIGKILL to every process.  The exit of agent_pid (if > 0), which
   should not happen, is logged. */
int reap_until (int sfd, struct button *btn, pid_t main_pid, pid_t agent_pid, bool *restart);

/* Terminates every other process (SIGTERM, then SIGKILL after a grace
   period), reaps them, unmounts and powers off (or reboots when restart).
   Never returns: PID 1 must not exit. */
void reap_poweroff (int sfd, bool restart) __attribute__ ((noreturn));

#endif
