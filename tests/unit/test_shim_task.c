/* SPDX-License-Identifier: Apache-2.0 */
/* shim/task.c's dispatch through the real ttrpc server on a unix socket:
   every request is unpacked by its method's message type (garbage is
   InvalidArgument), the task it names is found (another id, or an exec id,
   is NotFound), an unknown method or service is Unimplemented, and State
   answers the task's fields.  Pause and Resume run a stand-in chvm (a
   script recording its arguments) and publish through a stand-in
   `containerd publish`; Stats' Metrics are packed as containerd reads them.
   A CRI pod's shim: its sandbox's placeholder process, its two tasks, a
   second container of the pod refused. */
#include <event2/event.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "events.h"
#include "github.com/containerd/cgroups/v2/stats/metrics.pb-c.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "shim.h"
#include "spec.h"
#include "stats.h"
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

/* An executable script path in f's dir: "#!/bin/sh" and body. */
static void
script (struct fixture *f, const char *name, const char *body, char *path, size_t len)
{
  FILE *o;

  snprintf (path, len, "%s/%s", f->dir, name);
  assert_non_null (o = fopen (path, "w"));
  fprintf (o, "#!/bin/sh\n%s\n", body);
  assert_int_equal (fclose (o), 0);
  assert_int_equal (chmod (path, 0755), 0);
}

/* The text of f's dir/name ("" when absent). */
static void
slurp (struct fixture *f, const char *name, char *out, size_t len)
{
  char path[128];
  FILE *i;
  size_t n = 0;

  snprintf (path, sizeof path, "%s/%s", f->dir, name);
  if ((i = fopen (path, "r")) != NULL)
    {
      n = fread (out, 1, len - 1, i);
      fclose (i);
    }
  out[n] = '\0';
}

/* A RUNNING task id of f's shim, its VM ctr-ns1-ID (never started). */
static struct task *
new_task (struct fixture *f, const char *id)
{
  struct task *t = calloc (1, sizeof *t);

  assert_non_null (t);
  t->s = &f->s;
  t->vmm_pidfd = t->stdout_fd = t->stderr_fd = -1;
  t->id = strdup (id);
  t->bundle = strdup ("/run/b");
  t->stdin_path = strdup ("");
  t->stdout_path = strdup ("/run/out");
  t->stderr_path = strdup ("");
  t->pid = 4242;
  t->status = CONTAINERD__V1__TYPES__STATUS__RUNNING;
  snprintf (t->vm, sizeof t->vm, "ctr-ns1-%s", id);
  return t;
}

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
  snprintf (f->s.state_root, sizeof f->s.state_root, "%s", f->dir);
  /* chvm and containerd's publish, each recording its arguments. */
  script (f, "chvm", "echo \"$@\" >> \"$(dirname \"$0\")/chvm.args\"", f->s.chvm, sizeof f->s.chvm);
  script (f, "publish", "cat >/dev/null; echo \"$@\" >> \"$(dirname \"$0\")/published\"",
          f->s.publish_binary, sizeof f->s.publish_binary);
  assert_non_null (f->s.events = events_new (f->base, f->s.publish_binary, "/run/c.sock", "ns1"));
  f->t = f->s.tasks[0] = new_task (f, "c1");
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

  alarm (0); /* a test that failed under its alarm */
  close (f->cli);
  ttrpc_server_free (f->server);
  task_free (f->t);
  events_free (f->s.events);
  event_base_free (f->base);
  for (const char *const *n
       = (const char *const[]){ "s", "chvm", "chvm.args", "publish", "published",
                                "vms/ctr-ns1-c1/vmm.pid", "vms/ctr-ns1-c1/vm.json",
                                "vms/ctr-ns1-c1/pid", "vms/ctr-ns1-c1/console.log.1", NULL };
       *n != NULL; n++)
    {
      snprintf (path, sizeof path, "%s/%s", f->dir, *n);
      unlink (path);
    }
  snprintf (path, sizeof path, "%s/vms/ctr-ns1-c1", f->dir);
  rmdir (path);
  snprintf (path, sizeof path, "%s/vms", f->dir);
  rmdir (path);
  snprintf (path, sizeof path, "%s/b/config.json", f->dir);
  unlink (path);
  snprintf (path, sizeof path, "%s/b", f->dir);
  rmdir (path);
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
  /* Create of a task that exists. */
  {
    Containerd__Task__V2__CreateTaskRequest c = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;

    c.id = (char *) "c1";
    assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Create", &c.base, NULL, 0)),
                      TTRPC_ALREADY_EXISTS);
  }
}

