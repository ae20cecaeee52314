/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-VM supervisor: `chvm __supervise DIR`, started by `chvm run` and
 * `chvm restore` (and `chvm supervise NAME` to take over after one died),
 * in its own session, outliving the command that started it.  It holds the
 * VM's CDP endpoint (spec.cdp_endpoint, a TCP listener on the host) and
 * proxies HTTP and WebSockets to the guest's DevTools through the tap (or,
 * on QEMU's user network, its forwarded port), keeps the idle clock, wakes
 * the VM when a client connects or sends a byte while it is in standby, and
 * stands it by after spec.idle_standby seconds without a CDP byte and with
 * no command outstanding.  Standby and restore are `chvm standby` and
 * `chvm restore` themselves, run as its children while it holds the
 * clients' bytes.  It watches the VMM (pidfd) and vm.json (inotify), so a
 * standby or restore someone else runs is seen as well.  It is two
 * processes: root keeps all of that but the endpoint, which a worker of
 * nobody's serves (sup.h, supmsg.h): no byte of a client or the guest is
 * parsed as root.
 *
 * Files in the VM dir: supervisor.pid, supervisor.lock (flock: one
 * supervisor per VM), supervisor.sock (the control socket: one JSON line
 * in, one JSON line out), supervisor.log (its log and its children's
 * output; `chvm logs --source supervisor`).
 *
 * This header is what the CLI and the tests use (client.c, supervisor_main
 * in daemon.c, supctl_parse_request in control.c); sup.h lists the
 * supervisor's own files.
 */
#ifndef CHVM_SUPERVISOR_H
#define CHVM_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "state/vmstate.h"

#define SUPERVISOR_CMD "__supervise"
#define SUPERVISOR_DEFAULT_MAX_CLIENTS 32
#define SUPCTL_LINE_MAX 4096
#define SUPERVISOR_BACKLOG 128
/* The supervisor's PATH (for ip, nft, a VMM binary run did not record),
   whoever started it. */
#define SUPERVISOR_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

int supervisor_main (int argc, char **argv);

/* Starts dir's supervisor unless one is alive; waits until its control
   socket answers (or it exits, which is an error naming its log).  It
   binds in the namespace chvm started in; the caller is left in netns
   (the VM's, "" for the host's) afterwards.  booting: the browser may not
   be up yet (run --no-wait), so the idle clock waits for its first answer;
   otherwise the caller saw it answer (or the VM is in standby). */
int supervisor_start (const char *dir, const char *netns, bool booting, struct err **err);

/* supervisor_start handing it listen_fd (supervisor_listen's; -1: none,
   it binds the endpoint itself), which it holds from then on.  Either way
   its environment is PATH=SUPERVISOR_PATH alone (a test-hooks build adds
   its hooks' variables); the daemon adds the record's vmm_env. */
int supervisor_start_fd (const char *dir, const char *netns, bool booting, int listen_fd,
                         struct err **err);

/* Binds and listens on addr:*port (IPv4; *port 0: the kernel picks one,
   stored back), a close-on-exec fd into *fd: run holds the endpoint from
   before the guest boots until it hands it to the supervisor. */
int supervisor_listen (const char *addr, uint16_t *port, int *fd, struct err **err);

/* r->vmm_env from this process's environment (run's): vm_env_names'
   values, the VMM binaries resolved to absolute paths. */
void supervisor_record_env (struct vm_record *r);

/* Ends dir's supervisor, if one runs (SIGTERM, SIGKILL after grace_ms). */
void supervisor_stop (const char *dir, int grace_ms);

/* The live supervisor's pid (its cmdline names dir), else 0. */
pid_t supervisor_pid (const char *dir);

/* Idle standby (idle_s > 0) needs a tap: a client's connection through
   QEMU's user network ends with the QEMU process at every standby. */
int supervisor_check_idle (unsigned idle_s, bool tap, struct err **err);

/* Whether a VM in state st has a supervisor: it exists (running, paused or
   in standby). */
bool supervisor_wanted (enum vm_status st);

/* What ps says of a VM's supervisor: "running" (pid alive), "gone" (the
   VM has an endpoint and supervisor_wanted (st), but no supervisor holds
   it) or "none" (a VM made before supervisors, or one that is stopped). */
const char *supervisor_health (const char *dir, const char *endpoint, enum vm_status st,
                               pid_t *pid);

/* Sends one request line ({"cmd":"status"}) to the control socket and
   reads the one-line reply into out. */
int supervisor_query (const char *dir, const char *cmd, char *out, size_t cap, int timeout_ms,
                      struct err **err);

/* The control protocol's request: {"cmd":"status"|"stop"}, at most
   SUPCTL_LINE_MAX bytes; the command name into cmd. */
int supctl_parse_request (const char *line, size_t len, char *cmd, size_t cap, struct err **err);

#endif
