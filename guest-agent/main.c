/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm-agent: the guest agent.  Started by guest-init after switch_root as
 *   chvm-agent --vsock-port N --tcp-port N --token-file F --cdp-port N --ready-fd N
 * it listens on AF_VSOCK and/or TCP and serves the protocol of
 * proto/agent.proto on one libevent loop.  It runs until SIGTERM (ignored
 * while filesystems are frozen) or a Shutdown request.
 */
#include "conn.h"
#include "dispatch.h"
#include "exec.h"
#include "freeze.h"
#include "shutdown.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/listener.h>

#include "cleanup.h"
#include "log.h"
#include "num.h"

static void
usage (FILE *out)
{
  fprintf (
      out,
      "Usage: chvm-agent [--vsock-port N] [--tcp-port N --token-file FILE]\n"
      "                  [--tcp-bind ADDR] [--cdp-port N] [--ready-fd N] [--hello-timeout MS]\n"
      "                  [--idle-timeout MS] [--test-mode]\n"
      "                  [--debug]\n\n"
      "The chvm guest agent (protocol: proto/agent.proto).\n\n"
      "  --vsock-port N     listen on AF_VSOCK port N (0: off)\n"
      "  --tcp-port N       listen on TCP port N (0: off); needs --token-file\n"
      "  --tcp-bind ADDR    IPv4 address for TCP (default 0.0.0.0)\n"
      "  --token-file FILE  hex token (32-128 chars) TCP clients must send in Hello\n"
      "  --cdp-port N       DevTools port probed by WaitReady/Health (default 9222)\n"
      "  --ready-fd N       once every transport listens (or failed with a warning),\n"
      "                     write one byte to fd N and close it\n"
      "  --hello-timeout MS close a connection that sends no Hello within MS\n"
      "                     (default 10000; 0: never); at most 16 connections\n"
      "                     wait for Hello, a newer one pushes the oldest out\n"
      "  --idle-timeout MS  close an authenticated connection after MS without a\n"
      "                     frame from the host while it has nothing outstanding\n"
      "                     (no request, exec, forward or freeze of its own)\n"
      "                     (default 300000; 0: never); of 64 authenticated\n"
      "                     connections, a new one replaces the longest idle\n"
      "  --test-mode        for running on a development host: never freeze\n"
      "                     filesystems, set the clock, drop caches, send ARP or\n"
      "                     power off (Shutdown only ends the agent)\n"
      "  --debug            log debug lines\n"
      "  --help             this text\n");
}

static int
parse_port (const char *s, const char *what, unsigned *out)
{
  uint64_t v;

  if (num_parse_u64_str (s, 65535, &v) < 0)
    {
      fprintf (stderr, "chvm-agent: bad %s '%s'\n", what, s);
      return -1;
    }
  *out = (unsigned) v;
  return 0;
}

static int
parse_ms (const char *s, const char *what, unsigned max, unsigned *out)
{
  uint64_t v;

  if (num_parse_u64_str (s, max, &v) < 0)
    {
      fprintf (stderr, "chvm-agent: bad %s '%s' (0..%u ms)\n", what, s, max);
      return -1;
    }
  *out = (unsigned) v;
  return 0;
}

static int
read_token (const char *path, struct err **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  char buf[sizeof agent.token + 2];
  ssize_t n;

  if (fd < 0)
    return err_make (err, errno, "open %s", path);
  n = TEMP_FAILURE_RETRY (read (fd, buf, sizeof buf - 1));
  if (n < 0)
    return err_make (err, errno, "read %s", path);
  while (n > 0 && isspace ((unsigned char) buf[n - 1]))
    n--;
  if (n < 32 || n > 128)
    return err_make (err, 0, "%s: token must be 32-128 hex characters", path);
  for (ssize_t i = 0; i < n; i++)
    if (!isxdigit ((unsigned char) buf[i]))
      return err_make (err, 0, "%s: token must be hex", path);
  memcpy (agent.token, buf, (size_t) n);
  agent.token[n] = '\0';
  agent.token_len = (size_t) n;
  return 0;
}

