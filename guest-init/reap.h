/* SPDX-License-Identifier: Apache-2.0 */
/* PID 1 duties: signals through a signalfd, reaping, and the shutdown. */
#ifndef CHVM_INIT_REAP_H
#define CHVM_INIT_REAP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "button.h"

#include "err.h"

/* next_event's answer for a press of a power button (signals are > 0, a
   timeout or a wakeup that needs nothing is 0). */
#define REAP_EVENT_BUTTON (-1)

/* What the stop sequence does to the system, a seam for unit tests
   (tests/unit/test_init_reap.c); reap_sys points at the real one. */
struct reap_sys
{
  pid_t (*waitpid) (pid_t pid, int *status, int options);
  int (*kill) (pid_t pid, int sig);
  /* Waits up to timeout_ms (-1: for ever) for a signal on sfd or a press of
     a button in btn (may be NULL); a signal number, REAP_EVENT_BUTTON or 0. */
  int (*next_event) (int sfd, struct button *btn, int timeout_ms);
  int64_t (*now_ms) (void); /* CLOCK_MONOTONIC */
  /* Thaws every filesystem a freeze may hold (the agent's Quiesce), so
     that nothing blocks on it while the guest stops. */
  void (*thaw) (void);
  /* Logs each process still there (pid, name, state). */
  void (*log_left) (void);
};
extern const struct reap_sys *reap_sys;

/* Blocks every signal (saving the previous mask in *old for children) and
   returns a signalfd for them. */
int reap_setup (sigset_t *old, struct err **err);

/* Reaps every child and forwards SIGTERM/SIGINT to main_pid until it exits;
   returns its status, 128+signal when killed.  A stop request -- a press of
   a power button in btn (may be NULL), SIGPWR, or SIGRTMIN+5 (reboot; sets
   *restart) -- thaws, sends SIGTERM to main_pid and, if it still runs after
   a grace period, thaws again and sends SIGKILL to every process; then it
   waits a bounded time for main_pid (a process stuck in D state never
   dies) and returns 128+SIGKILL when it is still there.  The exit of
   agent_pid (if > 0), which should not happen, is logged. */
int reap_until (int sfd, struct button *btn, pid_t main_pid, pid_t agent_pid, bool *restart);

/* Thaws, terminates every other process (SIGTERM, then SIGKILL after a
   grace period) and reaps them, each wait with a deadline; logs what is
   left.  Returns 1 when no child is left, 0 when some are. */
int reap_stop_all (int sfd);

/* reap_stop_all, then unmounts, syncs and powers off (or reboots when
   restart).  Never returns: PID 1 must not exit. */
void reap_poweroff (int sfd, bool restart) __attribute__ ((noreturn));

#endif
