/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A VM backend drives one hypervisor process per VM.  Two exist:
 * cloud-hypervisor (REST API on a unix socket; backend_ch.c) and QEMU under
 * software emulation (QMP; backend_qemu.c) for hosts whose KVM cannot run a
 * guest.  The lifecycle commands (cmd_*.c) only talk to this interface.
 */
#ifndef CHVM_BACKEND_H
#define CHVM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "sys/proc.h"

/* QEMU user-net forwards each published port with its own hostfwd, all in
   one -netdev argument (Linux caps one argument at 128 KiB): neko's 101 UDP
   media ports and more fit, 65535 would not. */
#define BACKEND_QEMU_MAX_FWD 1024

/* The longest path of a VM's files (its directory, disks, kernel). */
#define VM_PATH_MAX 1024

/* A published port range: count consecutive ports from host_port on
   host_addr map to as many from guest_port (--publish
   56000-56100:56000-56100/udp is one entry with count 101); both ranges end
   at or below 65535.  On a tap it is DNAT (net.c), on QEMU's user network a
   hostfwd each. */
struct publish
{
  char host_addr[64]; /* "" means 127.0.0.1 */
  uint16_t host_port;
  uint16_t guest_port;
  uint16_t count; /* 0 (a record built in code) means 1 */
  bool udp;
  /* A forward chvm made for itself (QEMU user-net's DevTools port, which
     the supervisor proxies), not one the user asked for: a TCP port on an
     IPv4 address that only root's sockets may connect to. */
  bool root_only;
};

static inline unsigned
publish_ports (const struct publish *p)
{
  return p->count ? p->count : 1;
}

/* Whether guest TCP port (udp false) or UDP port is forwarded by p. */
static inline bool
publish_covers (const struct publish *p, bool udp, unsigned guest_port)
{
  return p->udp == udp && p->guest_port <= guest_port
         && guest_port < p->guest_port + publish_ports (p);
}

enum vm_toggle
{
  VM_AUTO = 0,
  VM_OFF,
  VM_ON,
};

enum vm_restore_mode
{
  VM_RESTORE_AUTO = 0, /* ondemand where the VMM version and host allow it, else copy */
  VM_RESTORE_COPY,     /* read all of the snapshot's memory before the guest runs */
  VM_RESTORE_ONDEMAND, /* serve pages on fault (CH v52+, userfaultfd) */
  /* Out only: guest RAM is a file the VMM maps (a --memory-file VM's own,
     shared, in place; a clone's template file, copy-on-write): nothing is
     read before the guest runs, its pages come from the host's page cache
     as it touches them. */
  VM_RESTORE_FILE,
};

/* Everything needed to (re)create a VM.  Paths are absolute. */
struct vm_spec
{
  const char *name;
  const char *dir; /* the VM's state directory (sockets, logs, snapshot) */
  unsigned cpus;
  uint64_t memory_mib;
  const char *kernel; /* bzImage or PVH vmlinux */
  const char *initrd; /* may be NULL (micro guests) */
  const char *cmdline;
  const char *rootfs;            /* serial chvm-root, read-only; may be NULL */
  bool rootfs_pmem;              /* rootfs also as read-only virtio-pmem (/dev/pmem0) */
  const char *config_disk;       /* serial chvm-config, read-only; may be NULL */
  const char *upper_disk;        /* serial chvm-upper, writable; may be NULL */
  const char *tap;               /* tap device name, or NULL for no tap */
  const char *mac;               /* guest MAC for the tap, or NULL */
  unsigned agent_vsock_port;     /* CH: agent port on vsock (0: no vsock) */
  uint16_t agent_tcp_port;       /* QEMU: guest TCP port of the agent (0: none) */
  const struct publish *publish; /* QEMU user-net: host->guest forwards */
  size_t n_publish;
  /* Who the VMM runs as (vmmuser.c); NULL: as chvm itself (root). */
  const struct proc_jail *jail;
  /* The VM's cgroup v2 directory, which the VMM joins before it execs
     (sys/cgroup.h); NULL: none (chvm's own). */
  const char *cgroup;
  /* CH: Landlock (VmConfig landlock_enable), the VM dir its one writable
     place besides the devices and disks CH adds itself. */
  bool landlock;
  /* NULL: the VMM appends the serial port to dir/console.log itself, without
     bound (ch-driver, tests).  Else the VMM listens for one client on the
     unix socket dir/console.sock and the backend calls this once the VMM
     runs and before the guest does (before vm.boot / vm.restore / cont):
     chvm starts its console logger there (console.c), which writes
     console.log with a size cap.  A failure fails the start. */
  int (*serial_attach) (const char *dir, pid_t vmm_pid, struct err **err);
  /* CH guest RAM (chvm run --shared-memory, --free-page-reporting):
     VM_AUTO lets the backend choose by its version (vm_runtime says what it
     chose).  Shared (memfd) memory is what CH v52+ snapshots sparsely;
     free page reporting (virtio-balloon) punches the pages the guest frees
     out of it. */
  enum vm_toggle shared_memory;
  enum vm_toggle free_page_reporting;
  /* CH: all guest RAM in this file (it exists, memory_mib large), one
     shared file-backed memory zone: a template's (chvm template create),
     whose snapshot then holds no memory-ranges (vmm/ch_clone.h).  NULL:
     anonymous or memfd RAM as shared_memory says. */
  const char *memory_file;
};

