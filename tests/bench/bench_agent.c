/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Agent benchmark, against an agent on loopback (see bench_agent.sh):
 *   - request round trip: Ping through the agent protocol;
 *   - Forward: 64-byte ping-pong latency and bulk throughput to an echo or
 *     sink server in this process, through the agent's Forward, compared
 *     with a direct TCP connection to the same server in the same run.
 * Usage: bench_agent HOST:PORT TOKEN [MiB] [ROUNDS]
 * Prints one human line per figure, then one JSON line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent_client.h"

static const char *target, *token;

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
die (const char *what, struct err *e)
{
  char buf[512];
  fprintf (stderr, "bench_agent: %s: %s\n", what,
           e ? err_str (e, buf, sizeof buf) : strerror (errno));
  exit (1);
}

static struct agent_client *
open_agent (void)
{
  struct err *e = NULL;
  int fd = dial_tcp_str (target, 5000, &e);
  struct agent_client *a;

  if (fd < 0)
    die ("dial", e);
  a = agent_open (fd, token, 5000, &e);
  if (a == NULL)
    die ("hello", e);
  return a;
}

/* Server thread: mode 'e' echoes, mode 's' reads an 8-byte count, swallows
   that many bytes and answers one byte. */
struct server
{
  int lfd;
  unsigned port;
  char mode;
};

static void *
server_thread (void *arg)
{
  struct server *s = arg;
  static char buf[1 << 16];

  for (;;)
    {
      int c = accept (s->lfd, NULL, NULL), one = 1;
      ssize_t n;
      if (c < 0)
        return NULL;
      setsockopt (c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (s->mode == 'e')
        while ((n = recv (c, buf, sizeof buf, 0)) > 0)
          {
            if (send (c, buf, (size_t) n, MSG_NOSIGNAL) != n)
              break;
          }
      else
        {
          uint64_t want = 0, got = 0;
          if (recv (c, &want, sizeof want, MSG_WAITALL) == (ssize_t) sizeof want)
            {
              while (got < want && (n = recv (c, buf, sizeof buf, 0)) > 0)
                got += (uint64_t) n;
              if (send (c, "k", 1, MSG_NOSIGNAL) != 1)
                got = 0;
            }
        }
      close (c);
    }
}

static void
start_server (struct server *s, char mode)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t sl = sizeof sin;
  pthread_t th;

  s->mode = mode;
  s->lfd = socket (AF_INET, SOCK_STREAM, 0);
  if (s->lfd < 0 || bind (s->lfd, (struct sockaddr *) &sin, sizeof sin) < 0
      || listen (s->lfd, 8) < 0 || getsockname (s->lfd, (struct sockaddr *) &sin, &sl) < 0)
    die ("server", NULL);
  s->port = ntohs (sin.sin_port);
  pthread_create (&th, NULL, server_thread, s);
  pthread_detach (th);
}

static int
direct (unsigned port)
{
  struct err *e = NULL;
  int fd = dial_tcp ("127.0.0.1", port, 5000, &e);
  if (fd < 0)
    die ("direct connect", e);
  /* Blocking, like agent_forward's fd. */
  if (fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK) < 0)
    die ("fcntl", NULL);
  return fd;
}

static int
forwarded (unsigned port)
{
  struct err *e = NULL;
  uint8_t *early = NULL;
  size_t early_len = 0;
  int fd = agent_forward (open_agent (), port, 5000, &early, &early_len, &e);

  if (fd < 0)
    die ("forward", e);
  free (early);
  return fd;
}

static double
pingpong_p50_us (int fd, int rounds)
{
  double *t = calloc ((size_t) rounds, sizeof *t), p50;
  char msg[64] = "x", back[64];

  for (int i = 0; i < rounds; i++)
    {
      double t0 = now_s ();
      if (send (fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t) sizeof msg
          || recv (fd, back, sizeof back, MSG_WAITALL) != (ssize_t) sizeof back)
        die ("ping-pong", NULL);
      t[i] = (now_s () - t0) * 1e6;
    }
  qsort (t, (size_t) rounds, sizeof *t, cmp_double);
  p50 = t[rounds / 2];
  free (t);
  return p50;
}

