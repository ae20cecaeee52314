/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every request, end to end: the host library (host-tool/agent_client.c)
 * against the real agent binary built for the host and run with
 * --test-mode on 127.0.0.1 TCP, plus hostile byte streams on raw sockets.
 * A fake DevTools endpoint and an echo server run in threads of this test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_client.h"
#include "cleanup.h"
#include "frame.h"

#ifndef AGENT_HOST_BIN
#define AGENT_HOST_BIN "build/tests/chvm-agent-host"
#endif
#define TOKEN "00112233445566778899aabbccddeeff"
#define T_MS 10000

static pid_t agent_pid;
static unsigned agent_port;
static char token_path[64];

/* ---- helpers ---- */

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A port that was free a moment ago (the kernel picks it). */
static unsigned
free_port (void)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t sl = sizeof sin;
  int fd = socket (AF_INET, SOCK_STREAM, 0);

  assert_true (fd >= 0);
  assert_int_equal (bind (fd, (struct sockaddr *) &sin, sizeof sin), 0);
  assert_int_equal (getsockname (fd, (struct sockaddr *) &sin, &sl), 0);
  close (fd);
  return ntohs (sin.sin_port);
}

static int
listen_on (unsigned port)
{
  struct sockaddr_in sin = { .sin_family = AF_INET,
                             .sin_port = htons ((uint16_t) port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  int one = 1, fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  assert_int_equal (bind (fd, (struct sockaddr *) &sin, sizeof sin), 0);
  assert_int_equal (listen (fd, 16), 0);
  return fd;
}

static struct agent_client *
open_agent (void)
{
  struct err *e = NULL;
  int fd = dial_tcp ("127.0.0.1", agent_port, T_MS, &e);
  struct agent_client *a;

  if (fd < 0)
    fail_msg ("dial: %s", e->msg);
  a = agent_open (fd, TOKEN, T_MS, &e);
  if (a == NULL)
    fail_msg ("hello: %s", e->msg);
  return a;
}

static int
raw_connect (void)
{
  struct err *e = NULL;
  int fd = dial_tcp ("127.0.0.1", agent_port, T_MS, &e);
  assert_true (fd >= 0);
  return fd;
}

static void
raw_send_bytes (int fd, const void *p, size_t n)
{
  assert_int_equal (send (fd, p, n, MSG_NOSIGNAL), (ssize_t) n);
}

static void
raw_send (int fd, Chvm__Agent__Frame *f)
{
  size_t n = chvm__agent__frame__get_packed_size (f);
  uint8_t *buf = malloc (n + 4);

  frame_put_header (buf, (uint32_t) n);
  chvm__agent__frame__pack (f, buf + 4);
  raw_send_bytes (fd, buf, n + 4);
  free (buf);
}

/* Reads one frame within timeout_ms; NULL on EOF or timeout. */
static Chvm__Agent__Frame *
raw_recv (int fd, int timeout_ms, bool *eof)
{
  struct frame_decoder d;
  int64_t deadline = now_ms () + timeout_ms;
  Chvm__Agent__Frame *out = NULL;

  *eof = false;
  frame_decoder_init (&d);
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      uint8_t b;
      const uint8_t *fr;
      size_t flen;
      struct err *e = NULL;
      int64_t left = deadline - now_ms ();
      if (left <= 0 || poll (&p, 1, (int) left) <= 0)
        break;
      /* One byte at a time: never read past the frame. */
      ssize_t n = recv (fd, &b, 1, 0);
      if (n <= 0)
        {
          *eof = true;
          break;
        }
      assert_true (frame_decoder_feed (&d, &b, 1, &fr, &flen, &e) == 1);
      if (fr != NULL)
        {
          out = chvm__agent__frame__unpack (NULL, flen, fr);
          assert_non_null (out);
          break;
        }
    }
  frame_decoder_free (&d);
  return out;
}

static void
raw_hello (int fd)
{
  Chvm__Agent__Hello h = CHVM__AGENT__HELLO__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *r;
  bool eof;

  h.protocol_version = 1;
  h.token = TOKEN;
  f.id = 1;
  f.body_case = CHVM__AGENT__FRAME__BODY_HELLO;
  f.hello = &h;
  raw_send (fd, &f);
  r = raw_recv (fd, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_HELLO_REPLY);
  chvm__agent__frame__free_unpacked (r, NULL);
}

static bool
agent_alive (void)
{
  struct agent_client *a = open_agent ();
  struct err *e = NULL;
  int r = agent_ping (a, T_MS, &e);
  agent_close (a);
  return r == 0;
}

/* ---- fixtures ---- */

/* Starts an agent on a free port (*port) with --hello-timeout hello_ms and,
   when idle_ms is not NULL, --idle-timeout idle_ms; returns its pid once it
   logs that it listens, or -1. */
static pid_t
spawn_agent (unsigned *port, const char *hello_ms, const char *idle_ms)
{
  int pipefd[2];
  char portstr[16], line[512];
  size_t n = 0;
  int64_t deadline = now_ms () + 15000;
  pid_t pid;

  *port = free_port ();
  snprintf (portstr, sizeof portstr, "%u", *port);
  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    return -1;
  pid = fork ();
  if (pid == 0)
    {
      /* AGENT_BIN runs the same tests against another build, e.g. the
         static musl build/bin/chvm-agent. */
      const char *bin = getenv ("AGENT_BIN") ? getenv ("AGENT_BIN") : AGENT_HOST_BIN;
      /* Dies with this test even when it is killed before teardown. */
      prctl (PR_SET_PDEATHSIG, SIGTERM);
      dup2 (pipefd[1], 2);
      execl (bin, "chvm-agent", "--tcp-port", portstr, "--tcp-bind", "127.0.0.1", "--token-file",
             token_path, "--cdp-port", "1", "--hello-timeout", hello_ms, "--test-mode",
             idle_ms ? "--idle-timeout" : (char *) NULL, idle_ms, (char *) NULL);
      _exit (127);
    }
  close (pipefd[1]);
  /* Wait for the agent's "listening" log line, not for a fixed time. */
  for (;;)
    {
      struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
      int64_t left = deadline - now_ms ();
      ssize_t r;
      if (left <= 0 || poll (&p, 1, (int) left) <= 0 || n + 1 >= sizeof line)
        {
          fprintf (stderr, "agent did not start: %.*s\n", (int) n, line);
          return -1;
        }
      r = read (pipefd[0], line + n, sizeof line - 1 - n);
      if (r <= 0)
        {
          fprintf (stderr, "agent exited: %.*s\n", (int) n, line);
          return -1;
        }
      n += (size_t) r;
      line[n] = '\0';
      if (strstr (line, "listening on tcp") != NULL)
        break;
    }
  /* Keep draining the agent's log to our stderr so it never blocks. */
  if (fork () == 0)
    {
      char buf[4096];
      ssize_t r;
      while ((r = read (pipefd[0], buf, sizeof buf)) > 0)
        if (getenv ("AGENT_LOG") && write (2, buf, (size_t) r) < 0)
          break;
      _exit (0);
    }
  close (pipefd[0]);
  return pid;
}

static int
start_agent (void **state)
{
  int fd;

  (void) state;
  snprintf (token_path, sizeof token_path, "/tmp/chvm-agent-test-token.%d", (int) getpid ());
  fd = open (token_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write (fd, TOKEN "\n", sizeof TOKEN) != (ssize_t) sizeof TOKEN)
    return -1;
  close (fd);
  agent_pid = spawn_agent (&agent_port, "2000", NULL);
  return agent_pid > 0 ? 0 : -1;
}

static int
stop_agent (void **state)
{
  (void) state;
  if (agent_pid > 0)
    {
      kill (agent_pid, SIGTERM);
      waitpid (agent_pid, NULL, 0);
    }
  unlink (token_path);
  return 0;
}

/* ---- Hello ---- */

static void
test_hello_ok (void **state)
{
  struct agent_client *a = open_agent ();

  (void) state;
  assert_string_equal (agent_version (a), "0.1.0");
  agent_close (a);
}

static void
test_hello_bad_token (void **state)
{
  struct err *e = NULL;
  int fd = raw_connect ();

  (void) state;
  assert_null (agent_open (fd, "ffffffffffffffffffffffffffffffff", T_MS, &e));
  assert_non_null (strstr (e->msg, "UNAUTHENTICATED"));
  err_release (&e);
  fd = raw_connect ();
  assert_null (agent_open (fd, NULL, T_MS, &e));
  err_release (&e);
}

static void
test_hello_version (void **state)
{
  Chvm__Agent__Hello h = CHVM__AGENT__HELLO__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *r;
  int fd = raw_connect ();
  bool eof;

  (void) state;
  h.protocol_version = 0;
  h.token = TOKEN;
  f.id = 7;
  f.body_case = CHVM__AGENT__FRAME__BODY_HELLO;
  f.hello = &h;
  raw_send (fd, &f);
  r = raw_recv (fd, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->id, 7);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_ERROR);
  assert_int_equal (r->error->code, CHVM__AGENT__ERROR_CODE__ERROR_VERSION);
  chvm__agent__frame__free_unpacked (r, NULL);
  /* A newer host gets version 1. */
  close (fd);
  fd = raw_connect ();
  h.protocol_version = 9;
  raw_send (fd, &f);
  r = raw_recv (fd, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_HELLO_REPLY);
  assert_int_equal (r->hello_reply->protocol_version, 1);
  assert_true (r->hello_reply->n_capabilities >= 8);
  chvm__agent__frame__free_unpacked (r, NULL);
  close (fd);
}