/* How a restore brings guest memory back (chvm restore --memory-restore,
   --prefault); the backend fills mode and reason with what it did. */
struct vm_restore_opts
{
  enum vm_restore_mode want;
  bool prefault;
  bool shared_memory;        /* the snapshot's guest RAM was shared: sparse on CH v52+ */
  bool file_private;         /* its zone is a file mapped copy-on-write (a clone's) */
  enum vm_restore_mode mode; /* out: VM_RESTORE_COPY, _ONDEMAND or _FILE */
  char reason[256];          /* out: why that mode */
};

/* What a running VM looks like from the host; persisted in vm.json by the
   caller.  Backends fill it in start()/restore(). */
struct vm_runtime
{
  pid_t vmm_pid;
  char api_socket[256];     /* CH API socket or QEMU QMP socket */
  char vsock_socket[256];   /* CH hybrid vsock unix socket ("" if none) */
  uint16_t agent_host_port; /* QEMU: 127.0.0.1 port forwarded to the agent (0 if none) */
  char version[64];         /* hypervisor version string, e.g. "cloud-hypervisor v53.0" */
  bool shared_memory;       /* CH: guest RAM is a memfd (MAP_SHARED) */
  bool free_page_reporting; /* CH: a virtio-balloon reports the guest's free pages */
};

/* Timing of one phase, for standby/restore reports. */
struct phase
{
  const char *name;
  double ms;
};

#define BACKEND_MAX_PHASES 8

/* The phase names both backends' restore reports (chvm restore --json
   "phases"; docs/DESIGN.md says which keys it promises). */
#define PHASE_VMM_START "vmm-start"
#define PHASE_RESTORE "restore"
#define PHASE_RESUME "resume"

/* Appends phase name, lasting from *t to now, to p[*n] (at most
   BACKEND_MAX_PHASES; p may be NULL) and sets *t to now. */
void phase_add (struct phase *p, size_t *n, const char *name, double *t);

/* What a backend has, for callers that must not test its name. */
enum backend_cap
{
  BACKEND_CAP_USER_NET = 1 << 0,       /* user-mode network (no tap needed) */
  BACKEND_CAP_SHARED_MEMORY = 1 << 1,  /* --shared-memory, --free-page-reporting */
  BACKEND_CAP_MEMORY_RESTORE = 1 << 2, /* --memory-restore ondemand, --prefault */
  BACKEND_CAP_VSOCK = 1 << 3,          /* the agent on vsock (else TCP with a token) */
};

/* The guest's address and gateway on a BACKEND_CAP_USER_NET network (QEMU
   user-net's defaults). */
#define BACKEND_USER_NET_GUEST "10.0.2.15/24"
#define BACKEND_USER_NET_GATEWAY "10.0.2.2"
#define BACKEND_USER_NET_DNS "10.0.2.3"