/* The task's status as State answers it. */
static Containerd__V1__Types__Status
state_of (struct fixture *f)
{
  Containerd__Task__V2__StateRequest q = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
  Containerd__Task__V2__StateResponse *a;
  Ttrpc__Response *r;
  Containerd__V1__Types__Status st;

  q.id = (char *) "c1";
  assert_non_null (r = call (f, "containerd.task.v2.Task", "State", &q.base, NULL, 0));
  assert_non_null (
      a = containerd__task__v2__state_response__unpack (NULL, r->payload.len, r->payload.data));
  st = a->status;
  containerd__task__v2__state_response__free_unpacked (a, NULL);
  ttrpc__response__free_unpacked (r, NULL);
  return st;
}

/* Runs the loop until the queued events are published (bounded). */
static void
drain_events (struct fixture *f)
{
  for (int i = 0; i < 500 && !events_idle (f->s.events); i++)
    {
      event_base_loop (f->base, EVLOOP_NONBLOCK);
      poll (NULL, 0, 10);
    }
  assert_true (events_idle (f->s.events));
}

static void
test_pause_and_resume (void **state)
{
  struct fixture *f = *state;
  Containerd__Task__V2__PauseRequest p = CONTAINERD__TASK__V2__PAUSE_REQUEST__INIT;
  Containerd__Task__V2__ResumeRequest q = CONTAINERD__TASK__V2__RESUME_REQUEST__INIT;
  char text[1024], want[512];

  p.id = q.id = (char *) "c1";
  /* Resume of a running task, Pause of another id. */
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Resume", &q.base, NULL, 0)),
                    TTRPC_FAILED_PRECONDITION);
  p.id = (char *) "c2";
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Pause", &p.base, NULL, 0)),
                    TTRPC_NOT_FOUND);
  p.id = (char *) "c1";
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Pause", &p.base, NULL, 0)),
                    TTRPC_OK);
  assert_int_equal (state_of (f), CONTAINERD__V1__TYPES__STATUS__PAUSED);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Pause", &p.base, NULL, 0)),
                    TTRPC_FAILED_PRECONDITION);
  /* A paused task is not deleted, nor does it take an exec. */
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Delete", &p.base, NULL, 0)),
                    TTRPC_FAILED_PRECONDITION);
  assert_int_equal (code_of (call (f, "containerd.task.v3.Task", "Resume", &q.base, NULL, 0)),
                    TTRPC_OK);
  assert_int_equal (state_of (f), CONTAINERD__V1__TYPES__STATUS__RUNNING);
  slurp (f, "chvm.args", text, sizeof text);
  snprintf (want, sizeof want,
            "--state-dir %s pause ctr-ns1-c1\n--state-dir %s resume ctr-ns1-c1\n", f->dir, f->dir);
  assert_string_equal (text, want);
  drain_events (f);
  slurp (f, "published", text, sizeof text);
  assert_string_equal (text,
                       "--address /run/c.sock publish --topic /tasks/paused --namespace ns1\n"
                       "--address /run/c.sock publish --topic /tasks/resumed --namespace ns1\n");
}

/* chvm pause failing: Internal with its last line, the task runs on. */
static void
test_pause_fails (void **state)
{
  struct fixture *f = *state;
  Containerd__Task__V2__PauseRequest p = CONTAINERD__TASK__V2__PAUSE_REQUEST__INIT;
  Ttrpc__Response *r;

  script (f, "chvm", "echo \"chvm pause: VM 'x' is standby, not running\" >&2; exit 1", f->s.chvm,
          sizeof f->s.chvm);
  p.id = (char *) "c1";
  assert_non_null (r = call (f, "containerd.task.v2.Task", "Pause", &p.base, NULL, 0));
  assert_non_null (r->status);
  assert_int_equal (r->status->code, TTRPC_INTERNAL);
  assert_string_equal (r->status->message,
                       "chvm pause: chvm pause: VM 'x' is standby, not running");
  ttrpc__response__free_unpacked (r, NULL);
  assert_int_equal (state_of (f), CONTAINERD__V1__TYPES__STATUS__RUNNING);
  assert_true (events_idle (f->s.events));
}