static void
test_request_before_hello (void **state)
{
  Chvm__Agent__PingRequest p = CHVM__AGENT__PING_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *r;
  int fd = raw_connect ();
  bool eof;

  (void) state;
  f.id = 5;
  f.body_case = CHVM__AGENT__FRAME__BODY_PING;
  f.ping = &p;
  raw_send (fd, &f);
  r = raw_recv (fd, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->error->code, CHVM__AGENT__ERROR_CODE__ERROR_UNAUTHENTICATED);
  chvm__agent__frame__free_unpacked (r, NULL);
  assert_null (raw_recv (fd, T_MS, &eof));
  assert_true (eof); /* and the agent hangs up */
  close (fd);
}

/* ---- requests ---- */

static void
test_ping_health (void **state)
{
  struct agent_client *a = open_agent ();
  Chvm__Agent__Frame *r = NULL;
  struct err *e = NULL;

  (void) state;
  assert_int_equal (agent_ping (a, T_MS, &e), 0);
  assert_int_equal (agent_health (a, T_MS, &r, &e), 0);
  assert_true (r->health_reply->mem_total_kb > 0);
  assert_true (r->health_reply->mem_available_kb > 0);
  assert_true (r->health_reply->mem_available_kb <= r->health_reply->mem_total_kb);
  assert_true (r->health_reply->uptime_s > 0);
  /* --cdp-port 1: nothing answers there. */
  assert_int_equal (r->health_reply->cdp_answer_ms, -1);
  assert_false (r->health_reply->frozen);
  chvm__agent__frame__free_unpacked (r, NULL);
  agent_close (a);
}

struct fake_cdp
{
  int lfd;
  int served;
};

/* Answers /json/version like Chromium's DevTools HTTP server. */
static void *
fake_cdp_thread (void *arg)
{
  struct fake_cdp *fc = arg;
  static const char body[] = "{\"Browser\": \"FakeChrome/1.0\", \"Protocol-Version\": \"1.3\"}";
  char resp[256], req[1024];

  for (;;)
    {
      int c = accept (fc->lfd, NULL, NULL);
      size_t n = 0;
      if (c < 0)
        return NULL;
      while (n + 1 < sizeof req)
        {
          ssize_t r = recv (c, req + n, sizeof req - 1 - n, 0);
          if (r <= 0)
            break;
          n += (size_t) r;
          req[n] = '\0';
          if (strstr (req, "\r\n\r\n"))
            break;
        }
      int len = snprintf (resp, sizeof resp,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n"
                          "Content-Length: %zu\r\n\r\n%s",
                          sizeof body - 1, body);
      /* Counted before the answer goes out: once the agent has read it,
         the test may check the count at once. */
      if (strncmp (req, "GET /json/version ", 18) == 0)
        {
          __atomic_add_fetch (&fc->served, 1, __ATOMIC_SEQ_CST);
          send (c, resp, (size_t) len, MSG_NOSIGNAL);
        }
      close (c);
    }
}