static void
accept_cb (struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
  char name[64];
  bool tcp = arg != NULL;

  (void) l;
  (void) len;
  if (tcp)
    {
      struct sockaddr_in *sin = (struct sockaddr_in *) sa;
      char a[INET_ADDRSTRLEN] = "?";
      inet_ntop (AF_INET, &sin->sin_addr, a, sizeof a);
      snprintf (name, sizeof name, "tcp:%s:%u", a, ntohs (sin->sin_port));
    }
  else
    {
      struct sockaddr_vm *svm = (struct sockaddr_vm *) sa;
      snprintf (name, sizeof name, "vsock:%u:%u", svm->svm_cid, svm->svm_port);
    }
  conn_accept (fd, tcp, name, dispatch_frame);
}

static struct evconnlistener *
listen_vsock (unsigned port, struct err **err)
{
  struct sockaddr_vm svm = { .svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY };
  cleanup_close int fd = socket (AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct evconnlistener *l;

  if (fd < 0)
    {
      err_make (err, errno, "vsock socket");
      return NULL;
    }
  if (bind (fd, (struct sockaddr *) &svm, sizeof svm) < 0)
    {
      err_make (err, errno, "bind vsock port %u", port);
      return NULL;
    }
  l = evconnlistener_new (agent.base, accept_cb, NULL,
                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16, fd);
  if (l == NULL)
    {
      err_make (err, errno, "listen on vsock port %u", port);
      return NULL;
    }
  steal_fd (&fd);
  log_info ("listening on vsock port %u", port);
  return l;
}

static struct evconnlistener *
listen_tcp (const char *addr, unsigned port, struct err **err)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
  struct evconnlistener *l;

  if (inet_pton (AF_INET, addr, &sin.sin_addr) != 1)
    {
      err_make (err, EINVAL, "bad --tcp-bind address '%s'", addr);
      return NULL;
    }
  /* A non-NULL arg marks the TCP listener (token required). */
  l = evconnlistener_new_bind (agent.base, accept_cb, &agent,
                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
                               16, (struct sockaddr *) &sin, sizeof sin);
  if (l == NULL)
    {
      err_make (err, errno, "listen on tcp %s:%u", addr, port);
      return NULL;
    }
  log_info ("listening on tcp %s:%u", addr, port);
  return l;
}

/* Tells init (which waits on the other end before it starts the entrypoint)
   that the agent now accepts connections. */
static void
signal_ready (int fd)
{
  char byte = 1;

  if (TEMP_FAILURE_RETRY (write (fd, &byte, 1)) != 1)
    log_warn ("write to --ready-fd %d: %m", fd);
  close (fd);
}

static void
signal_cb (evutil_socket_t sig, short what, void *arg)
{
  (void) what;
  (void) arg;
  if (sig == SIGCHLD)
    {
      exec_sigchld ();
      return;
    }
  if (agent.frozen)
    return; /* exiting now would leave the filesystems frozen */
  log_info ("signal %d: exiting", (int) sig);
  event_base_loopexit (agent.base, NULL);
}

struct opts
{
  unsigned vsock_port, tcp_port, cdp;
  const char *tcp_bind, *token_file;
  enum log_level lvl;
  int ready_fd;
};

/* Fills o (and agent's timeouts and test mode) from the command line.
   Returns -1 to go on, or the exit status (--help, a bad option). */