/* A chvm whose run and restore start a stand-in VMM (a shell whose
   command line names the VM's dir, as a VMM's does) in the background,
   record its pid in vm.json's runtime and answer it as `run --json` does;
   whose standby ends that VMM, as chvm's does; and which records its
   arguments.  With plant, its restore leaves FIFOs at vmm.pid and
   console.log.1 (there only after a rotation), as the VMM's uid may plant
   them: the shim must open neither (that would block).  The task is made
   CREATED, to be started. */
static void
standby_chvm (struct fixture *f, bool plant)
{
  char text[1536];

  snprintf (
      text, sizeof text,
      "d=\"$(dirname \"$0\")\"; echo \"$@\" >> \"$d/chvm.args\"; vm=\"$d/vms/ctr-ns1-c1\"\n"
      "case \" $* \" in\n"
      "*' run '*|*' restore '*) mkdir -p \"$vm\"\n"
      "  sh -c 'for i in $(seq 30); do sleep 1; done' \"$vm/vmm\" </dev/null >/dev/null 2>&1 &\n"
      "  printf '{\"version\":1,\"name\":\"ctr-ns1-c1\",\"backend\":\"ch\",\"state\":\"running\","
      "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64,\"publish\":[]},"
      "\"runtime\":{\"vmm_pid\":%%d}}' $! > \"$vm/vm.json\"\n"
      "  echo $! > \"$vm/pid\"; echo \"{\\\"pid\\\": $!}\"\n"
      "  %s;;\n"
      "*' standby '*) kill \"$(cat \"$vm/pid\")\";;\n"
      "esac",
      plant ? "case \" $* \" in *' restore '*) mkfifo \"$vm/vmm.pid\" \"$vm/console.log.1\";; esac"
            : ":");
  script (f, "chvm", text, f->s.chvm, sizeof f->s.chvm);
  f->t->status = CONTAINERD__V1__TYPES__STATUS__CREATED;
  f->t->standby = true;
}

/* Runs the loop until t is STOPPED (bounded: the VMM's exit waits up to
   2 s for a console logger that these VMs lack). */
static void
until_stopped (struct fixture *f, struct task *t)
{
  for (int i = 0; i < 500 && t->status != CONTAINERD__V1__TYPES__STATUS__STOPPED; i++)
    {
      event_base_loop (f->base, EVLOOP_NONBLOCK);
      poll (NULL, 0, 10);
    }
  assert_int_equal (t->status, CONTAINERD__V1__TYPES__STATUS__STOPPED);
}

/* io.chvm.pause=standby: Pause is `chvm standby` (whose end of the VMM is
   not the task's exit), PAUSED with no process and no stats; Resume is
   `chvm restore`, whose new VMM the task's pid and watch follow: its exit
   is the task's. */
static void
standby_and_restore (struct fixture *f, bool plant)
{
  Containerd__Task__V2__StartRequest st = CONTAINERD__TASK__V2__START_REQUEST__INIT;
  Containerd__Task__V2__PauseRequest p = CONTAINERD__TASK__V2__PAUSE_REQUEST__INIT;
  Containerd__Task__V2__ResumeRequest q = CONTAINERD__TASK__V2__RESUME_REQUEST__INIT;
  Containerd__Task__V2__PidsResponse *a;
  struct task *t = f->t;
  Ttrpc__Response *r;
  char text[1024], want[512];
  uint32_t first;

  standby_chvm (f, plant);
  st.id = p.id = q.id = (char *) "c1";
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Start", &st.base, NULL, 0)),
                    TTRPC_OK);
  assert_int_equal (t->status, CONTAINERD__V1__TYPES__STATUS__RUNNING);
  first = t->pid;
  assert_int_equal (kill ((pid_t) first, 0), 0);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Pause", &p.base, NULL, 0)),
                    TTRPC_OK);
  assert_true (t->stood_by);
  for (int i = 0; i < 50; i++) /* the VMM's end, seen by no one */
    {
      event_base_loop (f->base, EVLOOP_NONBLOCK);
      poll (NULL, 0, 10);
    }
  assert_int_equal (state_of (f), CONTAINERD__V1__TYPES__STATUS__PAUSED);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Stats", &p.base, NULL, 0)),
                    TTRPC_FAILED_PRECONDITION);
  assert_non_null (r = call (f, "containerd.task.v2.Task", "Pids", &p.base, NULL, 0));
  assert_non_null (
      a = containerd__task__v2__pids_response__unpack (NULL, r->payload.len, r->payload.data));
  assert_int_equal (a->n_processes, 0);
  containerd__task__v2__pids_response__free_unpacked (a, NULL);
  ttrpc__response__free_unpacked (r, NULL);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Resume", &q.base, NULL, 0)),
                    TTRPC_OK);
  assert_int_equal (state_of (f), CONTAINERD__V1__TYPES__STATUS__RUNNING);
  assert_false (t->stood_by);
  assert_true (t->pid != first && t->vmm_pidfd >= 0);
  assert_int_equal (kill ((pid_t) t->pid, SIGKILL), 0);
  until_stopped (f, t);
  assert_int_equal (t->exit_status, 255); /* no console line, not killed through the task */
  slurp (f, "chvm.args", text, sizeof text);
  snprintf (want, sizeof want,
            "--state-dir %s --json run --no-wait --name ctr-ns1-c1 \n--state-dir %s standby "
            "ctr-ns1-c1\n--state-dir %s restore ctr-ns1-c1\n",
            f->dir, f->dir, f->dir);
  assert_string_equal (text, want);
  drain_events (f);
  slurp (f, "published", text, sizeof text);
  assert_string_equal (text,
                       "--address /run/c.sock publish --topic /tasks/start --namespace ns1\n"
                       "--address /run/c.sock publish --topic /tasks/paused --namespace ns1\n"
                       "--address /run/c.sock publish --topic /tasks/resumed --namespace ns1\n"
                       "--address /run/c.sock publish --topic /tasks/exit --namespace ns1\n");
}

