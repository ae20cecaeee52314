/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Templates (chvm template create|ls|rm|inspect, chvm run --from): a VM
 * booted with all guest RAM in one file (run --memory-file), quiesced,
 * paused and snapshotted, then moved out of vms/ into an immutable
 * directory $STATE/templates/NAME/ (docs/DESIGN.md "Templates"):
 *   manifest.json  what it was made of (template_info)
 *   vm.json        the template VM's record at the snapshot
 *   memory         guest RAM (the memory zone's file)
 *   snapshot/      the VMM's snapshot (config.json, state.json)
 *   config.img     the config disk the guest booted with
 *   upper.img      the overlay disk (--overlay disk only)
 *   console.log    what the guest printed up to the snapshot
 * Every file is root's and read-only (0444: each clone's VMM, its own uid,
 * maps memory); the directories 0555.  Built as templates/.tmp-NAME-XXXXXX
 * and renamed into place when complete.  Clones (VMs whose vm.json names
 * the template) keep it: template_remove refuses while one exists.
 */
#ifndef CHVM_VM_TEMPLATE_H
#define CHVM_VM_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "state/vmrec.h"

#define TEMPLATE_SHA256_LEN 64
#define TEMPLATE_MANIFEST_MAX (64 << 10)

struct template_info
{
  char name[VM_NAME_MAX + 1];
  int64_t created;
  char backend[32];
  char vmm_version[64]; /* the VMM that made it, e.g. "cloud-hypervisor v48.0-dirty" */
  unsigned cpus;
  uint64_t guest_ram; /* bytes */
  char kernel[VM_PATH_MAX];
  char kernel_sha256[TEMPLATE_SHA256_LEN + 1];
  char initrd[VM_PATH_MAX];
  char initrd_sha256[TEMPLATE_SHA256_LEN + 1];
  char image[512];                        /* the reference it was made from */
  char image_id[TEMPLATE_SHA256_LEN + 1]; /* its cache entry (manifest digest); "" unknown */
  char rootfs[VM_PATH_MAX];               /* the root disk every clone shares, read-only */
  char source_dir[VM_PATH_MAX];           /* the template VM's dir, as the snapshot names it */
  uint64_t memory_bytes;                  /* the memory file's allocated bytes */
  /* The group of the memory file (0660 root:gid), which every clone's VMM
     has: stock CH opens a memory zone's file read-write even to map it
     privately.  The uid of the VM that made it, kept from other VMs
     (vmmuser_assign); 0: VMMs run as root. */
  uint32_t gid;
};

/* The gids of all templates (vmmuser_assign hands none of them out);
 *out malloc'd. */
int template_gids (const char *root, uint32_t **out, size_t *n, struct err **err);

/* manifest.json <-> info.  The parser checks every type and size. */
int template_to_json (const struct template_info *t, char **out, struct err **err);
int template_from_json (const char *text, size_t len, struct template_info *t, struct err **err);

/* $STATE/templates/NAME (name checked as a VM name). */
int template_dir (const char *root, const char *name, char *out, size_t len, struct err **err);

/* Loads NAME's manifest; an error names a missing template. */
int template_load (const char *root, const char *name, struct template_info *t, struct err **err);

/* The templates' names (complete ones only), sorted; free with
   vmstate_list_free. */
int template_list (const char *root, char ***names, size_t *n, struct err **err);

/* The VMs made from template name ("a, b"; *n of them).  A vm.json that
   cannot be read counts as a user. */
int template_users (const char *root, const char *name, char *out, size_t len, size_t *n,
                    struct err **err);

/* The templates whose root disk lies in image_dir ("a, b"; *n of them):
   image rm keeps an image a template needs. */
int template_image_users (const char *root, const char *image_dir, char *out, size_t len, size_t *n,
                          struct err **err);

/* sha256 of a file (sha256sum) as hex. */
int template_sha256 (const char *path, char out[TEMPLATE_SHA256_LEN + 1], struct err **err);

/* Whether t can be cloned by a VMM of vmm_version with the kernel and
   initramfs as they are now: an error saying what differs. */
int template_check (const struct template_info *t, const char *vmm_version, struct err **err);

/* Makes template name from VM r in standby (its directory vmdir holds
   snapshot/ and the memory file r->memory_file), moving its files out; r
   is left to be removed.  Holds no lock itself (the caller holds the
   state lock).  On failure nothing of the template remains. */
int template_commit (const char *root, const char *name, const char *vmdir,
                     const struct vm_record *r, const char *vmm_version, struct err **err);

/* Removes template name; refuses while a VM made from it exists. */
int template_remove (const char *root, const char *name, struct err **err);

/* The clone's record from the template VM's (tdir/vm.json): name, dir
   paths, template; state standby, no runtime, no publish, no endpoint, no
   VMM uid (the caller assigns those). */
int template_clone_record (const char *tdir, const char *name, const char *dir, struct vm_record *r,
                           struct err **err);

#endif
