/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm agent: talk to a guest agent directly (debugging, tests, scripts).
 *   chvm agent (--socket PATH --port N | --tcp HOST:PORT) [--token T] [--timeout MS] SUB ...
 * SUB: ping | health | ready [--timeout MS] [--cdp-port N] | quiesce [--timeout MS]
 *      [--drop-caches] [--compact] | thaw [--time now|+S|-S|@S] | exec [--env N=V]...
 *      [--stdin] [--timeout MS] -- CMD... | forward GUESTPORT --listen ADDR:PORT |
 *      shutdown [--reboot]
 */
#include "agent/agent_client.h"
#include "cli/commands.h"
#include "cli/exec.h"
#include "cli/report.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "num.h"
#include "sys/json.h"
#include "sys/port.h"

/* The request must fit one frame, with room for argv and env. */

struct target
{
  const char *socket, *tcp, *token;
  unsigned port;
  int timeout_ms;
};

static void
agent_usage (FILE *out)
{
  fprintf (out,
           "Usage: chvm agent (--socket PATH --port N | --tcp HOST:PORT) [--token T]\n"
           "                  [--timeout MS] COMMAND [ARGS]\n\n"
           "Talk to a guest's chvm-agent over CH hybrid vsock or TCP.\n\n"
           "  ping                       round trip\n"
           "  health                     browser, memory, load, CDP answer time\n"
           "  ready [--timeout MS] [--cdp-port N]\n"
           "                             wait until CDP answers /json/version\n"
           "  quiesce [--timeout MS] [--drop-caches] [--compact] [--hold [--time T]]\n"
           "                             freeze filesystems until this command exits\n"
           "                             (--hold: until stdin EOF, then thaw) or MS pass\n"
           "  thaw [--time now|+S|-S|@S] [--restored]\n"
           "                             thaw; set the guest clock (host now, now +/- S\n"
           "                             seconds, or Unix time S); --restored: the VM was\n"
           "                             just restored: close the agent's older connections\n"
           "  exec [--env N=V]... [--stdin] [--timeout MS] -- CMD [ARG]...\n"
           "                             run CMD; exits with its status\n"
           "  forward GUESTPORT --listen ADDR:PORT\n"
           "                             forward local connections to guest 127.0.0.1:GUESTPORT\n"
           "  shutdown [--reboot]        power off (or reboot) the guest\n");
}

static int
dial (const struct target *t, struct err **err)
{
  if (t->tcp)
    return dial_tcp_str (t->tcp, t->timeout_ms, err);
  return dial_vsock (t->socket, t->port, t->timeout_ms, err);
}

static struct agent_client *
open_client (const struct target *t, struct err **err)
{
  int fd = dial (t, err);

  if (fd < 0)
    return NULL;
  return agent_open (fd, t->token, t->timeout_ms, err);
}

static int
do_health (const struct global_opts *g, struct agent_client *a, const struct target *t)
{
  cleanup_err struct err *e = NULL;
  Chvm__Agent__Frame *rep = NULL;
  const Chvm__Agent__HealthReply *h;

  if (agent_health (a, t->timeout_ms, &rep, &e) < 0)
    return cli_fail ("agent health", &e);
  h = rep->health_reply;
  if (g->json)
    {
      cleanup_json json_object *o = json_object_new_object ();
      json_object_object_add (o, "chrome_pid", json_object_new_int (h->chrome_pid));
      json_object_object_add (o, "chrome_state", json_object_new_string (h->chrome_state));
      json_object_object_add (o, "cdp_answer_ms", json_object_new_int (h->cdp_answer_ms));
      json_object_object_add (o, "uptime_s", json_object_new_double (h->uptime_s));
      json_object_object_add (o, "mem_available_kb",
                              json_object_new_int64 ((int64_t) h->mem_available_kb));
      json_object_object_add (o, "mem_total_kb", json_object_new_int64 ((int64_t) h->mem_total_kb));
      json_object_object_add (o, "load1", json_object_new_double (h->load1));
      json_object_object_add (o, "load5", json_object_new_double (h->load5));
      json_object_object_add (o, "load15", json_object_new_double (h->load15));
      json_object_object_add (o, "frozen", json_object_new_boolean (h->frozen));
      json_object_object_add (o, "cdp_error", json_object_new_string (h->cdp_error));
      json_print (stdout, o);
    }
  else
    printf ("chrome: pid %d (%s), CDP %s%d ms%s%s\nuptime %.1f s, MemAvailable %llu of %llu kB, "
            "load %.2f %.2f %.2f%s\n",
            h->chrome_pid, h->chrome_state, h->cdp_answer_ms < 0 ? "no answer " : "",
            h->cdp_answer_ms, h->cdp_error[0] ? ": " : "", h->cdp_error, h->uptime_s,
            (unsigned long long) h->mem_available_kb, (unsigned long long) h->mem_total_kb,
            h->load1, h->load5, h->load15, h->frozen ? ", FROZEN" : "");
  chvm__agent__frame__free_unpacked (rep, NULL);
  return 0;
}