static void
test_wait_ready (void **state)
{
  Chvm__Agent__WaitReadyRequest w = CHVM__AGENT__WAIT_READY_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *r;
  struct fake_cdp fc = { 0 };
  unsigned port = free_port ();
  pthread_t th;
  int fd = raw_connect ();
  bool eof;

  (void) state;
  raw_hello (fd);
  w.deadline_ms = 10000;
  w.cdp_port = port;
  f.id = 42;
  f.body_case = CHVM__AGENT__FRAME__BODY_WAIT_READY;
  f.wait_ready = &w;
  raw_send (fd, &f);
  /* Nothing listens yet: no answer may come. */
  assert_null (raw_recv (fd, 300, &eof));
  assert_false (eof);
  fc.lfd = listen_on (port);
  pthread_create (&th, NULL, fake_cdp_thread, &fc);
  r = raw_recv (fd, 5000, &eof);
  assert_non_null (r);
  assert_int_equal (r->id, 42);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_WAIT_READY_REPLY);
  assert_string_equal (r->wait_ready_reply->browser, "FakeChrome/1.0");
  assert_true (r->wait_ready_reply->ready_after_ms >= 300);
  assert_true (__atomic_load_n (&fc.served, __ATOMIC_SEQ_CST) >= 1);
  chvm__agent__frame__free_unpacked (r, NULL);

  /* Health now measures the CDP answer too (its port is the agent's
     --cdp-port, so ask WaitReady with an extra TCP port instead). */
  {
    struct agent_client *a = open_agent ();
    struct err *e = NULL;
    assert_int_equal (agent_wait_ready (a, 2000, port, &r, &e), 0);
    assert_true (r->wait_ready_reply->ready_after_ms < 2000);
    chvm__agent__frame__free_unpacked (r, NULL);
    agent_close (a);
  }
  shutdown (fc.lfd, SHUT_RDWR);
  close (fc.lfd);
  pthread_join (th, NULL);
  close (fd);
}

/* A peer that never says Hello loses its connection slot after
   --hello-timeout (2000 ms here), not before and not never. */
static void
test_hello_deadline (void **state)
{
  int fd = raw_connect ();
  int64_t t0 = now_ms ();
  bool eof = false;

  (void) state;
  assert_null (raw_recv (fd, 10000, &eof));
  assert_true (eof);
  assert_true (now_ms () - t0 >= 1500);
  assert_true (now_ms () - t0 < 9000);
  close (fd);
}

static void
test_wait_ready_deadline (void **state)
{
  struct agent_client *a = open_agent ();
  Chvm__Agent__Frame *r = NULL;
  struct err *e = NULL;
  int64_t t0 = now_ms ();

  (void) state;
  assert_true (agent_wait_ready (a, 400, free_port (), &r, &e) < 0);
  assert_non_null (strstr (e->msg, "TIMEOUT"));
  /* Bounded by the deadline plus one backoff step, not by luck. */
  assert_true (now_ms () - t0 >= 300);
  assert_true (now_ms () - t0 < 3000);
  err_release (&e);
  /* The connection still works after the error. */
  assert_int_equal (agent_ping (a, T_MS, &e), 0);
  agent_close (a);
}

/* A DevTools port that accepts and then trickles its answer, one byte per
   100 ms, never finishing its headers. */
static void *
drip_cdp_thread (void *arg)
{
  struct fake_cdp *fc = arg;
  int c = accept (fc->lfd, NULL, NULL);
  struct timespec gap = { 0, 100 * 1000000L };

  if (c < 0)
    return NULL;
  for (int i = 0; i < 200; i++)
    {
      if (send (c, "X", 1, MSG_NOSIGNAL) != 1)
        break;
      nanosleep (&gap, NULL);
    }
  close (c);
  return NULL;
}

static void
test_wait_ready_trickle (void **state)
{
  Chvm__Agent__WaitReadyRequest w = CHVM__AGENT__WAIT_READY_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *r;
  /* Static: on failure the thread outlives this frame. */
  static struct fake_cdp fc;
  unsigned port = free_port ();
  int64_t t0 = now_ms ();
  pthread_t th;
  int fd = raw_connect ();
  bool eof;

  (void) state;
  fc.lfd = listen_on (port);
  pthread_create (&th, NULL, drip_cdp_thread, &fc);
  raw_hello (fd);
  w.deadline_ms = 800;
  w.cdp_port = port;
  f.id = 43;
  f.body_case = CHVM__AGENT__FRAME__BODY_WAIT_READY;
  f.wait_ready = &w;
  raw_send (fd, &f);
  /* The byte every 100 ms restarts libevent's read timeout; the request
     must still end at its deadline. */
  r = raw_recv (fd, 5000, &eof);
  assert_non_null (r);
  assert_int_equal (r->id, 43);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_ERROR);
  assert_int_equal (r->error->code, CHVM__AGENT__ERROR_CODE__ERROR_TIMEOUT);
  assert_true (now_ms () - t0 < 3000);
  chvm__agent__frame__free_unpacked (r, NULL);
  close (fd);
  shutdown (fc.lfd, SHUT_RDWR);
  close (fc.lfd);
  pthread_join (th, NULL);
}

/* A peer that sends requests and never reads the replies: each bad frame
   (5 bytes) costs an error reply ten times its size, so the agent must stop
   reading once its output is full rather than buffer without bound. */
static void
test_unread_replies (void **state)
{
  static uint8_t junk[5 * 13000];
  size_t sent = 0, off = 0, cap = 12u << 20;
  int fd = raw_connect (), sndbuf = 64 << 10;

  (void) state;
  /* Past Hello, so that the Hello deadline does not end the connection. */
  raw_hello (fd);
  for (size_t i = 0; i < sizeof junk; i += 5)
    {
      frame_put_header (junk + i, 1);
      junk[i + 4] = 0xff; /* field 31, wire type 7: not protobuf */
    }
  /* What the kernel holds (at most tcp_rmem's 6 MiB on the agent's side
     plus this) stays well under cap. */
  setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  fcntl (fd, F_SETFL, O_NONBLOCK);
  while (sent < cap)
    {
      /* From where the last partial send stopped, to keep the frames whole. */
      ssize_t n = send (fd, junk + off, sizeof junk - off, MSG_NOSIGNAL);
      if (n > 0)
        {
          sent += (size_t) n;
          off = (off + (size_t) n) % sizeof junk;
          continue;
        }
      assert_true (n < 0 && errno == EAGAIN);
      {
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        if (poll (&pfd, 1, 2000) == 0)
          break; /* the agent stopped reading */
      }
    }
  assert_true (sent < cap);
  close (fd);
  /* The agent is still there and serves others. */
  assert_true (agent_alive ());
}

