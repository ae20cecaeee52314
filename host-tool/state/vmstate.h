/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-VM host state: $STATE/vms/<name>/vm.json (spec + runtime + backend +
 * the state a command last recorded), the global $STATE/lock held by every
 * mutating command, and the status derived from what is really there (a VMM
 * pid that is alive and ours, a complete snapshot) rather than from what
 * vm.json last said.
 */
#ifndef CHVM_VMSTATE_H
#define CHVM_VMSTATE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "vmm/backend.h"

#define VM_NAME_MAX 63
#define VM_MAX_PUBLISH 32
#define VM_PATH_MAX 1024
#define VM_TOKEN_MAX 128

enum vm_status
{
  VM_STATUS_CREATED, /* directory made, VMM not started yet */
  VM_STATUS_RUNNING,
  VM_STATUS_PAUSED,
  VM_STATUS_STANDBY, /* complete snapshot on disk, no VMM */
  VM_STATUS_STOPPED,
  VM_STATUS_DEAD, /* recorded running/paused but the VMM is gone */
};

/* count consecutive ports from host_port map to as many from guest_port
   (--publish 56000-56100:56000-56100/udp is one entry with count 101);
   both ranges end at or below 65535. */
struct vm_publish
{
  char host_addr[64];
  uint16_t host_port;
  uint16_t guest_port;
  uint16_t count; /* 0 (a record built in code) means 1 */
  bool udp;
};

static inline unsigned
vm_publish_ports (const struct vm_publish *p)
{
  return p->count ? p->count : 1;
}

/* Whether guest TCP port (udp false) or UDP port is forwarded by p. */
static inline bool
vm_publish_covers (const struct vm_publish *p, bool udp, unsigned guest_port)
{
  return p->udp == udp && p->guest_port <= guest_port
         && guest_port < p->guest_port + vm_publish_ports (p);
}

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

  char netns[64]; /* network namespace of tap/bridge/NAT ("" = host's) */
  char tap[16];   /* IFNAMSIZ */
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
  /* The supervisor's CDP endpoint on the host ("ADDR:PORT", "" = none: a VM
     made before supervisors), its --idle-standby seconds (0 = never) and
     its most clients at once. */
  char cdp_endpoint[64];
  unsigned idle_standby_s;
  unsigned cdp_max_clients;

  struct vm_publish publish[VM_MAX_PUBLISH];
  size_t n_publish;

  struct vm_runtime rt;
};

/* Facts status derivation rests on; gathered by vm_probe(). */
struct vm_facts
{
  enum vm_status recorded;
  bool vmm_alive; /* the pid exists and its cmdline names this VM's dir */
  int api_paused; /* -1: API did not answer; 0: running; 1: paused */
  bool snapshot;  /* <dir>/snapshot exists (only complete ones are renamed there) */
};

const char *vm_status_name (enum vm_status s);
int vm_status_parse (const char *s, enum vm_status *out);
enum vm_status vm_status_derive (const struct vm_facts *f);

/* Names: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}, as docker allows. */
int vm_name_check (const char *name, struct err **err);

/* Resolves the state root (opt, else $CHVM_STATE_DIR, else /var/lib/chvm for
   root, else $XDG_STATE_HOME/chvm or ~/.local/state/chvm) and creates
   <root>/vms. */
int vmstate_root (const char *opt, char *out, size_t len, struct err **err);

/* Takes an exclusive flock on <root>/lock, waiting at most timeout_ms;
   returns the fd (closing it releases the lock). */
int vmstate_lock (const char *root, int timeout_ms, struct err **err);

int vmstate_dir (const char *root, const char *name, char *out, size_t len, struct err **err);

/* vm.json <-> record.  The parser checks every type and size: vm.json is
   read back by every command and a damaged one must be an error, not UB. */
int vmrec_to_json (const struct vm_record *r, char **out, struct err **err);
int vmrec_from_json (const char *text, size_t len, struct vm_record *r, struct err **err);

int vmrec_load (const char *root, const char *name, struct vm_record *r, struct err **err);
/* Atomic: tmp file in the same dir, fsync, rename. */
int vmrec_save (const char *root, const struct vm_record *r, struct err **err);

/* Sorted names of every VM directory; free each and the array. */
int vmstate_list (const char *root, char ***names, size_t *n, struct err **err);
void vmstate_list_free (char **names, size_t n);

/* The VMs whose vm.json uses a file under image_dir (an image cache entry)
   as root disk, or cannot be read: *n of them, their names joined by ", "
   into out (truncated with "..." when out is too small). */
int vmstate_image_users (const char *root, const char *image_dir, char *out, size_t len, size_t *n,
                         struct err **err);

