/* SPDX-License-Identifier: Apache-2.0 */
/* The image's hooks (hooks.c): what an image runs before a quiesce, after
   a thaw and after a fork, as qemu-guest-agent's fsfreeze-hook. */
#ifndef CHVM_HOOKS_H
#define CHVM_HOOKS_H

#include "err.h"

#define HOOKS_DIR "/etc/chvm/hooks.d"
#define HOOK_TIMEOUT_MS 10000
#define HOOKS_MAX 32

/* Runs every hook of dir (HOOKS_DIR in the agent) for event ("quiesce",
   "thaw", "fork"), in name order, each with the event as its argument,
   until the first that fails (exits non-zero, is killed, or runs past
   timeout_ms, HOOK_TIMEOUT_MS in the agent: its process group is killed;
   so is a process it leaves holding its output past that).  Returns how many ran, or
   -1 with err naming the hook that failed and how. */
int hooks_run (const char *dir, const char *event, int timeout_ms, struct err **err);

/* hooks_run of HOOKS_DIR for an event whose reply goes out whatever the
   hooks did (thaw, fork): a failure is logged. */
void hooks_after (const char *event);

#endif