static void
test_quiesce_thaw (void **state)
{
  struct agent_client *a = open_agent ();
  struct err *e = NULL;
  unsigned thawed = 99;
  struct agent_quiesced q = { .frozen = 99 };
  int64_t step = 0;
  uint64_t want;
  Chvm__Agent__ThawRequest tq = CHVM__AGENT__THAW_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *r = NULL;

  (void) state;
  assert_int_equal (agent_quiesce (a, 5000, true, true, &q, T_MS, &e), 0);
  assert_int_equal (q.frozen, 0); /* --test-mode never freezes */
  /* This machine's /proc/meminfo, as a snapshot's size check reads it. */
  assert_true (q.mem_total_kb > 0 && q.mem_available_kb > 0);
  assert_true (q.mem_available_kb <= q.mem_total_kb);
  assert_true (q.mem_free_kb > 0 && q.mem_free_kb <= q.mem_available_kb);
  want = agent_now_ns () + 3600ULL * 1000000000ULL;
  assert_int_equal (agent_thaw (a, want, false, &thawed, NULL, &step, T_MS, &e), 0);
  assert_int_equal (thawed, 0);
  assert_true (step > 3599LL * 1000000000LL && step < 3601LL * 1000000000LL);
  /* --test-mode sets neither clock: the reply says the RTC was not set. */
  tq.host_time_ns = want;
  f.body_case = CHVM__AGENT__FRAME__BODY_THAW;
  f.thaw = &tq;
  assert_int_equal (agent_call (a, &f, CHVM__AGENT__FRAME__BODY_THAW_REPLY, T_MS, &r, &e), 0);
  assert_false (r->thaw_reply->rtc_set);
  assert_true (r->thaw_reply->clock_step_ns > 3599LL * 1000000000LL);
  chvm__agent__frame__free_unpacked (r, NULL);
  /* Absurd times are refused. */
  assert_true (agent_thaw (a, 1, false, &thawed, NULL, &step, T_MS, &e) < 0);
  assert_non_null (strstr (e->msg, "BAD_REQUEST"));
  err_release (&e);
  assert_true (agent_thaw (a, UINT64_MAX, false, &thawed, NULL, &step, T_MS, &e) < 0);
  err_release (&e);
  assert_true (agent_quiesce (a, 999999999, false, false, &q, T_MS, &e) < 0);
  err_release (&e);
  agent_close (a);
}

struct outbuf
{
  char data[2][4096];
  size_t len[2];
  size_t total;
};

static void
collect (void *arg, int stream, const uint8_t *data, size_t len)
{
  struct outbuf *o = arg;
  int i = stream == CHVM__AGENT__STREAM__STREAM_STDERR;
  size_t n = len;

  o->total += len;
  if (n > sizeof o->data[i] - 1 - o->len[i])
    n = sizeof o->data[i] - 1 - o->len[i];
  memcpy (o->data[i] + o->len[i], data, n);
  o->len[i] += n;
}

static void
test_exec (void **state)
{
  struct agent_client *a = open_agent ();
  struct err *e = NULL;
  struct outbuf o;
  int code, sig;
  char *echo[] = { "sh", "-c", "echo out; echo err >&2; exit 7", NULL };
  char *killed[] = { "sh", "-c", "kill -TERM $$", NULL };
  char *cat[] = { "cat", NULL };
  char *envp[] = { "FOO=bar baz", NULL };
  char *printenv[] = { "sh", "-c", "echo \"$FOO\"", NULL };
  char *pwd[] = { "pwd", NULL };
  char *big[] = { "head", "-c", "3000000", "/dev/zero", NULL };
  char *missing[] = { "/nonexistent/prog", NULL };
  char *slow[] = { "sleep", "10", NULL };

  (void) state;
  memset (&o, 0, sizeof o);
  assert_int_equal (
      agent_exec (a, &(struct agent_exec_req){ .argv = echo }, T_MS, collect, &o, &code, &sig, &e),
      0);
  assert_int_equal (code, 7);
  assert_int_equal (sig, 0);
  assert_string_equal (o.data[0], "out\n");
  assert_string_equal (o.data[1], "err\n");

  assert_int_equal (
      agent_exec (a, &(struct agent_exec_req){ .argv = killed }, T_MS, NULL, NULL, &code, &sig, &e),
      0);
  assert_int_equal (sig, SIGTERM);
  assert_int_equal (code, 128 + SIGTERM);

  memset (&o, 0, sizeof o);
  assert_int_equal (
      agent_exec (a,
                  &(struct agent_exec_req){
                      .argv = cat, .input = "piped input", .input_len = 11, .has_input = true },
                  T_MS, collect, &o, &code, &sig, &e),
      0);
  assert_int_equal (code, 0);
  assert_string_equal (o.data[0], "piped input");

  memset (&o, 0, sizeof o);
  assert_int_equal (agent_exec (a, &(struct agent_exec_req){ .argv = printenv, .env = envp }, T_MS,
                                collect, &o, &code, &sig, &e),
                    0);
  assert_string_equal (o.data[0], "bar baz\n");

  /* A working directory; a missing one is named as such. */
  memset (&o, 0, sizeof o);
  assert_int_equal (agent_exec (a, &(struct agent_exec_req){ .argv = pwd, .cwd = "/proc" }, T_MS,
                                collect, &o, &code, &sig, &e),
                    0);
  assert_string_equal (o.data[0], "/proc\n");
  assert_true (agent_exec (a, &(struct agent_exec_req){ .argv = pwd, .cwd = "/nonexistent" }, T_MS,
                           NULL, NULL, &code, &sig, &e)
               < 0);
  assert_non_null (strstr (e->msg, "working directory /nonexistent"));
  err_release (&e);

  /* More than the 1 MiB frame limit: streamed in chunks. */
  memset (&o, 0, sizeof o);
  assert_int_equal (
      agent_exec (a, &(struct agent_exec_req){ .argv = big }, T_MS, collect, &o, &code, &sig, &e),
      0);
  assert_int_equal (code, 0);
  assert_int_equal (o.total, 3000000);

  assert_true (
      agent_exec (a, &(struct agent_exec_req){ .argv = missing }, T_MS, NULL, NULL, &code, &sig, &e)
      < 0);
  assert_non_null (strstr (e->msg, "NOT_FOUND"));
  err_release (&e);

  /* timeout_ms kills it. */
  int64_t t0 = now_ms ();
  assert_int_equal (agent_exec (a, &(struct agent_exec_req){ .argv = slow, .timeout_ms = 300 },
                                T_MS, NULL, NULL, &code, &sig, &e),
                    0);
  assert_int_equal (sig, SIGKILL);
  assert_true (now_ms () - t0 < 5000);
  agent_close (a);
}

/* Several requests in flight on one connection: a slow Exec does not hold
   back a Ping sent after it. */
