/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hypervisor processes (Cloud Hypervisor, QEMU): start one with its output
 * in a log file, wait for its control socket, wait for it to exit, kill it.
 * Every wait is on an event (pidfd, inotify, connect) bounded by a
 * CLOCK_MONOTONIC deadline; nothing here sleeps for a fixed time.
 *
 * The VMM runs in its own session so that it outlives the chvm command that
 * started it; a later chvm may stop it by pid, which is why the waits use a
 * pidfd and do not need the process to be our child (when it is, it is
 * reaped so it does not linger as a zombie).
 */
#ifndef CHVM_PROC_H
#define CHVM_PROC_H

#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* Re-executes chvm itself (/proc/self/exe) with argv, in a session of its
   own, fds 0-2 on /dev/null and no other fd of ours: the helpers that
   outlive the command starting them (console logger, supervisor). */
int proc_spawn_self (const char *const argv[], pid_t *pid, struct err **err);

/* The fd number a listening socket handed to a child has there. */
#define PROC_PASS_FD 3

/* proc_spawn_self with envp as the whole environment (NULL: ours) and,
   when pass_fd >= 0, that fd as the child's PROC_PASS_FD (inherited, not
   close-on-exec there; every other fd of ours is closed). */
int proc_spawn_self_env (const char *const argv[], const char *const envp[], int pass_fd,
                         pid_t *pid, struct err **err);

/* The absolute, resolved path of the program name (a path, or a name
   searched in $PATH) into out; -1 when none is executable. */
int proc_find_exec (const char *name, char *out, size_t len);

/* Starts argv[0] (searched in PATH) with stdin from /dev/null and
   stdout+stderr appended to log_path, in a new session, with no fds of ours
   but 0-2.  On success stores the pid. */
int proc_spawn (const char *const argv[], const char *log_path, pid_t *pid, struct err **err);

/* The last non-empty line of a VMM's log (at most its last KiB), for
   error messages: the VMM says there why it failed to start or restore.
   Empty when there is none. */
void proc_log_last_line (const char *log_path, char *out, size_t len);

/* The first byte of a sysctl file ('0', '1', ...) into *v. */
int proc_read_sysctl (const char *path, char *v, struct err **err);

/* An unprivileged identity for a process chvm (root) starts: a VMM. */
struct proc_jail
{
  uid_t uid;
  gid_t gid;
  gid_t groups[4]; /* supplementary groups (kvm, for /dev/kvm) */
  size_t n_groups;
  /* Paths the process must reach, checked as uid/gid before exec so that
     a missing permission is one clear error rather than a VMM that dies
     later: "r:PATH" read, "w:PATH" read+write, "d:PATH" a directory it
     writes into; NULL-terminated, may be NULL. */
  const char *const *need;
  /* The whole environment it gets (NULL-terminated, may be NULL: none). */
  const char *const *env;
  /* A mount namespace of its own with /sys mounted afresh, as `ip netns
     exec` does, so /sys/class/net shows the network namespace it runs in
     (CH looks its tap up there). */
  bool own_sysfs;
};

/* Starts a VMM as proc_spawn does, but as j->uid/gid with only j->groups,
   every capability dropped (bounding and ambient sets too),
   PR_SET_NO_NEW_PRIVS and j->env as its environment (j NULL: as chvm,
   with its environment), in the cgroup v2 directory cgroup (NULL: chvm's
   own), which the child joins before anything else: the VMM and all it
   forks are there from the start.  Fails, naming the path, when j->need is
   not met. */
int proc_spawn_vmm (const char *const argv[], const char *log_path, const struct proc_jail *j,
                    const char *cgroup, pid_t *pid, struct err **err);

/* Waits until the unix socket at path accepts a connection.  Fails at once,
   naming the exit status, when pid exits first, and fails with ETIMEDOUT
   after timeout_ms.  path should not exist yet (the caller removes a stale
   one), or a stale socket from an earlier process could be mistaken for
   the new one. */
int proc_wait_socket (pid_t pid, const char *path, int timeout_ms, struct err **err);

