/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Cloud Hypervisor snapshot made into another VM's (a clone from a
 * template, chvm run --from): CH's RestoreConfig cannot rename a tap, a
 * socket or a disk, but the snapshot's config.json may be edited between
 * snapshot and restore.  The template was booted with all guest RAM in one
 * shared file-backed memory zone (chvm run --memory-file), so its snapshot
 * holds no memory-ranges: the zone's file is the memory.  A clone's
 * config.json names that file with shared=false, and CH maps it
 * MAP_PRIVATE: copy-on-write, every clone reading the template's pages from
 * the host's page cache (what Kata Containers' VM templating does).
 *
 * Pure (no I/O): unit tests and a fuzz target reach it.
 */
#ifndef CHVM_VMM_CH_CLONE_H
#define CHVM_VMM_CH_CLONE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Largest config.json accepted. */
#define CH_CLONE_CONFIG_MAX (1 << 20)

struct ch_clone_edit
{
  /* Every string of the config that is old_dir or a path below it (the
     serial and vsock sockets, the config and upper disks, Landlock's rule)
     is moved below new_dir.  Both absolute, without a trailing '/'. */
  const char *old_dir;
  const char *new_dir;
  /* The one memory zone's file becomes memory_file, shared unless cow. */
  const char *memory_file;
  bool cow;
};

/* How config.json holds guest RAM. */
struct ch_config_memory
{
  bool zones_only;  /* memory.size 0: all of guest RAM is in zones */
  bool files_only;  /* ... and each zone has a file */
  bool shared;      /* ... and each of those is shared (a template's) */
  unsigned n_zones; /* memory.zones entries */
  long long ram;    /* bytes: memory.size plus the zones' sizes */
};

/* Reads config.json's memory section into *m; -1 with an error when the
   text is not a CH config (no JSON object, no "memory" object). */
int ch_config_memory (const char *text, size_t len, struct ch_config_memory *m, struct err **err);

/* The clone's config.json from the template's (text, len): *out (malloc'd,
   NUL-terminated, *out_len bytes).  Refuses a config whose guest RAM is
   not one file-backed zone, and a path that would grow past 4095 bytes. */
int ch_clone_config (const char *text, size_t len, const struct ch_clone_edit *e, char **out,
                     size_t *out_len, struct err **err);

/* backend_ops.clone_snapshot for CH: out/config.json edited from
   tmpl/config.json (ch_clone_config), out/state.json a copy. */
int ch_clone_snapshot (const char *tmpl, const char *old_dir, const char *new_dir,
                       const char *memory_file, bool cow, const char *out, struct err **err);

#endif