static void
test_standby_and_restore (void **state)
{
  standby_and_restore (*state, false);
}

/* The same with FIFOs planted at vmm.pid and console.log.1 after the
   restore: the new VMM is the one vm.json names, its exit status comes
   without reading console.log.1, and nothing blocks on a FIFO (alarm ends
   the test if something does). */
static void
test_restore_ignores_planted_pid_file (void **state)
{
  struct fixture *f = *state;
  char path[128];
  struct stat st;

  alarm (20);
  standby_and_restore (f, true);
  alarm (0);
  snprintf (path, sizeof path, "%s/vms/ctr-ns1-c1/console.log.1", f->dir);
  assert_int_equal (lstat (path, &st), 0);
  assert_true (S_ISFIFO (st.st_mode)); /* the plant was there all along */
}

/* Kill of a task in standby (a guest without the agent: no quiesce): `chvm
   stop` discards the snapshot, and that is the task's exit, 128+signal. */
static void
test_kill_in_standby (void **state)
{
  struct fixture *f = *state;
  Containerd__Task__V2__StartRequest st = CONTAINERD__TASK__V2__START_REQUEST__INIT;
  Containerd__Task__V2__PauseRequest p = CONTAINERD__TASK__V2__PAUSE_REQUEST__INIT;
  Containerd__Task__V2__KillRequest k = CONTAINERD__TASK__V2__KILL_REQUEST__INIT;
  char text[1024], want[512];

  standby_chvm (f, false);
  f->t->no_agent = true;
  st.id = p.id = k.id = (char *) "c1";
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Start", &st.base, NULL, 0)),
                    TTRPC_OK);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Pause", &p.base, NULL, 0)),
                    TTRPC_OK);
  k.signal = SIGTERM;
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Kill", &k.base, NULL, 0)),
                    TTRPC_OK);
  until_stopped (f, f->t);
  assert_int_equal (f->t->exit_status, 128 + SIGTERM);
  slurp (f, "chvm.args", text, sizeof text);
  snprintf (want, sizeof want,
            "--state-dir %s --json run --no-wait --name ctr-ns1-c1 \n--state-dir %s standby "
            "--no-quiesce ctr-ns1-c1\n--state-dir %s stop --time 0 ctr-ns1-c1\n",
            f->dir, f->dir, f->dir);
  assert_string_equal (text, want);
  drain_events (f);
}

/* Stats of a task that is not running, and of one whose VM has no cgroup
   (this test's VM was never started): errors, not a crash. */
static void
test_stats_errors (void **state)
{
  struct fixture *f = *state;
  Containerd__Task__V2__StatsRequest q = CONTAINERD__TASK__V2__STATS_REQUEST__INIT;

  q.id = (char *) "c1";
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Stats", &q.base, NULL, 0)),
                    TTRPC_INTERNAL);
  f->t->status = CONTAINERD__V1__TYPES__STATUS__CREATED;
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Stats", &q.base, NULL, 0)),
                    TTRPC_FAILED_PRECONDITION);
}