static int
parse_args (int argc, char **argv, struct opts *o)
{
  static const struct option opts[] = {
    { "vsock-port", required_argument, NULL, 'v' },
    { "tcp-port", required_argument, NULL, 't' },
    { "tcp-bind", required_argument, NULL, 'b' },
    { "token-file", required_argument, NULL, 'k' },
    { "cdp-port", required_argument, NULL, 'c' },
    { "ready-fd", required_argument, NULL, 'r' },
    { "hello-timeout", required_argument, NULL, 'H' },
    { "idle-timeout", required_argument, NULL, 'I' },
    { "test-mode", no_argument, NULL, 'T' },
    { "debug", no_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1)
    switch (c)
      {
      case 'v':
        if (parse_port (optarg, "--vsock-port", &o->vsock_port) < 0)
          return 2;
        break;
      case 't':
        if (parse_port (optarg, "--tcp-port", &o->tcp_port) < 0)
          return 2;
        break;
      case 'c':
        if (parse_port (optarg, "--cdp-port", &o->cdp) < 0 || o->cdp == 0)
          return 2;
        break;
      case 'r':
        {
          uint64_t v;
          if (num_parse_u64_str (optarg, INT_MAX, &v) < 0)
            {
              fprintf (stderr, "chvm-agent: bad --ready-fd '%s'\n", optarg);
              return 2;
            }
          o->ready_fd = (int) v;
        }
        break;
      case 'H':
        if (parse_ms (optarg, "--hello-timeout", 3600000, &agent.hello_timeout_ms) < 0)
          return 2;
        break;
      case 'I':
        if (parse_ms (optarg, "--idle-timeout", 86400000, &agent.idle_timeout_ms) < 0)
          return 2;
        break;
      case 'b':
        o->tcp_bind = optarg;
        break;
      case 'k':
        o->token_file = optarg;
        break;
      case 'T':
        agent.test_mode = true;
        break;
      case 'd':
        o->lvl = LOG_LVL_DEBUG;
        break;
      case 'h':
        usage (stdout);
        return 0;
      default:
        usage (stderr);
        return 2;
      }
  if (optind != argc || (o->vsock_port == 0 && o->tcp_port == 0))
    {
      fprintf (stderr, "chvm-agent: give --vsock-port and/or --tcp-port\n");
      usage (stderr);
      return 2;
    }
  return -1;
}

/* The token, the agent's settings, the event loop and its signals.
   Returns 0, or the exit status. */
static int
setup (const struct opts *o, struct event *sigs[3])
{
  static const int signums[3] = { SIGCHLD, SIGTERM, SIGINT };
  cleanup_err struct err *e = NULL;
  char buf[256];

  if (o->tcp_port != 0 && o->token_file == NULL)
    {
      log_error ("--tcp-port needs --token-file");
      return 2;
    }
  if (o->token_file != NULL && read_token (o->token_file, &e) < 0)
    {
      log_error ("%s", err_str (e, buf, sizeof buf));
      return 1;
    }
  agent.cdp_port = (uint16_t) o->cdp;
  agent.mountinfo = "/proc/self/mountinfo";
  agent.frozen_marker = agent.test_mode ? NULL : "/run/chvm/agent.frozen";
  signal (SIGPIPE, SIG_IGN);
  agent.base = event_base_new ();
  if (agent.base == NULL)
    {
      log_error ("event_base_new failed");
      return 1;
    }
  for (int i = 0; i < 3; i++)
    {
      sigs[i] = evsignal_new (agent.base, signums[i], signal_cb, NULL);
      if (sigs[i] == NULL || evsignal_add (sigs[i], NULL) < 0)
        {
          log_error ("cannot watch signal %d", signums[i]);
          return 1;
        }
    }
  return 0;
}

/* init passes the configured vsock port even on hypervisors without a vsock
   device (QEMU here), so one transport failing is only a warning.  Returns
   0 when at least one listens. */
static int
listen_all (const struct opts *o, struct evconnlistener **lv, struct evconnlistener **lt)
{
  cleanup_err struct err *e = NULL;
  char buf[256];

  if (o->vsock_port != 0 && (*lv = listen_vsock (o->vsock_port, &e)) == NULL)
    {
      log_warn ("%s", err_str (e, buf, sizeof buf));
      err_release (&e);
    }
  if (o->tcp_port != 0 && (*lt = listen_tcp (o->tcp_bind, o->tcp_port, &e)) == NULL)
    {
      log_warn ("%s", err_str (e, buf, sizeof buf));
      err_release (&e);
    }
  if (*lv == NULL && *lt == NULL)
    {
      log_error ("no transport to listen on");
      return -1;
    }
  return 0;
}

int
main (int argc, char **argv)
{
  struct opts o = { .cdp = 9222, .tcp_bind = "0.0.0.0", .lvl = LOG_LVL_INFO, .ready_fd = -1 };
  struct evconnlistener *lv = NULL, *lt = NULL;
  struct event *sigs[3];
  int r;

  r = parse_args (argc, argv, &o);
  if (r >= 0)
    return r;
  log_init ("chvm-agent", 2, o.lvl);
  r = setup (&o, sigs);
  if (r != 0)
    return r;
  freeze_startup ();
  if (listen_all (&o, &lv, &lt) < 0)
    return 1;
  if (o.ready_fd >= 0)
    signal_ready (o.ready_fd);
  event_base_dispatch (agent.base);
  conn_close_all ();
  exec_free_all ();
  if (lv)
    evconnlistener_free (lv);
  if (lt)
    evconnlistener_free (lt);
  for (int i = 0; i < 3; i++)
    event_free (sigs[i]);
  shutdown_free ();
  event_base_free (agent.base);
  return 0;
}
