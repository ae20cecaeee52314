/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Client of the Cloud Hypervisor REST API (HTTP/1.1 over the unix socket
 * given by --api-socket), v48 and newer.  Every call is bounded by a curl
 * timeout and a response size cap; every failure (no answer, non-2xx,
 * malformed body) is one error naming the call and, for HTTP errors, CH's
 * own message.
 *
 * The JSON builders and parsers are pure (no I/O) so that unit tests and
 * the fuzzer can reach them.
 */
#ifndef CHVM_CH_API_H
#define CHVM_CH_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "err.h"
#include "vmm/backend.h"

/* Largest response body accepted (vm.info of a big VM is a few KiB). */
#define CH_RESPONSE_MAX (1024 * 1024)

/* First version that knows vm.restore's memory_restore_mode and resume. */
#define CH_VERSION_RESTORE_MODES 52
/* First version that writes a shared (memfd) guest RAM's holes as holes
   in memory-ranges (SEEK_DATA/SEEK_HOLE), and reads only its data back. */
#define CH_VERSION_SPARSE_SNAPSHOT 52
/* First version whose ondemand restore also fills every page of guest RAM
   from a background thread (holes too). */
#define CH_VERSION_UFFD_FILL 53
/* Why a clone's own standby (memory-ranges over its template's file, which
   the restore maps copy-on-write) is not restored ondemand: userfaultfd
   registers only anonymous, shmem and hugetlb memory. */
#define CH_RESTORE_COW_WHY                                                                         \
  "guest RAM maps a file copy-on-write (a clone's), which userfaultfd cannot serve"

struct ch_client
{
  char socket[108];     /* api socket path (sun_path sized) */
  long timeout_ms;      /* most calls */
  long slow_timeout_ms; /* vm.snapshot, vm.restore: proportional to RAM */
  int version_major;    /* 0 until known (ch_ping, or set by the caller) */
  int version_minor;
};

enum ch_restore_mode
{
  CH_RESTORE_COPY,     /* read the whole snapshot before running */
  CH_RESTORE_ONDEMAND, /* v52+: serve pages by userfaultfd */
};

struct ch_restore_opts
{
  bool prefault;
  enum ch_restore_mode mode; /* ignored below v52 (copy is all there is) */
  bool resume;               /* v52+ only; below, the caller resumes */
};

struct ch_vm_info
{
  char state[16]; /* Created, Running, Shutdown, Paused */
  unsigned boot_vcpus;
  uint64_t memory_size;        /* configured, bytes */
  uint64_t memory_actual_size; /* bytes, 0 if CH did not say */
};

/* Sets socket and default timeouts (5 s, 10 min); version unknown. */
int ch_client_init (struct ch_client *c, const char *socket, struct err **err);

/* Parses "cloud-hypervisor v53.0-dirty", "v48.0.0" or "48.0" (the number
   after an optional name and 'v'). */
int ch_parse_version (const char *s, int *major, int *minor);

/* `binary --version` (binary NULL: $CLOUD_HYPERVISOR or cloud-hypervisor)
   into out, e.g. "cloud-hypervisor v53.0". */
int ch_binary_version (const char *binary, char *out, size_t len, struct err **err);

/* The binary to run: $CLOUD_HYPERVISOR or "cloud-hypervisor". */
const char *ch_binary (void);

/* --- pure JSON builders and parsers ------------------------------------ */

/* VmConfig for vm.create from spec; sockets and logs go into spec->dir
   (console.log: the serial port; vsock.sock).  Returns a new object or NULL. */
struct json_object *ch_vm_config (const struct vm_spec *spec, struct err **err);

/* RestoreConfig for vm.restore of dir; v52+ fields only when
   version_major >= 52. */
struct json_object *ch_restore_config (const char *dir, const struct ch_restore_opts *o,
                                       int version_major, struct err **err);

/* Resolves ro->want into ro->mode and ro->reason for a VMM of version_major
   that can (uffd) or cannot have a userfaultfd (uffd_why says why).
   Auto: ondemand on v52+ with a userfaultfd, but copy with prefault, and
   copy for a shared-memory snapshot on v53+ (sparse: copy reads only its
   data, where an ondemand restore fills all of guest RAM behind), and
   copy for guest RAM that maps a file copy-on-write (ro->file_private).
   An explicit ondemand that cannot be had is an error naming why. */
int ch_restore_pick (int version_major, bool uffd, const char *uffd_why, struct vm_restore_opts *ro,
                     struct err **err);

int ch_parse_info (const char *body, size_t len, struct ch_vm_info *info, struct err **err);
int ch_parse_ping (const char *body, size_t len, char *version, size_t vlen, struct err **err);

/* CH's error text from an error body: a JSON array of strings (the error
   chain, v4x+) joined with ": ", or else the body as text; control
   characters become spaces, the result is truncated to len. */
void ch_error_text (const char *body, size_t len, char *out, size_t outlen);

/* --- API calls ------------------------------------------------------------ */

/* vmm.ping: version string into version, and c->version_major/minor. */
int ch_ping (struct ch_client *c, char *version, size_t vlen, struct err **err);
int ch_create (struct ch_client *c, const struct vm_spec *spec, struct err **err);
int ch_boot (struct ch_client *c, struct err **err);
int ch_pause (struct ch_client *c, struct err **err);
int ch_resume (struct ch_client *c, struct err **err);
/* dir must exist, be absolute and empty. */
int ch_snapshot (struct ch_client *c, const char *dir, struct err **err);
/* On a VMM without a VM.  *resumed says whether CH already resumed it
   (o->resume on v52+). */
int ch_restore (struct ch_client *c, const char *dir, const struct ch_restore_opts *o,
                bool *resumed, struct err **err);
int ch_info (struct ch_client *c, struct ch_vm_info *info, struct err **err);
int ch_shutdown (struct ch_client *c, struct err **err);
int ch_vmm_shutdown (struct ch_client *c, struct err **err);
/* vm.power-button: the guest's ACPI power button. */
int ch_power_button (struct ch_client *c, struct err **err);
/* vm.counters as parsed JSON (caller json_object_put()s it). */
int ch_counters (struct ch_client *c, struct json_object **out, struct err **err);

#endif