/* What stats_pack makes is the Metrics containerd unpacks, within
   STATS_PACKED_MAX even with every figure at its largest. */
static void
test_stats_pack (void **state)
{
  struct cgroup_stats cs = { .pids_current = 3,
                             .pids_limit = 1024,
                             .cpu_usage_usec = 5000,
                             .cpu_user_usec = 3000,
                             .cpu_system_usec = 2000,
                             .cpu_nr_throttled = 1,
                             .memory_usage = 1u << 30,
                             .memory_limit = UINT64_MAX };
  uint8_t buf[STATS_PACKED_MAX];
  Io__Containerd__Cgroups__V2__Metrics *m;
  size_t n = stats_pack (&cs, buf);

  (void) state;
  assert_non_null (m = io__containerd__cgroups__v2__metrics__unpack (NULL, n, buf));
  assert_non_null (m->pids);
  assert_non_null (m->cpu);
  assert_non_null (m->memory);
  assert_int_equal (m->pids->current, 3);
  assert_int_equal (m->pids->limit, 1024);
  assert_int_equal (m->cpu->usage_usec, 5000);
  assert_int_equal (m->cpu->user_usec, 3000);
  assert_int_equal (m->cpu->system_usec, 2000);
  assert_int_equal (m->cpu->nr_throttled, 1);
  assert_int_equal (m->memory->usage, 1u << 30);
  assert_true (m->memory->usage_limit == UINT64_MAX);
  assert_null (m->io);
  io__containerd__cgroups__v2__metrics__free_unpacked (m, NULL);
  memset (&cs, 0xff, sizeof cs);
  assert_true (stats_pack (&cs, buf) <= STATS_PACKED_MAX);
}

/* A bundle dir (f's dir/b) whose config.json is a pod's: the sandbox
   (type "sandbox") or a container (type "container") of pod. */
static void
pod_bundle (struct fixture *f, const char *type, const char *pod, char *dir, size_t len)
{
  char path[160];
  FILE *o;

  snprintf (dir, len, "%s/b", f->dir);
  mkdir (dir, 0700);
  snprintf (path, sizeof path, "%s/config.json", dir);
  assert_non_null (o = fopen (path, "w"));
  fprintf (o,
           "{\"process\":{\"args\":[\"/pause\"]},\"annotations\":{\"" SPEC_ANN_TYPE
           "\":\"%s\",\"" SPEC_ANN_SANDBOX "\":\"%s\"},\"linux\":{\"namespaces\":[{\"type\":"
           "\"network\",\"path\":\"/var/run/netns/cni-t\"}]}}",
           type, pod);
  assert_int_equal (fclose (o), 0);
}

/* Create of id from the bundle pod_bundle writes: the answer's code. */
static int
create (struct fixture *f, const char *id, const char *type, const char *pod)
{
  Containerd__Task__V2__CreateTaskRequest c = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
  char dir[128];

  pod_bundle (f, type, pod, dir, sizeof dir);
  c.id = (char *) id;
  c.bundle = dir;
  return code_of (call (f, "containerd.task.v2.Task", "Create", &c.base, NULL, 0));
}

/* The shim of pod p1, the fixture's c1 gone: the sandbox's Create. */
static void
pod_shim (struct fixture *f)
{
  task_free (f->t);
  f->t = f->s.tasks[0] = NULL;
  snprintf (f->s.id, sizeof f->s.id, "p1");
  assert_int_equal (create (f, "p1", "sandbox", "p1"), TTRPC_OK);
  assert_non_null (f->s.tasks[0]);
  assert_true (f->s.tasks[0]->sandbox);
  assert_string_equal (f->s.tasks[0]->netns, "cni-t"); /* what the pod's container takes */
}

/* The sandbox's process is a placeholder: Start runs it, Kill ends it with
   its signal's status, Delete takes the task away; it has no VM to pause
   or to exec in. */
