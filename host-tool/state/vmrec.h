/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM record: what vm.json holds (spec + runtime + backend + the state a
 * command last recorded), its JSON form and its checks.  No I/O.
 */
#ifndef CHVM_STATE_VMREC_H
#define CHVM_STATE_VMREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "vmm/backend.h"

#define VM_NAME_MAX 63
#define VM_MAX_PUBLISH 32
#define VM_TOKEN_MAX 128
#define VM_CDP_TOKEN_BYTES 16 /* 128 bits, 32 hex digits */
#define VM_ENV_N 5
#define VM_ENV_VALUE_MAX 256

/* The settings chvm reads from its environment that a VM keeps from its
   `run` (spec.vmm_env in vm.json, shown by inspect): CLOUD_HYPERVISOR,
   CHVM_QEMU (as absolute paths), CHVM_CH_SECCOMP, CHVM_CH_LANDLOCK,
   CHVM_CONSOLE_MAX.  The supervisor's standby and restore get these and a
   fixed PATH as their whole environment, never its starter's. */
extern const char *const vm_env_names[VM_ENV_N];

enum vm_status
{
  VM_STATUS_CREATED, /* directory made, VMM not started yet */
  VM_STATUS_RUNNING,
  VM_STATUS_PAUSED,
  VM_STATUS_STANDBY, /* complete snapshot on disk, no VMM */
  VM_STATUS_STOPPED,
  VM_STATUS_DEAD, /* recorded running/paused but the VMM is gone */
};

struct vm_record
{
  char name[VM_NAME_MAX + 1];
  char backend[32];     /* backend_ops.name */
  char image[512];      /* the reference the user gave */
  int64_t created;      /* unix seconds */
  enum vm_status state; /* what the last command recorded */

  unsigned cpus;
  uint64_t memory_mib;
  char kernel[VM_PATH_MAX];
  char initrd[VM_PATH_MAX];
  char cmdline[1024];
  char rootfs[VM_PATH_MAX];
  char config_disk[VM_PATH_MAX];
  char upper_disk[VM_PATH_MAX];
  char overlay[8]; /* "tmpfs" or "disk" */
  /* The root image also as virtio-pmem, mounted with DAX (run
     --rootfs-device pmem); false: virtio-blk only (older records). */
  bool rootfs_pmem;

  char netns[64]; /* network namespace of tap/bridge/NAT ("" = host's) */
  /* chvm made netns for this VM alone (a clone, run --from) and removes
     it with the VM. */
  bool netns_owned;
  /* The template this VM was cloned from (run --from; "" none): a
     template in use by a VM cannot be removed. */
  char template_name[VM_NAME_MAX + 1];
  /* CH: guest RAM is this file, one shared file-backed memory zone (run
     --memory-file, what template create uses; "" anonymous or memfd). */
  char memory_file[VM_PATH_MAX];
  char tap[16]; /* IFNAMSIZ */
  char mac[18];
  char address[20]; /* guest A.B.C.D/prefix on the bridge ("" = none) */

  unsigned agent_vsock_port;
  uint16_t agent_tcp_port;
  uint16_t cdp_port; /* guest port of the DevTools forwarder */
  char agent_token[VM_TOKEN_MAX + 1];
  /* The VMM's own uid (and gid, the same number), from chvm-vmm's range in
     /etc/subuid; 0: it runs as root (CHVM_VMM_USER=root, or a VM made
     before chvm had VMM users). */
  uint32_t vmm_uid;
  /* The cgroup v2 directory the next VMM starts in (vmmuser_prepare makes
     it; "" none).  Not in vm.json: vmmuser_cgroup_leaf finds it again. */
  char cgroup[VM_PATH_MAX];
  /* The supervisor's CDP endpoint on the host ("ADDR:PORT", "" = none: a VM
     made before supervisors), its --idle-standby seconds (0 = never) and
     its most clients at once. */
  char cdp_endpoint[64];
  /* The endpoint's capability: every URL of it starts with /TOKEN (vm.json
     is root's alone, 0600). */
  char cdp_token[2 * VM_CDP_TOKEN_BYTES + 1];
  unsigned idle_standby_s;
  unsigned cdp_max_clients;
  /* vm_env_names[i]'s value at run ("" = unset). */
  char vmm_env[VM_ENV_N][VM_ENV_VALUE_MAX];

  struct publish publish[VM_MAX_PUBLISH];
  size_t n_publish;

  struct vm_runtime rt;
};

const char *vm_status_name (enum vm_status s);

/* The endpoint as its owner gives it to clients, "http://ADDR:PORT/TOKEN"
   (playwright-core's connectOverCDP takes it as it is; puppeteer-core is
   given the ws:// URL its /json/version names, since its browserURL drops
   the path); "" without an endpoint. */
void vmrec_endpoint_url (const struct vm_record *r, char *out, size_t len);
/* Names: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}, as docker allows. */
int vm_name_check (const char *name, struct err **err);

/* vm.json <-> record.  The parser checks every type and size: vm.json is
   read back by every command and a damaged one must be an error, not UB. */
int vmrec_to_json (const struct vm_record *r, char **out, struct err **err);
int vmrec_from_json (const char *text, size_t len, struct vm_record *r, struct err **err);

/* Fills spec from r (which must outlive it). */
void vmrec_spec (const struct vm_record *r, const char *dir, struct vm_spec *spec);

/* "2G", "512M", "1536" (MiB), "1g", "2GiB" -> MiB; refuses 0, fractions of
   a MiB, and more than 1 TiB. */
int vm_parse_memory (const char *s, uint64_t *mib, struct err **err);

#endif
