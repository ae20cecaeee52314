/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for protobuf Frames on both ends.
 * Agent path: the input as one Frame payload, unpacked and checked the way
 * dispatch.c admits requests (every authed/frozen combination, Exec
 * validation).  Host path: the input as the byte stream an agent sends,
 * read by host-tool/agent_client.c through a socketpair: Hello, then an
 * Exec whose output frames and exit are consumed until the stream ends.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "agent/agent_client.h"

static void
agent_path (const uint8_t *data, size_t size)
{
  Frame *f = chvm__agent__frame__unpack (NULL, size, data);
  const char *why = "";

  if (f == NULL)
    return;
  for (int authed = 0; authed < 2; authed++)
    for (int frozen = 0; frozen < 2; frozen++)
      {
        Chvm__Agent__ErrorCode c = dispatch_admit (f, authed, frozen, &why);
        /* Nothing but Hello gets through before authentication. */
        if (!authed && c == CHVM__AGENT__ERROR_CODE__ERROR_UNSPECIFIED
            && f->body_case != CHVM__AGENT__FRAME__BODY_HELLO)
          abort ();
        if (frozen && c == CHVM__AGENT__ERROR_CODE__ERROR_UNSPECIFIED
            && f->body_case == CHVM__AGENT__FRAME__BODY_EXEC)
          abort ();
      }
  if (f->body_case == CHVM__AGENT__FRAME__BODY_EXEC)
    exec_validate (f->exec, &why);
  /* A decoded frame re-encodes within the frame limit plus slack. */
  if (chvm__agent__frame__get_packed_size (f) > size + 64)
    abort ();
  chvm__agent__frame__free_unpacked (f, NULL);
}

static void
discard (void *arg, int stream, const uint8_t *d, size_t len)
{
  (void) arg;
  (void) stream;
  (void) d;
  (void) len;
}

static void
host_path (const uint8_t *data, size_t size)
{
  int sv[2], code, sig, sz = 1 << 20;
  struct err *e = NULL;
  struct agent_client *a;
  char *argv[] = { "true", NULL };

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return;
  setsockopt (sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt (sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  if (size > 0 && write (sv[1], data, size) != (ssize_t) size)
    {
      close (sv[0]);
      close (sv[1]);
      return;
    }
  shutdown (sv[1], SHUT_WR); /* the client sees EOF, never waits */
  a = agent_open (sv[0], "token", 1000, &e);
  if (a != NULL)
    {
      agent_exec (a, &(struct agent_exec_req){ .argv = argv }, 1000, discard, NULL, &code, &sig,
                  &e);
      agent_close (a);
    }
  err_release (&e);
  close (sv[1]);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  agent_path (data, size);
  host_path (data, size);
  return 0;
}