static void
test_in_flight (void **state)
{
  Chvm__Agent__ExecRequest x = CHVM__AGENT__EXEC_REQUEST__INIT;
  Chvm__Agent__PingRequest p = CHVM__AGENT__PING_REQUEST__INIT;
  Chvm__Agent__Frame fx = CHVM__AGENT__FRAME__INIT, fp = CHVM__AGENT__FRAME__INIT, *r;
  char *argv[] = { "sleep", "0.5" };
  int fd = raw_connect ();
  bool eof;

  (void) state;
  raw_hello (fd);
  x.n_argv = 2;
  x.argv = argv;
  fx.id = 100;
  fx.body_case = CHVM__AGENT__FRAME__BODY_EXEC;
  fx.exec = &x;
  fp.id = 101;
  fp.body_case = CHVM__AGENT__FRAME__BODY_PING;
  fp.ping = &p;
  raw_send (fd, &fx);
  raw_send (fd, &fp);
  r = raw_recv (fd, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->id, 101);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_PING_REPLY);
  chvm__agent__frame__free_unpacked (r, NULL);
  r = raw_recv (fd, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->id, 100);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_EXEC_EXIT);
  assert_int_equal (r->exec_exit->code, 0);
  chvm__agent__frame__free_unpacked (r, NULL);
  close (fd);
}

static void *
echo_thread (void *arg)
{
  int lfd = *(int *) arg;

  for (;;)
    {
      char buf[65536];
      ssize_t n;
      int c = accept (lfd, NULL, NULL);
      if (c < 0)
        return NULL;
      while ((n = recv (c, buf, sizeof buf, 0)) > 0)
        if (send (c, buf, (size_t) n, MSG_NOSIGNAL) != n)
          break;
      close (c);
    }
}

struct pump
{
  int fd;
  const uint8_t *data;
  size_t len;
};

static void *
writer_thread (void *arg)
{
  struct pump *p = arg;
  size_t off = 0;

  while (off < p->len)
    {
      ssize_t n = send (p->fd, p->data + off, p->len - off, MSG_NOSIGNAL);
      if (n <= 0)
        break;
      off += (size_t) n;
    }
  shutdown (p->fd, SHUT_WR);
  return NULL;
}

static void
test_forward (void **state)
{
  unsigned port = free_port ();
  int lfd = listen_on (port);
  pthread_t th, wt;
  struct err *e = NULL;
  uint8_t *early = NULL;
  size_t early_len = 0, got = 0, len = 8u << 20;
  uint8_t *data = malloc (len), *back = malloc (len);
  int fd;

  (void) state;
  pthread_create (&th, NULL, echo_thread, &lfd);
  fd = agent_forward (open_agent (), port, T_MS, &early, &early_len, &e);
  assert_true (fd >= 0);
  assert_int_equal (early_len, 0);
  /* 8 MiB through the agent and back, while reading concurrently:
     backpressure must neither lose nor reorder bytes. */
  for (size_t i = 0; i < len; i++)
    data[i] = (uint8_t) (i * 2654435761u >> 13);
  struct pump p = { fd, data, len };
  pthread_create (&wt, NULL, writer_thread, &p);
  while (got < len)
    {
      ssize_t n = recv (fd, back + got, len - got, 0);
      if (n <= 0)
        break;
      got += (size_t) n;
    }
  pthread_join (wt, NULL);
  assert_int_equal (got, len);
  assert_memory_equal (back, data, len);
  close (fd);
  free (data);
  free (back);

  /* Connecting to a closed port fails with NOT_FOUND. */
  shutdown (lfd, SHUT_RDWR); /* wakes the accept() */
  pthread_join (th, NULL);
  close (lfd);
  fd = agent_forward (open_agent (), free_port (), T_MS, &early, &early_len, &e);
  assert_true (fd < 0);
  assert_non_null (strstr (e->msg, "NOT_FOUND"));
  err_release (&e);
}

/* A guest port that never reads: the agent must stop reading from the host
   once its buffer for that port is full, so what the host manages to send
   stays bounded (agent buffer + socket buffers), far below what it tries. */
static void *
hold_thread (void *arg)
{
  int lfd = *(int *) arg;
  int c = accept (lfd, NULL, NULL);
  char b;

  /* Blocks until the test shuts the listener down; never reads c. */
  if (c >= 0)
    {
      struct pollfd p = { .fd = lfd, .events = POLLIN };
      poll (&p, 1, 30000);
      if (recv (c, &b, 0, MSG_DONTWAIT) < 0)
        b = 0;
      close (c);
    }
  return NULL;
}

static void
test_forward_backpressure (void **state)
{
  unsigned port = free_port ();
  int lfd = listen_on (port), fd, one = 1 << 20;
  pthread_t th;
  struct err *e = NULL;
  uint8_t *early = NULL, *chunk = calloc (1, 1 << 20);
  size_t early_len = 0, sent = 0, limit = 256u << 20;

  (void) state;
  pthread_create (&th, NULL, hold_thread, &lfd);
  fd = agent_forward (open_agent (), port, T_MS, &early, &early_len, &e);
  assert_true (fd >= 0);
  setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
  fcntl (fd, F_SETFL, O_NONBLOCK);
  while (sent < limit)
    {
      ssize_t n = send (fd, chunk, 1 << 20, MSG_NOSIGNAL);
      if (n > 0)
        {
          sent += (size_t) n;
          continue;
        }
      struct pollfd p = { .fd = fd, .events = POLLOUT };
      /* Stalled for 1 s: the agent stopped reading. */
      if (n < 0 && errno == EAGAIN && poll (&p, 1, 1000) == 0)
        break;
    }
  assert_true (sent < (64u << 20));
  close (fd);
  shutdown (lfd, SHUT_RDWR);
  pthread_join (th, NULL);
  close (lfd);
  free (chunk);
  assert_true (agent_alive ());
}

/* ---- hostile input ---- */

static void
expect_hangup (int fd)
{
  bool eof;
  Chvm__Agent__Frame *r = raw_recv (fd, T_MS, &eof);
  if (r)
    chvm__agent__frame__free_unpacked (r, NULL);
  assert_null (r);
  assert_true (eof);
}

/* A hostile guest's agent answers with escape sequences and line breaks
   in its version and its error text: the client hands on neither. */
