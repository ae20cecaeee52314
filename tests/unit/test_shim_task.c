/* SPDX-License-Identifier: Apache-2.0 */
/* shim/task.c's dispatch through the real ttrpc server on a unix socket:
   every request is unpacked by its method's message type (garbage is
   InvalidArgument), the task it names is found (another id, or an exec id,
   is NotFound), an unknown method or service is Unimplemented, and State
   answers the task's fields. */
#include <event2/event.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "shim.h"
#include "ttrpc.h"

struct fixture
{
  struct event_base *base;
  struct ttrpc_server *server;
  struct shim s;
  struct task *t;
  char dir[64];
  int cli;
};

static int
setup (void **state)
{
  struct fixture *f = calloc (1, sizeof *f);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  int lfd;

  assert_non_null (f);
  strcpy (f->dir, "/tmp/chvm-test-shim-task-XXXXXX");
  assert_non_null (mkdtemp (f->dir));
  snprintf (a.sun_path, sizeof a.sun_path, "%s/s", f->dir);
  lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (lfd >= 0);
  assert_int_equal (bind (lfd, (struct sockaddr *) &a, sizeof a), 0);
  assert_int_equal (listen (lfd, 4), 0);
  assert_non_null (f->base = event_base_new ());
  assert_int_equal (ttrpc_server_new (f->base, lfd, task_dispatch, &f->s, &f->server, NULL), 0);
  f->s.base = f->base;
  assert_non_null (f->t = calloc (1, sizeof *f->t));
  f->t->vmm_pidfd = f->t->stdout_fd = f->t->stderr_fd = -1;
  f->t->id = strdup ("c1");
  f->t->bundle = strdup ("/run/b");
  f->t->stdin_path = strdup ("");
  f->t->stdout_path = strdup ("/run/out");
  f->t->stderr_path = strdup ("");
  f->t->pid = 4242;
  f->t->status = CONTAINERD__V1__TYPES__STATUS__RUNNING;
  f->s.task = f->t;
  f->cli = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal (connect (f->cli, (struct sockaddr *) &a, sizeof a), 0);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  char path[128];

  close (f->cli);
  ttrpc_server_free (f->server);
  task_free (f->t);
  event_base_free (f->base);
  snprintf (path, sizeof path, "%s/s", f->dir);
  unlink (path);
  rmdir (f->dir);
  free (f);
  return 0;
}

/* Sends one request (payload: msg packed, or raw bytes) and returns the
   response, running the server's loop until it comes. */
static Ttrpc__Response *
call (struct fixture *f, const char *service, const char *method, const ProtobufCMessage *msg,
      const uint8_t *raw, size_t raw_len)
{
  Ttrpc__Request r = TTRPC__REQUEST__INIT;
  struct ttrpc_header h = { .stream_id = 1, .type = TTRPC_TYPE_REQUEST };
  uint8_t payload[1024], frame[2048], *data;
  size_t n = 0, got = 0;

  if (msg != NULL)
    {
      assert_true (protobuf_c_message_get_packed_size (msg) <= sizeof payload);
      raw_len = protobuf_c_message_pack (msg, payload);
      raw = payload;
    }
  r.service = (char *) service;
  r.method = (char *) method;
  r.payload.data = (uint8_t *) raw;
  r.payload.len = raw_len;
  h.length = (uint32_t) ttrpc__request__get_packed_size (&r);
  assert_true (h.length + TTRPC_HEADER_LEN <= sizeof frame);
  ttrpc_header_encode (&h, frame);
  ttrpc__request__pack (&r, frame + TTRPC_HEADER_LEN);
  assert_int_equal (write (f->cli, frame, TTRPC_HEADER_LEN + h.length),
                    (ssize_t) (TTRPC_HEADER_LEN + h.length));
  /* The server's loop until the whole response is in (bounded). */
  for (int i = 0; i < 500 && (got < TTRPC_HEADER_LEN || got < TTRPC_HEADER_LEN + n); i++)
    {
      struct pollfd p = { .fd = f->cli, .events = POLLIN };
      ssize_t k;

      event_base_loop (f->base, EVLOOP_NONBLOCK);
      if (poll (&p, 1, 10) == 1 && (k = read (f->cli, frame + got, sizeof frame - got)) > 0)
        got += (size_t) k;
      if (got >= TTRPC_HEADER_LEN)
        {
          assert_int_equal (ttrpc_header_parse (frame, &h, NULL), 0);
          n = h.length;
        }
    }
  assert_true (got >= TTRPC_HEADER_LEN && got == TTRPC_HEADER_LEN + n);
  assert_int_equal (h.type, TTRPC_TYPE_RESPONSE);
  data = frame + TTRPC_HEADER_LEN;
  return ttrpc__response__unpack (NULL, n, data);
}

