/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the lifecycle commands (cmd_run.c ... cmd_doctor.c) share: opening a
 * VM by name under the state lock, its backend, its derived status, the
 * agent connection (vsock or TCP + token), the wait for the guest, and the
 * phase report of standby/restore.
 */
#ifndef CHVM_VMCTL_H
#define CHVM_VMCTL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "agent/agent_client.h"
#include "err.h"
#include "state/vmstate.h"
#include "vmm/backend.h"

#define VMCTL_LOCK_MS 30000

struct vmctl
{
  char root[VM_PATH_MAX];
  char dir[VM_PATH_MAX];
  int lock_fd; /* -1 when not locked */
  int lock_ms; /* how long vmctl_open waits for the lock: set before it (0: VMCTL_LOCK_MS) */
  struct vm_record rec;
  const struct backend_ops *be;
  /* What a phased command reports beside its phases (vmctl_fact). */
  struct vmctl_fact
  {
    const char *key;
    enum
    {
      VMCTL_FACT_INT,
      VMCTL_FACT_BOOL,
      VMCTL_FACT_STR,
    } type;
    int64_t num;
    const char *str; /* must outlive the report */
  } facts[12];
  size_t n_facts;
};

/* Whether KVM here can run a real guest; on false, why says what is wrong
   (no /dev/kvm, the kvm_pvm software module, no access). */
bool backend_kvm_usable (char *why, size_t why_len);

/* Resolves the state root, takes the lock when lock is true, loads the VM
   and enters its network namespace; with the lock, also stops a VMM an
   interrupted standby left (vmctl_stop_leftover). */
int vmctl_open (const char *state_dir, const char *name, bool lock, struct vmctl *c,
                struct err **err);
void vmctl_close (struct vmctl *c);

/* A VM recorded in standby whose VMM is still alive (chvm was killed
   between recording standby and stopping it): stops that VMM and records
   vmm_pid 0.  vmctl_open does it when it takes the lock. */
int vmctl_stop_leftover (struct vmctl *c, struct err **err);

/* Fault points for tests (docs/DESIGN.md "Fault points"): with
   CHVM_FAULT=CMD:STEP chvm kills itself with SIGKILL when command CMD
   reaches STEP; with CHVM_FAULT=CMD:STEP:vmm it kills the VMM (vmm_pid)
   there, waits until it is gone, and goes on.  Without CHVM_FAULT,
   nothing; and nothing in the product build: only build/tests/chvm-hooks
   (-DCHVM_TEST_HOOKS) reads it. */
void vmctl_fault (const char *cmd, const char *step, pid_t vmm_pid);
int vmctl_save (struct vmctl *c, struct err **err);

/* Status from reality: VMM pid alive and ours, its API, the snapshot. */
enum vm_status vmctl_status (const struct vmctl *c);

/* Connects to the agent and says Hello; retries until the deadline while
   the guest is still booting, and fails at once when the VMM exits. */
int vmctl_agent (const struct vmctl *c, int timeout_ms, struct agent_client **out,
                 struct err **err);

/* Waits for guest-init's "phase agent" console line (an "ERROR init[1]"
   line or the VMM's exit fails it), then for WaitReady.  *ready_ms is the
   agent's own wait. */
int vmctl_wait_ready (const struct vmctl *c, int timeout_ms, unsigned *ready_ms, char *browser,
                      size_t browser_len, struct err **err);

/* The CDP address a client should use ("http://ADDR:PORT"). */
void vmctl_cdp_address (const struct vm_record *r, char *out, size_t len);

/* The pid in <dir>/vmm.pid, 0 when there is none or it is not a pid. */
pid_t vmctl_read_pid (const char *dir);

/* Holds SIGINT, SIGTERM and SIGHUP (old mask into *old) while a command
   makes a VMM or tap that its record does not name yet: chvm dying there
   would orphan them.  Restore *old with sigprocmask; a held signal then
   takes effect. */
void vmctl_hold_signals (sigset_t *old);

/* -1 with an error when one of those signals came while held. */
int vmctl_check_signals (struct err **err);

/* Adds a fact to the report of the phased command c runs: a key of its
   own in --json, a "key: value" line after the phase table (at most
   sizeof c->facts; later ones are dropped). */
void vmctl_fact (struct vmctl *c, const char *key, int type, int64_t num, const char *str);

/* After the VMM exited: stops the console logger and ends every process
   of the VMM's uid (a compromised VMM's forked, setsid'd children), so
   nothing of the VM outlives it and its uid is free for the next VM. */
void vmctl_vmm_gone (struct vmctl *c);

#endif
