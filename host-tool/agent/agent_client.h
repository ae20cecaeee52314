/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host side of the agent protocol (proto/agent.proto, docs/DESIGN.md).
 * Blocking calls, each bounded by a timeout in milliseconds (poll() on a
 * CLOCK_MONOTONIC deadline).  One request at a time per client; open more
 * clients for concurrency.  Typical use:
 *
 *   int fd = dial_vsock (rt->vsock_socket, 1024, 5000, &err);   // dial.h
 *   struct agent_client *a = agent_open (fd, NULL, 5000, &err); // owns fd
 *   agent_quiesce (a, 10000, true, true, &quiesced, 15000, &err);
 *   ... snapshot ...
 *   agent_thaw (a, agent_now_ns (), false, &thawed, NULL, &step_ns, 5000, &err);
 *   agent_close (a);
 *
 * Errors: < 0 with *err set; an ErrorReply from the agent becomes an error
 * whose message starts with the agent's code name (e.g. "FROZEN: ...").
 */
#ifndef CHVM_AGENT_CLIENT_H
#define CHVM_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.pb-c.h"
#include "err.h"
#include "sys/dial.h"

struct agent_client;

/* Takes ownership of fd (closed on failure too), sends Hello with token (may
   be NULL on vsock) and checks the HelloReply. */
struct agent_client *agent_open (int fd, const char *token, int timeout_ms, struct err **err);
void agent_close (struct agent_client *a);
/* The HelloReply's agent_version (owned by the client). */
const char *agent_version (const struct agent_client *a);

/* Sends req (its id is assigned here) and waits for the frame of the same
   id whose body is `want` (an ErrorReply fails).  *reply is freed with
   chvm__agent__frame__free_unpacked (*reply, NULL). */
int agent_call (struct agent_client *a, Chvm__Agent__Frame *req, Chvm__Agent__Frame__BodyCase want,
                int timeout_ms, Chvm__Agent__Frame **reply, struct err **err);

int agent_ping (struct agent_client *a, int timeout_ms, struct err **err);
/* *reply is a HealthReply / WaitReadyReply frame, freed as for agent_call. */
int agent_health (struct agent_client *a, int timeout_ms, Chvm__Agent__Frame **reply,
                  struct err **err);
int agent_wait_ready (struct agent_client *a, unsigned deadline_ms, unsigned cdp_port,
                      Chvm__Agent__Frame **reply, struct err **err);
struct agent_quiesced
{
  unsigned frozen;                                      /* filesystems frozen */
  int64_t freed_kb;                                     /* MemAvailable after minus before */
  uint64_t mem_total_kb, mem_available_kb, mem_free_kb; /* after (0: an older agent) */
};
int agent_quiesce (struct agent_client *a, unsigned freeze_timeout_ms, bool drop_caches,
                   bool compact, struct agent_quiesced *out, int timeout_ms, struct err **err);
/* host_time_ns 0 leaves the guest clock alone.  restored: the VM was just
   restored from a snapshot and a is its first connection; the agent closes
   every connection accepted before it (*closed: how many). */
int agent_thaw (struct agent_client *a, uint64_t host_time_ns, bool restored, unsigned *thawed,
                unsigned *closed, int64_t *clock_step_ns, int timeout_ms, struct err **err);
int agent_shutdown (struct agent_client *a, bool poweroff, int timeout_ms, struct err **err);

/* A VM forked from a template: its hostname and machine-id ("" leaves
   each), entropy (at most 512 bytes) for the kernel's pool and a reseed.
   *out: what the agent says it changed. */
struct agent_identity
{
  bool hostname_set, machine_id_set, reseeded;
  unsigned entropy_bytes;
};
int agent_identity (struct agent_client *a, const char *hostname, const char *machine_id,
                    const uint8_t *entropy, size_t entropy_len, struct agent_identity *out,
                    int timeout_ms, struct err **err);

/* What to run in the guest: argv; env (NAME=VALUE..., NULL-terminated;
   NULL: the agent's own, else only these and a default PATH); cwd (NULL or
   "": /); input sent to its stdin when has_input (else /dev/null);
   timeout_ms: SIGKILL after it (0: none). */
struct agent_exec_req
{
  char *const *argv;
  char *const *env;
  const char *cwd;
  const void *input;
  size_t input_len;
  bool has_input;
  unsigned timeout_ms;
};

/* Runs rq in the guest.  on_output gets each chunk (stream 1 stdout, 2
   stderr) as it arrives; *code is the exit status or 128+signal. */
typedef void (*agent_output_fn) (void *arg, int stream, const uint8_t *data, size_t len);
int agent_exec (struct agent_client *a, const struct agent_exec_req *rq, int timeout_ms,
                agent_output_fn on_output, void *arg, int *code, int *signal, struct err **err);

/* Turns the connection into a raw stream to guest 127.0.0.1:port.  On
   success returns the fd and frees a (even on failure: the client is
   consumed).  Bytes that already arrived from the guest port are copied to
   *early (malloc'ed, may be NULL with *early_len 0): send them first. */
int agent_forward (struct agent_client *a, unsigned port, int timeout_ms, uint8_t **early,
                   size_t *early_len, struct err **err);

/* CLOCK_REALTIME now, in ns, for agent_thaw. */
uint64_t agent_now_ns (void);

#endif