static void
test_guest_text_escaped (void **state)
{
  Chvm__Agent__HelloReply hr = CHVM__AGENT__HELLO_REPLY__INIT;
  Chvm__Agent__ErrorReply er = CHVM__AGENT__ERROR_REPLY__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT;
  struct agent_client *a;
  struct err *err = NULL;
  int sv[2];

  (void) state;
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  /* Both answers are on their way before the client asks (ids 1 and 2). */
  hr.protocol_version = 1;
  hr.agent_version = (char *) "1.0\x1b[2J\x1b]0;owned\x07";
  f.id = 1;
  f.body_case = CHVM__AGENT__FRAME__BODY_HELLO_REPLY;
  f.hello_reply = &hr;
  raw_send (sv[1], &f);
  er.code = CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL;
  er.message = (char *) "no\r\nWARN chvm: forged line\x1b[31m";
  f.id = 2;
  f.body_case = CHVM__AGENT__FRAME__BODY_ERROR;
  f.error = &er;
  raw_send (sv[1], &f);
  a = agent_open (sv[0], "", T_MS, &err);
  assert_non_null (a);
  assert_string_equal (agent_version (a), "1.0?[2J?]0;owned?");
  assert_true (agent_ping (a, T_MS, &err) < 0);
  assert_string_equal (err->msg, "INTERNAL: no??WARN chvm: forged line?[31m");
  err_release (&err);
  agent_close (a);
  close (sv[1]);
}

static void
test_hostile (void **state)
{
  static const uint8_t zero_len[] = { 0, 0, 0, 0 };
  static const uint8_t huge_len[] = { 0x7f, 0xff, 0xff, 0xff };
  static const uint8_t garbage[] = { 0, 0, 0, 3, 0xff, 0xff, 0xff };
  /* Field 99, varint 1: a message from a newer host. */
  static const uint8_t unknown[] = { 0, 0, 0, 3, 0x98, 0x06, 0x01 };
  Chvm__Agent__Frame *r;
  bool eof;
  int fd;

  (void) state;
  fd = raw_connect ();
  raw_send_bytes (fd, zero_len, sizeof zero_len);
  expect_hangup (fd);
  close (fd);

  fd = raw_connect ();
  raw_send_bytes (fd, huge_len, sizeof huge_len);
  expect_hangup (fd);
  close (fd);

  fd = raw_connect ();
  raw_hello (fd);
  raw_send_bytes (fd, garbage, sizeof garbage);
  r = raw_recv (fd, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_ERROR);
  assert_int_equal (r->error->code, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST);
  chvm__agent__frame__free_unpacked (r, NULL);
  raw_send_bytes (fd, unknown, sizeof unknown);
  r = raw_recv (fd, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->error->code, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST);
  chvm__agent__frame__free_unpacked (r, NULL);
  close (fd);

  /* Announce 1 MiB, send 10 bytes, hang up. */
  fd = raw_connect ();
  raw_send_bytes (fd, (const uint8_t[]){ 0, 0x10, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 14);
  close (fd);
  /* Truncated header, then hang up. */
  fd = raw_connect ();
  raw_send_bytes (fd, (const uint8_t[]){ 0, 0 }, 2);
  close (fd);
  assert_true (agent_alive ());
}

/* ---- connection slots, idle timeout, keepalive ---- */

/* The agent's budgets (guest-agent/conn.h). */
#define MAX_CONNS 64
#define MAX_PENDING 16

/* The tests below run their own agent, started with the options in the
   prestate ({hello_ms, idle_ms}); raw_connect and open_agent reach it
   through agent_port while they run. */
struct own_agent
{
  const char *hello_ms, *idle_ms;
  pid_t pid;
  unsigned saved_port;
};

static int
own_agent_start (void **state)
{
  struct own_agent *o = *state;

  o->saved_port = agent_port;
  o->pid = spawn_agent (&agent_port, o->hello_ms, o->idle_ms);
  if (o->pid > 0)
    return 0;
  agent_port = o->saved_port; /* cmocka skips the teardown */
  return -1;
}

static int
own_agent_stop (void **state)
{
  struct own_agent *o = *state;

  if (o->pid > 0)
    {
      kill (o->pid, SIGTERM);
      waitpid (o->pid, NULL, 0);
    }
  agent_port = o->saved_port;
  return 0;
}

static void
raw_ping (int fd, uint64_t id)
{
  Chvm__Agent__PingRequest p = CHVM__AGENT__PING_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *r;
  bool eof;

  f.id = id;
  f.body_case = CHVM__AGENT__FRAME__BODY_PING;
  f.ping = &p;
  raw_send (fd, &f);
  r = raw_recv (fd, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->id, id);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_PING_REPLY);
  chvm__agent__frame__free_unpacked (r, NULL);
}

/* A WaitReady on a port nothing listens on: outstanding for deadline_ms. */
static void
raw_wait_ready (int fd, uint64_t id, unsigned deadline_ms)
{
  Chvm__Agent__WaitReadyRequest w = CHVM__AGENT__WAIT_READY_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT;

  w.deadline_ms = deadline_ms;
  w.cdp_port = free_port ();
  f.id = id;
  f.body_case = CHVM__AGENT__FRAME__BODY_WAIT_READY;
  f.wait_ready = &w;
  raw_send (fd, &f);
}

/* Whether the agent closed fd within timeout_ms (any data read is
   discarded). */
static bool
closed_within (int fd, int timeout_ms)
{
  int64_t deadline = now_ms () + timeout_ms;

  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      char buf[512];
      int64_t left = deadline - now_ms ();
      if (left < 0)
        left = 0;
      if (poll (&p, 1, (int) left) <= 0)
        return false;
      if (recv (fd, buf, sizeof buf, MSG_DONTWAIT) <= 0)
        return true;
    }
}