static const struct option sub_opts[] = {
  { "timeout", required_argument, NULL, 'T' },
  { "cdp-port", required_argument, NULL, 'c' },
  { "drop-caches", no_argument, NULL, 'D' },
  { "compact", no_argument, NULL, 'C' },
  { "time", required_argument, NULL, 't' },
  { "env", required_argument, NULL, 'e' },
  { "stdin", no_argument, NULL, 'i' },
  { "listen", required_argument, NULL, 'l' },
  { "reboot", no_argument, NULL, 'r' },
  { "help", no_argument, NULL, 'h' },
  { "hold", no_argument, NULL, 'H' },
  { "restored", no_argument, NULL, 'R' },
  { NULL, 0, NULL, 0 },
};

struct sub_args
{
  uint64_t timeout_ms, cdp_port;
  bool drop_caches, compact, has_input, reboot, has_time, hold, restored;
  uint64_t time_ns;
  char **env;
  size_t n_env;
  const char *listen;
};

static int
parse_time (const char *s, uint64_t *ns)
{
  uint64_t now = agent_now_ns ();
  uint64_t v;

  if (strcmp (s, "now") == 0)
    {
      *ns = now;
      return 0;
    }
  if ((s[0] == '+' || s[0] == '-' || s[0] == '@')
      && num_parse_u64_str (s + 1, UINT64_C (1) << 40, &v) == 0)
    {
      if (s[0] == '@')
        *ns = v * 1000000000ULL;
      else if (s[0] == '+')
        *ns = now + v * 1000000000ULL;
      else
        *ns = now - v * 1000000000ULL;
      return 0;
    }
  return -1;
}

/* exec stops at the first non-option (the command's own options follow);
   the others accept options after their operands. */
static int
parse_sub (int argc, char **argv, bool stop_at_operand, struct sub_args *s)
{
  int o;

  optind = 0; /* 0: glibc re-initialises getopt (ordering mode included) */
  while ((o = getopt_long (argc, argv, stop_at_operand ? "+h" : "h", sub_opts, NULL)) != -1)
    switch (o)
      {
      case 'T':
        if (num_parse_u64_str (optarg, 3600000, &s->timeout_ms) < 0)
          return -1;
        break;
      case 'c':
        if (num_parse_u64_str (optarg, 65535, &s->cdp_port) < 0)
          return -1;
        break;
      case 'D':
        s->drop_caches = true;
        break;
      case 'C':
        s->compact = true;
        break;
      case 't':
        if (parse_time (optarg, &s->time_ns) < 0)
          return -1;
        s->has_time = true;
        break;
      case 'e':
        {
          char **nv = realloc (s->env, (s->n_env + 2) * sizeof *nv);
          if (nv == NULL)
            return -1;
          s->env = nv;
          s->env[s->n_env++] = optarg;
          s->env[s->n_env] = NULL;
        }
        break;
      case 'i':
        s->has_input = true;
        break;
      case 'l':
        s->listen = optarg;
        break;
      case 'r':
        s->reboot = true;
        break;
      case 'H':
        s->hold = true;
        break;
      case 'R':
        s->restored = true;
        break;
      default:
        return -1;
      }
  return optind;
}

static int
do_exec (const struct global_opts *g, struct agent_client *a, const struct target *t,
         struct sub_args *s, char **cmd)
{
  return cli_exec (g->json, a, cmd, s->env, NULL, s->has_input, (unsigned) s->timeout_ms,
                   t->timeout_ms, "agent exec");
}