static int
code_of (Ttrpc__Response *r)
{
  int c;

  assert_non_null (r);
  c = r->status != NULL ? r->status->code : 0;
  ttrpc__response__free_unpacked (r, NULL);
  return c;
}

static void
test_state_of_the_task (void **state)
{
  struct fixture *f = *state;
  Containerd__Task__V2__StateRequest q = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
  Containerd__Task__V2__StateResponse *a;
  Ttrpc__Response *r;

  q.id = (char *) "c1";
  r = call (f, "containerd.task.v2.Task", "State", &q.base, NULL, 0);
  assert_non_null (r);
  assert_true (r->status == NULL || r->status->code == TTRPC_OK);
  a = containerd__task__v2__state_response__unpack (NULL, r->payload.len, r->payload.data);
  assert_non_null (a);
  assert_string_equal (a->id, "c1");
  assert_string_equal (a->bundle, "/run/b");
  assert_string_equal (a->stdout, "/run/out");
  assert_int_equal (a->pid, 4242);
  assert_int_equal (a->status, CONTAINERD__V1__TYPES__STATUS__RUNNING);
  containerd__task__v2__state_response__free_unpacked (a, NULL);
  ttrpc__response__free_unpacked (r, NULL);
}

static void
test_other_id_or_exec_is_not_found (void **state)
{
  struct fixture *f = *state;
  Containerd__Task__V2__StateRequest q = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
  Containerd__Task__V2__PidsRequest p = CONTAINERD__TASK__V2__PIDS_REQUEST__INIT;

  q.id = (char *) "c2";
  assert_int_equal (code_of (call (f, "containerd.task.v3.Task", "State", &q.base, NULL, 0)),
                    TTRPC_NOT_FOUND);
  q.id = (char *) "c1";
  q.exec_id = (char *) "e1";
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "State", &q.base, NULL, 0)),
                    TTRPC_NOT_FOUND);
  p.id = (char *) "";
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Pids", &p.base, NULL, 0)),
                    TTRPC_NOT_FOUND);
  p.id = (char *) "c1";
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Pids", &p.base, NULL, 0)),
                    TTRPC_OK);
}

static void
test_garbage_and_unknown (void **state)
{
  struct fixture *f = *state;
  static const uint8_t garbage[] = { 0x0a, 0x7f, 'c' }; /* a string longer than the data */

  assert_int_equal (
      code_of (call (f, "containerd.task.v2.Task", "Kill", NULL, garbage, sizeof garbage)),
      TTRPC_INVALID_ARGUMENT);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Checkpoint", NULL, NULL, 0)),
                    TTRPC_UNIMPLEMENTED);
  assert_int_equal (code_of (call (f, "containerd.task.v9.Task", "State", NULL, NULL, 0)),
                    TTRPC_UNIMPLEMENTED);
  /* Create while a task exists. */
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Create", NULL, NULL, 0)),
                    TTRPC_ALREADY_EXISTS);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_state_of_the_task, setup, teardown),
    cmocka_unit_test_setup_teardown (test_other_id_or_exec_is_not_found, setup, teardown),
    cmocka_unit_test_setup_teardown (test_garbage_and_unknown, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