static double
throughput_mib_s (int fd, uint64_t bytes)
{
  static char buf[1 << 16];
  uint64_t sent = 0;
  double t0 = now_s ();
  char k;

  if (send (fd, &bytes, sizeof bytes, MSG_NOSIGNAL) != (ssize_t) sizeof bytes)
    die ("send", NULL);
  while (sent < bytes)
    {
      size_t n = bytes - sent < sizeof buf ? (size_t) (bytes - sent) : sizeof buf;
      ssize_t w = send (fd, buf, n, MSG_NOSIGNAL);
      if (w <= 0)
        die ("send", NULL);
      sent += (uint64_t) w;
    }
  if (recv (fd, &k, 1, MSG_WAITALL) != 1)
    die ("sink answer", NULL);
  return (double) bytes / (1 << 20) / (now_s () - t0);
}

int
main (int argc, char **argv)
{
  struct server echo, sink;
  struct agent_client *a;
  struct err *e = NULL;
  int rounds, fd, one = 1;
  uint64_t mib;
  double *t, ping_p50, ping_p99, d_rtt, f_rtt, d_tp, f_tp;

  if (argc < 3)
    {
      fprintf (stderr, "usage: bench_agent HOST:PORT TOKEN [MiB] [ROUNDS]\n");
      return 2;
    }
  target = argv[1];
  token = argv[2];
  mib = argc > 3 ? strtoull (argv[3], NULL, 10) : 256;
  rounds = argc > 4 ? atoi (argv[4]) : 2000;
  if (mib == 0 || rounds <= 0)
    return 2;
  start_server (&echo, 'e');
  start_server (&sink, 's');

  a = open_agent ();
  t = calloc ((size_t) rounds, sizeof *t);
  for (int i = 0; i < rounds; i++)
    {
      double t0 = now_s ();
      if (agent_ping (a, 5000, &e) < 0)
        die ("ping", e);
      t[i] = (now_s () - t0) * 1e6;
    }
  qsort (t, (size_t) rounds, sizeof *t, cmp_double);
  ping_p50 = t[rounds / 2];
  ping_p99 = t[rounds * 99 / 100];
  free (t);
  agent_close (a);

  fd = direct (echo.port);
  d_rtt = pingpong_p50_us (fd, rounds);
  close (fd);
  fd = forwarded (echo.port);
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  f_rtt = pingpong_p50_us (fd, rounds);
  close (fd);

  fd = direct (sink.port);
  d_tp = throughput_mib_s (fd, mib << 20);
  close (fd);
  fd = forwarded (sink.port);
  f_tp = throughput_mib_s (fd, mib << 20);
  close (fd);

  printf ("agent Ping round trip: p50 %.1f us, p99 %.1f us (%d rounds)\n", ping_p50, ping_p99,
          rounds);
  printf ("64-byte ping-pong p50: direct %.1f us, via Forward %.1f us (x%.2f)\n", d_rtt, f_rtt,
          f_rtt / d_rtt);
  printf ("throughput (%llu MiB): direct %.0f MiB/s, via Forward %.0f MiB/s (ratio %.2f)\n",
          (unsigned long long) mib, d_tp, f_tp, f_tp / d_tp);
  printf ("{\"ping_p50_us\":%.1f,\"ping_p99_us\":%.1f,\"direct_rtt_p50_us\":%.1f,"
          "\"forward_rtt_p50_us\":%.1f,\"direct_mib_s\":%.1f,\"forward_mib_s\":%.1f,"
          "\"forward_throughput_ratio\":%.3f,\"mib\":%llu,\"rounds\":%d}\n",
          ping_p50, ping_p99, d_rtt, f_rtt, d_tp, f_tp, f_tp / d_tp, (unsigned long long) mib,
          rounds);
  return 0;
}
