/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cgroup v2: one cgroup per VM under <cgroup2 mount>/chvm.slice/, made
 * before its VMM starts and removed after it is gone.  The VMM joins it in
 * its child before exec (proc_spawn_vmm), so it and everything it forks are
 * there from the first instruction; the console logger joins it once
 * started.  Stopping a VM writes cgroup.kill (every process of it at once,
 * none can fork away), waits on cgroup.events for "populated 0" (inotify, a
 * deadline) and removes the directory.
 *
 * The hierarchy is the first cgroup2 mount in /proc/self/mountinfo
 * (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid
 * one).  Limits need the cpu, memory and pids controllers there; chvm
 * enables those the root offers in the subtree of chvm.slice, and a limit
 * whose controller is missing is skipped (the caller says so).
 */
#ifndef CHVM_CGROUP_H
#define CHVM_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define CGROUP_SLICE "chvm.slice"
#define CGROUP_PATH_MAX 1024

/* 0 in a field: no limit of that kind. */
struct cgroup_limits
{
  unsigned cpus;         /* cpu.max: cpus whole CPUs per period */
  uint64_t memory_bytes; /* memory.max (and memory.oom.group 1) */
  uint64_t pids;         /* pids.max */
};

/* The mount point of the first cgroup2 line of mountinfo text (octal
   escapes decoded) into out: 1 when found, 0 when none; pure. */
int cgroup_parse_mountinfo (const char *text, char *out, size_t len);

/* Whether cgroup.events text says "populated 1"; pure. */
bool cgroup_events_populated (const char *text);

/* cpu.max's value for cpus CPUs ("200000 100000"; "max 100000" for 0). */
void cgroup_cpu_max (unsigned cpus, char *out, size_t len);

/* This host's cgroup2 mount point; ENOENT with "no cgroup v2 hierarchy
   mounted" when there is none. */
int cgroup_root (char *out, size_t len, struct err **err);

/* <root>/chvm.slice/<leaf>, whether it exists or not. */
int cgroup_path (const char *leaf, char *out, size_t len, struct err **err);

/* Makes <root>/chvm.slice/<leaf> afresh (a leftover of that name is
   killed and removed first) with limits l; its path into path.  The names
   of the controllers it lacks for l ("cpu memory", "" when none) go to
   missing.  On failure nothing of it is left. */
int cgroup_create (const char *leaf, const struct cgroup_limits *l, char *path, size_t len,
                   char *missing, size_t missing_len, struct err **err);

/* Kills every process in cgroup path (cgroup.kill), waits up to timeout_ms
   until it is empty and removes it.  0 when it does not exist. */
int cgroup_destroy (const char *path, int timeout_ms, struct err **err);

/* An fd of path/cgroup.procs open for writing: a child writes "0" to it to
   join (proc_spawn_vmm). */
int cgroup_open_procs (const char *path, struct err **err);

/* Moves pid into the chvm cgroup that like is in (the console logger into
   its VMM's); nothing when like is in none of chvm's. */
int cgroup_join_like (pid_t pid, pid_t like, struct err **err);

/* The first line of path/file into out ("" when it cannot be read). */
void cgroup_read (const char *path, const char *file, char *out, size_t len);

/* What a cgroup counts, as containerd's cgroups v2 Metrics carries it
   (shim Stats).  A limit of "max" is UINT64_MAX, as containerd's cgroups
   package reports it. */
struct cgroup_stats
{
  uint64_t pids_current, pids_limit;                       /* pids.current, pids.max */
  uint64_t cpu_usage_usec, cpu_user_usec, cpu_system_usec; /* cpu.stat */
  uint64_t cpu_nr_periods, cpu_nr_throttled, cpu_throttled_usec;
  uint64_t memory_usage, memory_limit; /* memory.current, memory.max */
};

/* The files cgroup_stats_read reads, in order, NULL-terminated. */
extern const char *const cgroup_stats_files[];

/* Parses the len bytes of text (not NUL-terminated) of file, one of
   cgroup_stats_files, into s; pure.  cpu.stat is "KEY VALUE" lines (keys
   it does not know are skipped); the others one value and a newline, "max"
   only for a limit.  -1 with an error naming the file (and the line). */
int cgroup_stats_parse (const char *file, const char *text, size_t len, struct cgroup_stats *s,
                        struct err **err);

/* Reads cgroup_stats_files of cgroup path into s (each at most 4 KiB); a
   file that is absent (its controller is not enabled there) leaves its
   fields 0. */
int cgroup_stats_read (const char *path, struct cgroup_stats *s, struct err **err);

#endif