struct backend_ops
{
  const char *name; /* "cloud-hypervisor" or "qemu" */
  unsigned caps;    /* enum backend_cap */
  /* Whether this host can run this backend at all; on false, *why says so. */
  bool (*available) (char *why, size_t why_len);
  /* Start the VMM process and boot the VM from spec. */
  int (*start) (const struct vm_spec *spec, struct vm_runtime *rt, struct err **err);
  int (*pause) (struct vm_runtime *rt, struct err **err);
  int (*resume) (struct vm_runtime *rt, struct err **err);
  /* VM must be paused.  Writes the snapshot into dir (which exists and is empty). */
  int (*snapshot) (struct vm_runtime *rt, const char *dir, struct err **err);
  /* Start a new VMM and restore from dir; the VM is left running (resumed).
     Phases (vmm start, restore, resume) are appended to phases/n_phases. */
  int (*restore) (const struct vm_spec *spec, const char *dir, struct vm_restore_opts *ro,
                  struct vm_runtime *rt, struct phase *phases, size_t *n_phases, struct err **err);
  /* Ask the VMM to stop the VM and exit; then reap it.  Kills it if it does
     not exit before the deadline. */
  int (*shutdown) (struct vm_runtime *rt, struct err **err);
  /* Press the VM's ACPI power button and return: a request the guest may
     honour (chvm-init stops the entrypoint and powers off, and the VMM then
     exits by itself) or ignore.  The caller waits for the exit. */
  int (*powerdown) (struct vm_runtime *rt, struct err **err);
  /* Bytes of guest RAM the host holds for the VM's shared memory (the
     memfds' allocated blocks), for watching free page reporting hand
     memory back; NULL where the backend has none. */
  int (*ram_allocated) (const struct vm_runtime *rt, uint64_t *bytes, struct err **err);
  /* Open a stream to the guest agent (vsock CONNECT or TCP); returns an fd. */
  int (*agent_connect) (const struct vm_runtime *rt, unsigned port, int timeout_ms,
                        struct err **err);
  /* Asks the running VMM: 1 paused, 0 running, -1 it did not answer (within
     about a second). */
  int (*query_paused) (const struct vm_runtime *rt);
  /* Whether snapshot dir holds all a restore needs; else an error saying
     what is missing or damaged. */
  int (*snapshot_check) (const char *dir, struct err **err);
  /* A clone of a template (chvm run --from): makes out (an empty directory)
     into the snapshot from which a VMM restores the VM of directory
     new_dir, from the template's snapshot tmpl that the VM of old_dir made
     (booted with vm_spec.memory_file), its guest RAM memory_file: mapped
     copy-on-write (cow: the file is never written) or, not cow, the clone's
     own copy.  NULL: the backend cannot make templates. */
  /* The version of the VMM a start or restore runs now, as vm_runtime's
     version says it (a template records it; its clones need the same). */
  int (*vmm_version) (char *out, size_t len, struct err **err);
  int (*clone_snapshot) (const char *tmpl, const char *old_dir, const char *new_dir,
                         const char *memory_file, bool cow, const char *out, struct err **err);
};

extern const struct backend_ops backend_ch;
extern const struct backend_ops backend_qemu;

/* Backend by its name (backend_ops.name, or "ch"); NULL when unknown. */
const struct backend_ops *backend_by_name (const char *name);

/* Whether KVM here can run a real guest; on false, why says what is wrong
   (no /dev/kvm, the kvm_pvm software module, no access). */
bool backend_kvm_usable (char *why, size_t why_len);

/* The backend for `chvm run --backend want` ("ch", "qemu" or "auto": CH
   where it and KVM can run guests, else QEMU); NULL with an error saying
   why none can.  why gets the reason of the last refusal. */
const struct backend_ops *backend_pick (const char *want, char *why, size_t why_len,
                                        struct err **err);

/* Writes <dir>/vmm.pid (pid of the VMM), atomically and durably. */
int backend_write_pid (const char *dir, pid_t pid, struct err **err);

struct stat;
/* For snapshot_check: dir/name must be a non-empty regular file (*st). */
int backend_snapshot_file (const char *dir, const char *name, struct stat *st, struct err **err);

/* The root image's size for its virtio-pmem device (spec->rootfs_pmem):
   refused unless a non-empty multiple of IMAGE_ROOTFS_ALIGN (the image
   layer pads it; `chvm run` does for older images). */
int backend_pmem_size (const char *path, uint64_t *size, struct err **err);

#endif