/* Whether pid is alive and /proc/pid/cmdline names the VM dir needle (QMP/API
   sockets live there) as a whole path: an argument that is dir or a path
   below it, or has one after "=", ":" or ",".  Guards against a recycled
   pid being taken for our VMM, and VM "a" taking VM "ab"'s VMM for its own. */
bool vm_pid_is_ours (pid_t pid, const char *needle);

/* Where the guest's DevTools answers from the host: a tap VM's own address
   (in its namespace) and spec.cdp_port, else the host side of the publish
   that covers cdp_port (0.0.0.0 as 127.0.0.1).  host is bare (an IPv6
   address without brackets).  -1 when neither exists. */
int vm_cdp_upstream (const struct vm_record *r, char *host, size_t len, unsigned *port);

/* The pid a pid file (vmm.pid, console-log.pid, supervisor.pid) holds:
   decimal, an optional line end; 0 when missing or not a pid. */
pid_t vm_read_pid_file (const char *path);

/* The matching rule of vm_pid_is_ours on a cmdline buffer of len bytes
   (NUL-separated arguments). */
bool vm_cmdline_names_dir (const char *buf, size_t len, const char *dir);

/* Queries the VMM's API for paused/running; returns -1 when it does not
   answer.  Injected so derivation is testable without a VMM. */
typedef int (*vm_api_probe_fn) (const struct vm_record *r);

enum vm_status vm_probe (const char *dir, const struct vm_record *r, vm_api_probe_fn api);

/* Fills spec from r; pub must hold VM_MAX_PUBLISH entries. */
void vmrec_spec (const struct vm_record *r, const char *dir, struct publish *pub,
                 struct vm_spec *spec);

/* "2G", "512M", "1536" (MiB), "1g", "2GiB" -> MiB; refuses 0, fractions of
   a MiB, and more than 1 TiB. */
int vm_parse_memory (const char *s, uint64_t *mib, struct err **err);

/* Writes len bytes to path atomically and durably: tmp + fsync + rename +
   fsync of the directory. */
int write_file_atomic (const char *path, const void *data, size_t len, mode_t mode,
                       struct err **err);

/* ---- durability: what standby writes must be on disk before vm.json says
   "standby" and the VMM that could write it again is gone. */

/* Test seam: when set, called with each path right after its fsync(2)
   succeeded (files, directories), in order. */
extern void (*vm_fsync_hook) (const char *path);

/* fsync(2) of a file or directory by path. */
int vm_fsync_path (const char *path, struct err **err);

/* rename(2), then fsync of the directory of to (and of from's when it
   differs), so that the new name survives a crash. */
int vm_rename_durable (const char *from, const char *to, struct err **err);

/* fsync of every regular file under dir, then of each directory after its
   contents, dir last. */
int vm_fsync_tree (const char *dir, struct err **err);

/* Removes a tree (ENOENT is success). */
int vm_rmtree (const char *path, struct err **err);

/* Makes <dir>/snapshot.tmp-<our pid>-XXXXXX; out gets its path. */
int vm_snapshot_tmp (const char *dir, char *out, size_t len, struct err **err);

/* A complete snapshot in tmp becomes snap (which must not exist): every
   file and tmp fsynced, renamed, the parent fsynced. */
int vm_snapshot_commit (const char *tmp, const char *snap, struct err **err);

/* The bytes of the files in snapshot dir: *logical their sizes, *allocated
   what the filesystem holds for them (a sparse memory-ranges has holes). */
int vm_snapshot_size (const char *dir, uint64_t *logical, uint64_t *allocated, struct err **err);

/* Removes <dir>/snapshot.tmp-* left by interrupted standbys: those whose
   pid is not alive, and those without a pid (older chvm).  The caller holds
   the state lock.  *removed (may be NULL) gets how many. */
int vm_sweep_snapshot_tmp (const char *dir, unsigned *removed, struct err **err);

/* Whether snapshot dir holds all a restore needs (backend "qemu" or
   "cloud-hypervisor"): QEMU: memory, a non-empty migration stream with its
   magic; CH: config.json, state.json and memory-ranges non-empty, and
   memory-ranges at least as large as config.json's memory size when all RAM is in
   it (no hotplug, zones or shared backing). */
int vm_snapshot_check (const char *dir, const char *backend, struct err **err);

/* The shell command QEMU's exec: migration runs to write <dir>/<file>:
   the stream goes to <file>.part, renamed to <file> once the writer has it
   all, or <file>.failed appears. */
int vm_snapshot_writer_cmd (const char *dir, const char *file, char *out, size_t len,
                            struct err **err);

/* Waits until that writer finished: 0 once <dir>/<file> exists, an error
   when <file>.failed does or after timeout_ms. */
int vm_snapshot_writer_wait (const char *dir, const char *file, int timeout_ms, struct err **err);

#endif