static void
test_pod_sandbox_placeholder (void **state)
{
  struct fixture *f = *state;
  Containerd__Task__V2__StartRequest st = CONTAINERD__TASK__V2__START_REQUEST__INIT;
  Containerd__Task__V2__KillRequest k = CONTAINERD__TASK__V2__KILL_REQUEST__INIT;
  Containerd__Task__V2__DeleteRequest d = CONTAINERD__TASK__V2__DELETE_REQUEST__INIT;
  Containerd__Task__V2__PauseRequest p = CONTAINERD__TASK__V2__PAUSE_REQUEST__INIT;
  Containerd__Task__V2__StartResponse *a;
  Ttrpc__Response *r;
  struct task *t;
  uint32_t pid;

  pod_shim (f);
  t = f->s.tasks[0];
  st.id = k.id = d.id = p.id = (char *) "p1";
  assert_non_null (r = call (f, "containerd.task.v2.Task", "Start", &st.base, NULL, 0));
  assert_true (r->status == NULL || r->status->code == TTRPC_OK);
  assert_non_null (
      a = containerd__task__v2__start_response__unpack (NULL, r->payload.len, r->payload.data));
  pid = a->pid;
  containerd__task__v2__start_response__free_unpacked (a, NULL);
  ttrpc__response__free_unpacked (r, NULL);
  assert_true (pid != (uint32_t) getpid () && pid == t->pid);
  assert_int_equal (kill ((pid_t) pid, 0), 0);
  assert_int_equal (t->status, CONTAINERD__V1__TYPES__STATUS__RUNNING);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Pause", &p.base, NULL, 0)),
                    TTRPC_FAILED_PRECONDITION);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Stats", &p.base, NULL, 0)),
                    TTRPC_FAILED_PRECONDITION);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Delete", &d.base, NULL, 0)),
                    TTRPC_FAILED_PRECONDITION);
  k.signal = SIGKILL;
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Kill", &k.base, NULL, 0)),
                    TTRPC_OK);
  for (int i = 0; i < 500 && t->status != CONTAINERD__V1__TYPES__STATUS__STOPPED; i++)
    {
      event_base_loop (f->base, EVLOOP_NONBLOCK);
      poll (NULL, 0, 10);
    }
  assert_int_equal (t->status, CONTAINERD__V1__TYPES__STATUS__STOPPED);
  assert_int_equal (t->exit_status, 128 + SIGKILL);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Delete", &d.base, NULL, 0)),
                    TTRPC_OK);
  assert_null (f->s.tasks[0]);
  assert_true (kill ((pid_t) pid, 0) < 0);
  drain_events (f);
}

/* Two tasks in one shim, each found by its id; a second container of the
   pod, a container of another pod and a task of no pod are refused, and
   Shutdown keeps the shim while a task is there. */
static void
test_pod_two_tasks (void **state)
{
  struct fixture *f = *state;
  Containerd__Task__V2__StateRequest q = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
  Containerd__Task__V2__ShutdownRequest sd = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;

  pod_shim (f);
  /* The pod's container, made as setup makes one (its Create would build
     a root disk). */
  f->t = f->s.tasks[1] = new_task (f, "c1");
  q.id = (char *) "p1";
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "State", &q.base, NULL, 0)),
                    TTRPC_OK);
  assert_int_equal (state_of (f), CONTAINERD__V1__TYPES__STATUS__RUNNING);
  assert_int_equal (create (f, "c2", "container", "p1"), TTRPC_FAILED_PRECONDITION);
  assert_int_equal (create (f, "c3", "container", "p2"), TTRPC_INVALID_ARGUMENT);
  assert_int_equal (create (f, "c4", "sandbox", "c4"), TTRPC_INVALID_ARGUMENT);
  assert_int_equal (code_of (call (f, "containerd.task.v2.Task", "Shutdown", &sd.base, NULL, 0)),
                    TTRPC_OK);
  assert_false (f->s.shutdown);
  task_free (f->s.tasks[0]);
  f->s.tasks[0] = NULL;
  drain_events (f);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_state_of_the_task, setup, teardown),
    cmocka_unit_test_setup_teardown (test_other_id_or_exec_is_not_found, setup, teardown),
    cmocka_unit_test_setup_teardown (test_garbage_and_unknown, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pause_and_resume, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pause_fails, setup, teardown),
    cmocka_unit_test_setup_teardown (test_standby_and_restore, setup, teardown),
    cmocka_unit_test_setup_teardown (test_restore_ignores_planted_pid_file, setup, teardown),
    cmocka_unit_test_setup_teardown (test_kill_in_standby, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stats_errors, setup, teardown),
    cmocka_unit_test (test_stats_pack),
    cmocka_unit_test_setup_teardown (test_pod_sandbox_placeholder, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pod_two_tasks, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
