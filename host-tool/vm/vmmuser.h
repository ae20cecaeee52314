/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who a VMM runs as.  chvm (root) never runs a VMM as root unless told to:
 * each VM gets a uid of its own (gid the same number) from the range that
 * /etc/subuid reserves for the system user chvm-vmm (scripts/vmm-user.sh,
 * run by `make install`, creates both), recorded in vm.json as vmm_uid.  The
 * VMM runs with that uid and gid, the group of /dev/kvm as its only
 * supplementary group, no capabilities, PR_SET_NO_NEW_PRIVS and an
 * environment of PATH alone.  Its VM dir is root:<its gid> 01770: it creates
 * its sockets, logs and snapshots there, no other VMM can open it, and the
 * sticky bit keeps it from replacing chvm's own files (vm.json, vmm.pid).
 *
 * $CHVM_VMM_USER names another user (default chvm-vmm); `root` runs new
 * VMMs as root, with a warning.  $CHVM_CH_LANDLOCK=0 turns CH's Landlock off.
 */
#ifndef CHVM_VMMUSER_H
#define CHVM_VMMUSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "state/vmstate.h"
#include "sys/proc.h"

#define VMMUSER_DEFAULT "chvm-vmm"
#define VMMUSER_MAX_NEED 10

/* The first uid of a range and its size, from /etc/subuid.  root: run as
   root (CHVM_VMM_USER=root). */
struct vmm_user
{
  bool root;
  char name[64];
  uint32_t first, count;
};

/* Parses /etc/subuid text: the range of the line for name (or its uid).
   Returns 1 when found, 0 when not; pure. */
int vmmuser_parse_subuid (const char *text, const char *name, uint32_t uid, uint32_t *first,
                          uint32_t *count);

/* The lowest uid of u's range that used (the vmm_uid of every other VM)
   does not hold and, with busy, for which busy is false (a process of that
   uid still lives); pure without busy. */
int vmmuser_pick (const struct vmm_user *u, const uint32_t *used, size_t n,
                  bool (*busy) (uint32_t uid), uint32_t *out, struct err **err);

/* For a new VM: u, then a uid no other vm.json under root holds, into
   r->vmm_uid (0 for root). */
int vmmuser_assign (const char *root, struct vm_record *r, struct err **err);

/* Before the VMM starts (run, restore): the VM dir root:<gid> 01770, the
   writable disk and CH's files in it owned by the uid, the state dir and
   vms/ searchable (0711) (nothing of this for vmm_uid 0); then the VM's
   cgroup, made afresh with its limits, into r->cgroup ("" on a host
   without cgroup v2). */
int vmmuser_prepare (const char *root, const char *dir, struct vm_record *r, struct err **err);

/* The VM's cgroup: <cgroup2>/chvm.slice/<name>-<hash of dir>, limited to
   --cpus CPUs (cpu.max), guest RAM plus the VMM's overhead (memory.max,
   with memory.oom.group) and VMMUSER_PIDS_MAX tasks.  The overhead is
   the VMM's own memory beside guest RAM: its heap, threads and device
   queues (CH), and QEMU's TCG translation cache (up to 1 GiB) besides. */
#define VMMUSER_OVERHEAD_CH_MIB 256
#define VMMUSER_OVERHEAD_QEMU_MIB 1280
#define VMMUSER_PIDS_MAX 1024
#define VMMUSER_KILL_MS 5000
void vmmuser_cgroup_leaf (const char *name, const char *dir, char *out, size_t len);
struct cgroup_limits;
void vmmuser_cgroup_limits (const struct vm_record *r, struct cgroup_limits *l);

/* Its path, whether it exists or not; an error on a host without cgroup
   v2. */
int vmmuser_cgroup_find (const char *dir, const char *name, char *path, size_t len,
                         struct err **err);

/* After the VMM is gone: kills what is left in the VM's cgroup (cgroup.kill),
   waits until it is empty and removes it; r->cgroup becomes "". */
int vmmuser_cgroup_remove (const char *dir, struct vm_record *r, struct err **err);

/* A directory chvm made for the VMM to write in (snapshot.tmp-*). */
int vmmuser_give_dir (const char *path, const struct vm_record *r, struct err **err);

/* The jail for r's VMM: NULL when it runs as root.  need (VMMUSER_MAX_NEED
   + 1 entries) and bufs hold the checked paths. */
struct vmm_jail_storage
{
  struct proc_jail jail;
  const char *need[VMMUSER_MAX_NEED + 1];
  char paths[VMMUSER_MAX_NEED][VM_PATH_MAX + 2];
};
const struct proc_jail *vmmuser_jail (const struct vm_record *r, const char *dir,
                                      struct vmm_jail_storage *s);

/* Whether to give CH Landlock: the kernel has it and $CHVM_CH_LANDLOCK is
   not 0. */
bool vmmuser_landlock_p (void);

#endif