/* The same wait, keeping the first connection that succeeds: returns its
   fd (for a server that takes one client, where a probe connection would
   count as one). */
int proc_connect_socket (pid_t pid, const char *path, int timeout_ms, struct err **err);

/* Waits up to timeout_ms for pid to exit (reaping it if it is our child).
   Returns 1 when it exited (and *status, if not NULL, holds its wait
   status, or -1 when it was not our child), 0 on timeout, <0 on error. */
int proc_wait_exit (pid_t pid, int timeout_ms, int *status, struct err **err);

/* Sends SIGTERM, waits up to grace_ms, then SIGKILL and waits up to
   another grace_ms.  Returns 0 once the process is gone. */
int proc_terminate (pid_t pid, int grace_ms, struct err **err);

/* Runs argv (searched in PATH) with stderr to /dev/null and returns its
   first stdout line, without the newline, in out (truncated to len).  Kills
   it when it has not exited after timeout_ms.  For `X --version`. */
int proc_capture_line (const char *const argv[], char *out, size_t len, int timeout_ms,
                       struct err **err);

/* Whether pid still runs (a zombie child of ours is reaped and counts as
   gone). */
bool proc_alive_p (pid_t pid);

/* Whether pid is alive and /proc/pid/cmdline names the VM dir needle (QMP/API
   sockets live there) as a whole path: an argument that is dir or a path
   below it, or has one after "=", ":" or ",".  Guards against a recycled
   pid being taken for our VMM, and VM "a" taking VM "ab"'s VMM for its own. */
bool proc_pid_names_dir (pid_t pid, const char *needle);

/* Whether pid runs as uid (the owner of /proc/PID): what a pid file or a
   cmdline cannot forge.  Root's daemons (supervisor, console logger) are
   checked with uid 0, so that the VMM's uid cannot pass off a process of
   its own, its cmdline naming the VM dir, as one of them. */
bool proc_pid_owned_by (pid_t pid, uid_t uid);

/* Whether pid is one of root's chvm daemons for the VM dir: argv[1] is cmd
   (SUPERVISOR_CMD, CONSOLE_LOGGER_CMD), its cmdline names dir, and it runs
   as root. */
bool proc_pid_is_daemon (pid_t pid, const char *cmd, const char *dir);

/* The pid a pid file (vmm.pid, console-log.pid, supervisor.pid) holds:
   decimal, an optional line end; 0 when missing, not a pid, not a plain
   file with one link, or not the caller's uid's (a symlink, a FIFO, a file
   of the VMM's uid: what another uid may plant where one is gone). */
pid_t proc_read_pid_file (const char *path);

/* The matching rule of proc_pid_names_dir on a cmdline buffer of len bytes
   (NUL-separated arguments). */
bool proc_cmdline_names_dir (const char *buf, size_t len, const char *dir);

/* Runs argv (PATH search, no shell), stdin fed from input (may be NULL);
   fails with its first stderr line when it exits non-zero.  With quiet, a
   non-zero exit returns 1 with no error (probes, idempotent deletes).
   Bounded by a 10 s deadline. */
int proc_run (const char *const argv[], const char *input, bool quiet, struct err **err);

/* The Rss and Pss lines of a /proc/PID/smaps_rollup text (kB) in bytes;
   -1 unless both are there. */
int proc_parse_smaps_rollup (const char *text, uint64_t *rss, uint64_t *pss);

/* The host memory of process pid from /proc/PID/smaps_rollup (Linux 4.14+):
   its resident set and proportional set size (shared pages divided among
   their users), in bytes.  Reading another uid's needs root. */
int proc_mem_usage (pid_t pid, uint64_t *rss, uint64_t *pss, struct err **err);

/* How many processes have uid among their real, effective, saved or
   filesystem uids; -1 when /proc cannot be read. */
int proc_uid_count (uid_t uid);

/* SIGKILLs every process of uid (the VMM's uid after its VM stopped: a
   compromised VMM's forked, setsid'd children included) until none is
   left; fails after timeout_ms.  Refuses uid 0. */
int proc_kill_uid (uid_t uid, int timeout_ms, struct err **err);

#endif