/* Copies bytes both ways until both directions reached EOF. */
static void
splice_fds (int a, int b)
{
  static uint8_t buf[64 << 10];
  bool open_a = true, open_b = true;

  while (open_a || open_b)
    {
      struct pollfd p[2] = { { .fd = open_a ? a : -1, .events = POLLIN },
                             { .fd = open_b ? b : -1, .events = POLLIN } };
      if (poll (p, 2, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          return;
        }
      for (int i = 0; i < 2; i++)
        {
          int from = i ? b : a, to = i ? a : b;
          bool *open = i ? &open_b : &open_a;
          ssize_t n, off = 0;
          if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
          n = read (from, buf, sizeof buf);
          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            {
              *open = false;
              shutdown (to, SHUT_WR);
              continue;
            }
          while (off < n)
            {
              ssize_t w = write (to, buf + off, (size_t) (n - off));
              if (w < 0 && errno == EINTR)
                continue;
              if (w <= 0)
                return;
              off += w;
            }
        }
    }
}

static void
serve_client (const struct target *t, unsigned guest_port, int client)
{
  cleanup_err struct err *e = NULL;
  cleanup_free uint8_t *early = NULL;
  size_t early_len = 0;
  struct agent_client *a = open_client (t, &e);
  int fd, one = 1;

  if (a == NULL)
    {
      cli_fail ("agent forward", &e);
      return;
    }
  fd = agent_forward (a, guest_port, t->timeout_ms, &early, &early_len, &e);
  if (fd < 0)
    {
      cli_fail ("agent forward", &e);
      return;
    }
  setsockopt (client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (early_len > 0 && write (client, early, early_len) != (ssize_t) early_len)
    {
      close (fd);
      return;
    }
  splice_fds (client, fd);
  close (fd);
}

static int
do_forward (const struct global_opts *g, const struct target *t, unsigned guest_port,
            const char *listen_at)
{
  struct sockaddr_in sin = { .sin_family = AF_INET };
  socklen_t sl = sizeof sin;
  cleanup_close int l = -1;
  cleanup_err struct err *e = NULL;
  char host[64] = "";
  uint16_t hp;
  struct sigaction sa = { .sa_handler = SIG_DFL, .sa_flags = SA_NOCLDWAIT };
  int one = 1;

  /* host stays "" when listen_at names no address. */
  if (port_parse (listen_at, host, sizeof host, &hp, &e) < 0 || host[0] == '\0')
    {
      fprintf (stderr, "chvm agent forward: --listen wants ADDR:PORT\n");
      return 2;
    }
  if (inet_pton (AF_INET, host, &sin.sin_addr) != 1)
    {
      fprintf (stderr, "chvm agent forward: '%s' is not an IPv4 address\n", host);
      return 2;
    }
  sin.sin_port = htons (hp);
  l = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0 || setsockopt (l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
      || bind (l, (struct sockaddr *) &sin, sizeof sin) < 0 || listen (l, 64) < 0
      || getsockname (l, (struct sockaddr *) &sin, &sl) < 0)
    {
      fprintf (stderr, "chvm agent forward: listen on %s: %s\n", listen_at, strerror (errno));
      return 1;
    }
  /* Children are reaped by the kernel; each serves one client. */
  sigaction (SIGCHLD, &sa, NULL);
  if (g->json)
    {
      cleanup_json json_object *o = json_object_new_object ();
      char at[96];
      snprintf (at, sizeof at, "%s:%u", host, ntohs (sin.sin_port));
      json_object_object_add (o, "listen", json_object_new_string (at));
      json_object_object_add (o, "guest_port", json_object_new_int64 (guest_port));
      json_print (stdout, o);
    }
  else
    printf ("listening on %s:%u, forwarding to guest 127.0.0.1:%u\n", host, ntohs (sin.sin_port),
            guest_port);
  fflush (stdout);
  for (;;)
    {
      int c = accept4 (l, NULL, NULL, SOCK_CLOEXEC);
      pid_t pid;
      if (c < 0)
        {
          if (errno == EINTR || errno == ECONNABORTED)
            continue;
          fprintf (stderr, "chvm agent forward: accept: %s\n", strerror (errno));
          return 1;
        }
      pid = fork ();
      if (pid == 0)
        {
          prctl (PR_SET_PDEATHSIG, SIGTERM);
          close (l);
          serve_client (t, guest_port, c);
          _exit (0);
        }
      close (c);
    }
}

static int
do_ready (const struct global_opts *g, struct agent_client *a, const struct sub_args *s)
{
  cleanup_err struct err *e = NULL;
  Chvm__Agent__Frame *rep = NULL;
  const Chvm__Agent__WaitReadyReply *w;

  if (agent_wait_ready (a, s->timeout_ms ? (unsigned) s->timeout_ms : 30000, (unsigned) s->cdp_port,
                        &rep, &e)
      < 0)
    return cli_fail ("agent ready", &e);
  w = rep->wait_ready_reply;
  if (g->json)
    {
      cleanup_json json_object *o = json_object_new_object ();
      json_object_object_add (o, "ready_after_ms", json_object_new_int64 (w->ready_after_ms));
      json_object_object_add (o, "browser", json_object_new_string (w->browser));
      json_print (stdout, o);
    }
  else
    printf ("ready after %u ms: %s\n", w->ready_after_ms, w->browser);
  chvm__agent__frame__free_unpacked (rep, NULL);
  return 0;
}

/* Thaw through agent_call for the whole reply (agent_thaw omits announced). */
static int
do_thaw (const struct global_opts *g, struct agent_client *a, int timeout_ms,
         const struct sub_args *s)
{
  Chvm__Agent__ThawRequest tr = CHVM__AGENT__THAW_REQUEST__INIT;
  Chvm__Agent__Frame f = CHVM__AGENT__FRAME__INIT, *rep = NULL;
  cleanup_err struct err *e = NULL;
  const Chvm__Agent__ThawReply *r;

  tr.host_time_ns = s->has_time ? s->time_ns : 0;
  tr.restored = s->restored;
  f.body_case = CHVM__AGENT__FRAME__BODY_THAW;
  f.thaw = &tr;
  if (agent_call (a, &f, CHVM__AGENT__FRAME__BODY_THAW_REPLY, timeout_ms, &rep, &e) < 0)
    return cli_fail ("agent thaw", &e);
  r = rep->thaw_reply;
  if (g->json)
    {
      cleanup_json json_object *o = json_object_new_object ();
      json_object_object_add (o, "thawed_count", json_object_new_int64 (r->thawed_count));
      json_object_object_add (o, "clock_step_ns", json_object_new_int64 (r->clock_step_ns));
      json_object_object_add (o, "announced", json_object_new_boolean (r->announced));
      json_object_object_add (o, "rtc_set", json_object_new_boolean (r->rtc_set));
      json_object_object_add (o, "closed_count", json_object_new_int64 (r->closed_count));
      json_print (stdout, o);
    }
  else
    printf ("thawed %u filesystems, clock stepped %+.3f s%s%s", r->thawed_count,
            (double) r->clock_step_ns / 1e9, r->rtc_set ? ", RTC set" : "",
            r->announced ? ", gratuitous ARP sent" : "");
  if (!g->json && s->restored)
    printf (", closed %u older connections", r->closed_count);
  if (!g->json)
    putchar ('\n');
  chvm__agent__frame__free_unpacked (rep, NULL);
  return 0;
}

/* The agent thaws when the requesting connection closes, so a freeze lasts
   as long as this process: with --hold until stdin reaches EOF, then it
   thaws on the same connection (setting the clock with --time). */
static int
do_quiesce (const struct global_opts *g, struct agent_client *a, const struct target *t,
            const struct sub_args *s)
{
  cleanup_err struct err *e = NULL;
  struct agent_quiesced q = { 0 };
  char buf[256];

  if (agent_quiesce (a, (unsigned) s->timeout_ms, s->drop_caches, s->compact, &q,
                     t->timeout_ms + 60000, &e)
      < 0)
    return cli_fail ("agent quiesce", &e);
  if (g->json)
    {
      cleanup_json json_object *o = json_object_new_object ();
      json_object_object_add (o, "frozen_count", json_object_new_int64 (q.frozen));
      json_object_object_add (o, "freed_kb", json_object_new_int64 (q.freed_kb));
      json_object_object_add (o, "mem_total_kb", json_object_new_uint64 (q.mem_total_kb));
      json_object_object_add (o, "mem_available_kb", json_object_new_uint64 (q.mem_available_kb));
      json_object_object_add (o, "mem_free_kb", json_object_new_uint64 (q.mem_free_kb));
      json_print (stdout, o);
    }
  else
    printf ("froze %u filesystems, MemAvailable %+lld kB (%llu of %llu kB)\n", q.frozen,
            (long long) q.freed_kb, (unsigned long long) q.mem_available_kb,
            (unsigned long long) q.mem_total_kb);
  fflush (stdout);
  if (!s->hold)
    return 0;
  while (read (0, buf, sizeof buf) > 0 || errno == EINTR)
    errno = 0;
  return do_thaw (g, a, t->timeout_ms, s);
}

static int
do_ping (const struct global_opts *g, struct agent_client *a, const struct target *t)
{
  cleanup_err struct err *e = NULL;
  double t0 = clock_now_ms (), us;

  if (agent_ping (a, t->timeout_ms, &e) < 0)
    return cli_fail ("agent ping", &e);
  us = (clock_now_ms () - t0) * 1e3;
  if (g->json)
    {
      cleanup_json json_object *o = json_object_new_object ();
      char rtt[32];
      /* The version is the guest's: json-c escapes it. */
      snprintf (rtt, sizeof rtt, "%.1f", us);
      json_object_object_add (o, "agent_version", json_object_new_string (agent_version (a)));
      json_object_object_add (o, "rtt_us", json_object_new_double_s (us, rtt));
      json_print (stdout, o);
    }
  else
    printf ("agent %s: %.1f us\n", agent_version (a), us);
  return 0;
}

static int
do_shutdown (const struct global_opts *g, struct agent_client *a, const struct target *t,
             const struct sub_args *s)
{
  cleanup_err struct err *e = NULL;

  if (agent_shutdown (a, !s->reboot, t->timeout_ms, &e) < 0)
    return cli_fail ("agent shutdown", &e);
  if (g->json)
    {
      cleanup_json json_object *o = json_object_new_object ();
      json_object_object_add (o, "shutdown",
                              json_object_new_string (s->reboot ? "reboot" : "poweroff"));
      json_print (stdout, o);
    }
  return 0;
}

int
cmd_agent (const struct global_opts *g, int argc, char **argv)
{
  static const struct option opts[] = {
    { "socket", required_argument, NULL, 's' },
    { "port", required_argument, NULL, 'p' },
    { "tcp", required_argument, NULL, 'c' },
    { "token", required_argument, NULL, 'k' },
    { "timeout", required_argument, NULL, 'T' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct target t = { .timeout_ms = 10000 };
  struct sub_args s = { 0 };
  cleanup_err struct err *e = NULL;
  struct agent_client *a = NULL;
  uint64_t v;
  const char *sub;
  int o, rc = 1, first;

  optind = 0; /* 0: glibc re-initialises getopt (ordering mode included) */
  while ((o = getopt_long (argc, argv, "+h", opts, NULL)) != -1)
    switch (o)
      {
      case 's':
        t.socket = optarg;
        break;
      case 'p':
        if (num_parse_u64_str (optarg, UINT32_MAX, &v) < 0)
          goto usage;
        t.port = (unsigned) v;
        break;
      case 'c':
        t.tcp = optarg;
        break;
      case 'k':
        t.token = optarg;
        break;
      case 'T':
        if (num_parse_u64_str (optarg, 3600000, &v) < 0)
          goto usage;
        t.timeout_ms = (int) v;
        break;
      case 'h':
        agent_usage (stdout);
        return 0;
      default:
        goto usage;
      }
  if (optind >= argc || (t.tcp == NULL) == (t.socket == NULL) || (t.socket && t.port == 0))
    goto usage;
  if (t.token == NULL)
    t.token = getenv ("CHVM_AGENT_TOKEN");
  sub = argv[optind];
  argc -= optind;
  argv += optind;
  first = parse_sub (argc, argv, strcmp (sub, "exec") == 0, &s);
  if (first < 0)
    goto usage;

  if (strcmp (sub, "forward") == 0)
    {
      if (first + 1 != argc || s.listen == NULL || num_parse_u64_str (argv[first], 65535, &v) < 0
          || v == 0)
        goto usage;
      free (s.env);
      return do_forward (g, &t, (unsigned) v, s.listen);
    }
  if (strcmp (sub, "exec") == 0 ? first >= argc : first != argc)
    goto usage;
  if (strcmp (sub, "ping") != 0 && strcmp (sub, "health") != 0 && strcmp (sub, "ready") != 0
      && strcmp (sub, "quiesce") != 0 && strcmp (sub, "thaw") != 0 && strcmp (sub, "exec") != 0
      && strcmp (sub, "shutdown") != 0)
    goto usage;

  a = open_client (&t, &e);
  if (a == NULL)
    {
      free (s.env);
      return cli_fail ("agent connect", &e);
    }
  if (strcmp (sub, "ping") == 0)
    rc = do_ping (g, a, &t);
  else if (strcmp (sub, "health") == 0)
    rc = do_health (g, a, &t);
  else if (strcmp (sub, "ready") == 0)
    rc = do_ready (g, a, &s);
  else if (strcmp (sub, "quiesce") == 0)
    rc = do_quiesce (g, a, &t, &s);
  else if (strcmp (sub, "thaw") == 0)
    rc = do_thaw (g, a, t.timeout_ms, &s);
  else if (strcmp (sub, "exec") == 0)
    rc = do_exec (g, a, &t, &s, argv + first);
  else
    rc = do_shutdown (g, a, &t, &s);
  agent_close (a);
  free (s.env);
  return rc;

usage:
  free (s.env);
  agent_usage (stderr);
  return 2;
}