/* Whether fd is still open now, leaving any data unread. */
static bool
open_now (int fd)
{
  struct pollfd p = { .fd = fd, .events = POLLIN };
  char b;

  if (poll (&p, 1, 0) <= 0)
    return true;
  return recv (fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* --idle-timeout 700: an authenticated connection that sends nothing and
   waits for nothing is closed after about that long; one that keeps sending
   frames, or has a request outstanding, is not, until it goes quiet. */
static void
test_idle_timeout (void **state)
{
  int idle = raw_connect (), busy = raw_connect (), chatty = raw_connect ();
  int64_t t0;
  uint64_t id = 10;
  Chvm__Agent__Frame *r;
  bool eof;

  (void) state;
  raw_hello (idle);
  raw_hello (busy);
  raw_hello (chatty);
  t0 = now_ms ();
  raw_wait_ready (busy, 2, 2500);
  while (!closed_within (idle, 150))
    {
      if (now_ms () - t0 > 6000)
        fail_msg ("an idle connection was still open after 6 s (--idle-timeout 700)");
      raw_ping (chatty, id++);
    }
  assert_true (now_ms () - t0 >= 500);
  /* Neither the one with a WaitReady outstanding nor the chatty one. */
  assert_true (open_now (busy));
  raw_ping (chatty, id++);
  /* The WaitReady ends (TIMEOUT); then busy has nothing left and goes. */
  r = raw_recv (busy, T_MS, &eof);
  assert_non_null (r);
  assert_int_equal (r->body_case, CHVM__AGENT__FRAME__BODY_ERROR);
  assert_int_equal (r->error->code, CHVM__AGENT__ERROR_CODE__ERROR_TIMEOUT);
  chvm__agent__frame__free_unpacked (r, NULL);
  assert_true (closed_within (busy, 3000));
  assert_true (closed_within (chatty, 3000));
  close (idle);
  close (busy);
  close (chatty);
}

/* Silent peers (no Hello, and --hello-timeout 0 here so they would stay for
   ever) beyond every slot the agent has: a host connecting after them still
   says Hello and pings; the oldest silent ones were closed for it. */
static void
test_pending_slots (void **state)
{
  enum
  {
    N = MAX_CONNS + 8
  };
  int fds[N];
  struct agent_client *a;
  struct err *e = NULL;

  (void) state;
  for (int i = 0; i < N; i++)
    fds[i] = raw_connect ();
  a = open_agent ();
  assert_int_equal (agent_ping (a, T_MS, &e), 0);
  agent_close (a);
  assert_true (closed_within (fds[0], T_MS));
  /* The newest silent ones keep their slots. */
  assert_false (closed_within (fds[N - 1], 200));
  for (int i = 0; i < N; i++)
    close (fds[i]);
}

/* --idle-timeout 0: with every authenticated slot taken, a new host
   connection replaces the longest idle one that has nothing outstanding. */
static void
test_authed_slots (void **state)
{
  int fds[MAX_CONNS];
  struct agent_client *a;
  struct err *e = NULL;

  (void) state;
  for (int i = 0; i < MAX_CONNS; i++)
    {
      fds[i] = raw_connect ();
      raw_hello (fds[i]);
      if (i == 0)
        raw_wait_ready (fds[0], 2, 20000); /* the oldest, but busy */
    }
  a = open_agent ();
  assert_int_equal (agent_ping (a, T_MS, &e), 0);
  agent_close (a);
  assert_true (closed_within (fds[1], T_MS));
  assert_true (open_now (fds[0]));
  assert_true (open_now (fds[2]));
  assert_true (open_now (fds[MAX_CONNS - 1]));
  raw_ping (fds[MAX_CONNS - 1], 3);
  for (int i = 0; i < MAX_CONNS; i++)
    close (fds[i]);
}

/* Thaw{restored}: after a restore from a snapshot every connection from
   before it is dead on the host side, and CH's new vsock muxer reuses their
   host ports (a stale guest socket of that port swallows the new CONNECT).
   The agent closes every connection accepted before the thawing one, idle,
   busy or still before Hello, and keeps the newer ones. */
static void
test_thaw_restored (void **state)
{
  int idle = raw_connect (), busy = raw_connect (), silent = raw_connect (), newer;
  struct agent_client *a;
  struct err *e = NULL;
  unsigned thawed = 1, closed = 0;

  (void) state;
  raw_hello (idle);
  raw_hello (busy);
  raw_wait_ready (busy, 2, 20000);
  a = open_agent ();
  newer = raw_connect ();
  raw_hello (newer);
  assert_int_equal (agent_thaw (a, 0, false, &thawed, &closed, NULL, T_MS, &e), 0);
  assert_int_equal (closed, 0);
  assert_true (open_now (idle));
  assert_int_equal (agent_thaw (a, 0, true, &thawed, &closed, NULL, T_MS, &e), 0);
  assert_int_equal (closed, 3);
  assert_true (closed_within (idle, T_MS));
  assert_true (closed_within (busy, T_MS));
  assert_true (closed_within (silent, T_MS));
  assert_true (open_now (newer));
  raw_ping (newer, 7);
  assert_int_equal (agent_ping (a, T_MS, &e), 0);
  agent_close (a);
  close (idle);
  close (busy);
  close (silent);
  close (newer);
}

/* Identity (a VM forked from a template): the test-mode agent changes
   nothing and says so; a bad hostname, machine-id or too much entropy is a
   bad request. */
static void
test_identity (void **state)
{
  struct agent_client *a = open_agent ();
  struct agent_identity id = { .hostname_set = true, .reseeded = true };
  struct err *e = NULL;
  uint8_t entropy[600] = { 1, 2, 3 };

  (void) state;
  assert_int_equal (
      agent_identity (a, "clone-1", "0123456789abcdef0123456789abcdef", entropy, 64, &id, T_MS, &e),
      0);
  assert_false (id.hostname_set || id.machine_id_set || id.reseeded);
  assert_int_equal (id.entropy_bytes, 0);
  assert_true (agent_identity (a, "-bad", "", NULL, 0, &id, T_MS, &e) < 0);
  assert_non_null (strstr (e->msg, "identity"));
  err_release (&e);
  assert_true (agent_identity (a, "", "XYZ", NULL, 0, &id, T_MS, &e) < 0);
  err_release (&e);
  assert_true (agent_identity (a, "", "", entropy, sizeof entropy, &id, T_MS, &e) < 0);
  err_release (&e);
  assert_int_equal (agent_ping (a, T_MS, &e), 0);
  agent_close (a);
}

/* The agent's side of a TCP connection runs a keepalive timer (timer kind 2
   in /proc/net/tcp) due within its TCP_KEEPIDLE of 60 s, so a vanished host
   is found in minutes.  (libevent's listener already turns SO_KEEPALIVE on,
   but with the system's default of 2 hours before the first probe.) */
static void
test_tcp_keepalive (void **state)
{
  struct sockaddr_in me;
  socklen_t sl = sizeof me;
  int fd = raw_connect ();
  cleanup_file FILE *f = fopen ("/proc/net/tcp", "r");
  char line[512];
  bool found = false;

  (void) state;
  raw_hello (fd);
  assert_int_equal (getsockname (fd, (struct sockaddr *) &me, &sl), 0);
  assert_non_null (f);
  while (fgets (line, sizeof line, f) != NULL)
    {
      unsigned lport, rport, tr, st;
      unsigned long when;
      if (sscanf (line, " %*u: %*x:%x %*x:%x %x %*x:%*x %x:%lx", &lport, &rport, &st, &tr, &when)
          != 5)
        continue;
      if (lport != agent_port || rport != ntohs (me.sin_port))
        continue;
      found = true;
      if (tr != 2)
        fail_msg ("agent socket timer kind %u, not 2 (keepalive): %s", tr, line);
      /* USER_HZ (100) ticks: due within the agent's 60 s TCP_KEEPIDLE. */
      if (when > 60 * 100)
        fail_msg ("agent socket keepalive due in %lu ticks, not within 60 s: %s", when, line);
    }
  assert_true (found);
  close (fd);
}

/* ---- CH hybrid vsock handshake ---- */

struct fake_hybrid
{
  int lfd;
  char path[108];
};

/* Plays Cloud Hypervisor's side: "CONNECT 1024\n" gets "OK <n>\n" and a
   stream to the agent (its TCP port stands in for guest vsock 1024); any
   other port gets the connection closed, as CH does. */
static void *
fake_hybrid_thread (void *arg)
{
  struct fake_hybrid *h = arg;
  int c;

  while ((c = accept (h->lfd, NULL, NULL)) >= 0)
    {
      char line[64];
      size_t n = 0;
      while (n + 1 < sizeof line && recv (c, line + n, 1, 0) == 1 && line[n++] != '\n')
        ;
      line[n] = '\0';
      if (strcmp (line, "CONNECT 1024\n") != 0)
        {
          close (c);
          continue;
        }
      struct err *e = NULL;
      int a = dial_tcp ("127.0.0.1", agent_port, T_MS, &e);
      fcntl (a, F_SETFL, 0);
      if (a < 0 || send (c, "OK 1073741824\n", 14, MSG_NOSIGNAL) != 14)
        {
          close (c);
          continue;
        }
      for (;;)
        {
          struct pollfd p[2] = { { .fd = c, .events = POLLIN }, { .fd = a, .events = POLLIN } };
          char buf[4096];
          ssize_t r;
          if (poll (p, 2, T_MS) <= 0)
            break;
          int from = (p[0].revents & (POLLIN | POLLHUP)) ? c : a, to = from == c ? a : c;
          r = recv (from, buf, sizeof buf, 0);
          if (r <= 0 || send (to, buf, (size_t) r, MSG_NOSIGNAL) != r)
            break;
        }
      close (a);
      close (c);
    }
  return NULL;
}

static void
test_vsock_handshake (void **state)
{
  struct fake_hybrid h;
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct err *e = NULL;
  struct agent_client *a;
  pthread_t th;
  int fd;

  (void) state;
  snprintf (h.path, sizeof h.path, "/tmp/chvm-agent-test-vsock.%d", (int) getpid ());
  unlink (h.path);
  memcpy (sun.sun_path, h.path, strlen (h.path) + 1);
  h.lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal (bind (h.lfd, (struct sockaddr *) &sun, sizeof sun), 0);
  assert_int_equal (listen (h.lfd, 4), 0);
  pthread_create (&th, NULL, fake_hybrid_thread, &h);

  fd = dial_vsock (h.path, 1024, T_MS, &e);
  if (fd < 0)
    fail_msg ("dial vsock: %s", e->msg);
  a = agent_open (fd, TOKEN, T_MS, &e);
  assert_non_null (a);
  assert_int_equal (agent_ping (a, T_MS, &e), 0);
  agent_close (a);

  /* Nobody listens on guest port 9: CH closes the connection. */
  assert_true (dial_vsock (h.path, 9, T_MS, &e) < 0);
  assert_non_null (strstr (e->msg, "CONNECT 9"));
  err_release (&e);
  assert_true (dial_vsock ("/nonexistent/vsock.sock", 1024, T_MS, &e) < 0);
  err_release (&e);

  shutdown (h.lfd, SHUT_RDWR);
  pthread_join (th, NULL);
  close (h.lfd);
  unlink (h.path);
}

/* Runs last: the test-mode agent exits after replying. */
static void
test_shutdown (void **state)
{
  struct agent_client *a = open_agent ();
  struct err *e = NULL;
  int64_t deadline = now_ms () + T_MS;
  int st;
  pid_t r;

  (void) state;
  assert_int_equal (agent_shutdown (a, true, T_MS, &e), 0);
  agent_close (a);
  while ((r = waitpid (agent_pid, &st, WNOHANG)) == 0 && now_ms () < deadline)
    poll (NULL, 0, 20); /* bounded wait for the child's exit */
  assert_int_equal (r, agent_pid);
  assert_true (WIFEXITED (st));
  /* Non-zero would mean a leak or sanitizer report at exit. */
  assert_int_equal (WEXITSTATUS (st), 0);
  agent_pid = 0;
}

int
main (void)
{
  static struct own_agent idle_agent = { .hello_ms = "2000", .idle_ms = "700" };
  static struct own_agent no_hello_deadline_agent = { .hello_ms = "0" };
  static struct own_agent no_idle_agent = { .hello_ms = "2000", .idle_ms = "0" };
  static struct own_agent no_deadline_agent = { .hello_ms = "0", .idle_ms = "0" };
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_hello_ok),
    cmocka_unit_test (test_hello_bad_token),
    cmocka_unit_test (test_hello_version),
    cmocka_unit_test (test_request_before_hello),
    cmocka_unit_test (test_ping_health),
    cmocka_unit_test (test_wait_ready),
    cmocka_unit_test (test_wait_ready_deadline),
    cmocka_unit_test (test_hello_deadline),
    cmocka_unit_test (test_wait_ready_trickle),
    cmocka_unit_test (test_unread_replies),
    cmocka_unit_test (test_quiesce_thaw),
    cmocka_unit_test (test_exec),
    cmocka_unit_test (test_in_flight),
    cmocka_unit_test (test_forward),
    cmocka_unit_test (test_hostile),
    cmocka_unit_test (test_guest_text_escaped),
    cmocka_unit_test (test_vsock_handshake),
    cmocka_unit_test (test_forward_backpressure),
    cmocka_unit_test (test_tcp_keepalive),
    cmocka_unit_test_prestate_setup_teardown (test_idle_timeout, own_agent_start, own_agent_stop,
                                              &idle_agent),
    cmocka_unit_test_prestate_setup_teardown (test_pending_slots, own_agent_start, own_agent_stop,
                                              &no_hello_deadline_agent),
    cmocka_unit_test_prestate_setup_teardown (test_authed_slots, own_agent_start, own_agent_stop,
                                              &no_idle_agent),
    cmocka_unit_test_prestate_setup_teardown (test_thaw_restored, own_agent_start, own_agent_stop,
                                              &no_deadline_agent),
    cmocka_unit_test (test_identity),
    cmocka_unit_test (test_shutdown),
  };
  signal (SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests (tests, start_agent, stop_agent);
}
