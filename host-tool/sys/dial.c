/* SPDX-License-Identifier: Apache-2.0 */
#include "sys/dial.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "num.h"

int
dial_wait_fd (int fd, short events, int64_t deadline, const char *what, struct err **err)
{
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = events };
      int64_t left = deadline - clock_now_ms ();
      int r;

      if (left <= 0)
        return err_make (err, ETIMEDOUT, "%s", what);
      r = poll (&p, 1, left > 0x7fffffff ? 0x7fffffff : (int) left);
      if (r > 0)
        return 0;
      if (r < 0 && errno != EINTR)
        return err_make (err, errno, "poll (%s)", what);
    }
}

int
dial_write_all (int fd, const void *data, size_t len, int64_t deadline, struct err **err)
{
  const uint8_t *p = data;

  while (len > 0)
    {
      ssize_t n = send (fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK)
            return err_make (err, errno, "send");
          if (dial_wait_fd (fd, POLLOUT, deadline, "sending", err) < 0)
            return -1;
          continue;
        }
      p += n;
      len -= (size_t) n;
    }
  return 0;
}

int
dial_vsock (const char *socket_path, unsigned port, int timeout_ms, struct err **err)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  cleanup_close int fd = -1;
  int64_t deadline = clock_now_ms () + timeout_ms;
  char line[64];
  size_t n = 0;
  int len;

  if (strlen (socket_path) >= sizeof sun.sun_path)
    return err_make (err, ENAMETOOLONG, "vsock socket path %s", socket_path);
  memcpy (sun.sun_path, socket_path, strlen (socket_path) + 1);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return err_make (err, errno, "socket");
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) < 0)
    return err_make (err, errno, "connect %s", socket_path);
  len = snprintf (line, sizeof line, "CONNECT %u\n", port);
  if (dial_write_all (fd, line, (size_t) len, deadline, err) < 0)
    return err_wrap (err, "vsock CONNECT %u", port);
  /* Byte by byte: whatever follows "OK <n>\n" belongs to the guest. */
  while (n + 1 < sizeof line)
    {
      ssize_t r;
      if (dial_wait_fd (fd, POLLIN, deadline, "vsock CONNECT: no answer in time", err) < 0)
        return -1;
      r = recv (fd, line + n, 1, 0);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return err_make (err, errno, "vsock CONNECT %u: recv", port);
      if (r == 0)
        return err_make (err, ECONNREFUSED,
                         "vsock CONNECT %u: closed by cloud-hypervisor (nothing listens on the "
                         "guest port?)",
                         port);
      if (line[n++] == '\n')
        break;
    }
  line[n] = '\0';
  if (strncmp (line, "OK ", 3) != 0 || line[n - 1] != '\n')
    return err_make (err, EPROTO, "vsock CONNECT %u: unexpected answer \"%.*s\"", port,
                     (int) strcspn (line, "\n"), line);
  return steal_fd (&fd);
}

int
dial_tcp (const char *host, unsigned port, int timeout_ms, struct err **err)
{
  struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
  struct addrinfo *res = NULL;
  int64_t deadline = clock_now_ms () + timeout_ms;
  char ports[16];
  int r, one = 1;

  snprintf (ports, sizeof ports, "%u", port);
  r = getaddrinfo (host, ports, &hints, &res);
  if (r != 0)
    return err_make (err, 0, "resolve %s: %s", host, gai_strerror (r));
  r = err_make (err, ECONNREFUSED, "connect %s:%u: no address", host, port);
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
    {
      cleanup_close int fd
          = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
      int soerr = 0;
      socklen_t sl = sizeof soerr;

      if (fd < 0)
        continue;
      if (connect (fd, ai->ai_addr, ai->ai_addrlen) < 0)
        {
          if (errno != EINPROGRESS)
            {
              r = err_make (err, errno, "connect %s:%u", host, port);
              continue;
            }
          r = dial_wait_fd (fd, POLLOUT, deadline, "TCP connect", err);
          if (r < 0)
            break;
          getsockopt (fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
          if (soerr != 0)
            {
              r = err_make (err, soerr, "connect %s:%u", host, port);
              continue;
            }
        }
      /* Callers use blocking I/O with their own poll()ed deadlines. */
      if (fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK) < 0)
        {
          r = err_make (err, errno, "fcntl");
          break;
        }
      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      freeaddrinfo (res);
      err_release (err);
      return steal_fd (&fd);
    }
  freeaddrinfo (res);
  return r;
}

int
dial_tcp_str (const char *hostport, int timeout_ms, struct err **err)
{
  const char *colon = strrchr (hostport, ':');
  char host[256];
  uint64_t port;

  if (colon == NULL || (size_t) (colon - hostport) >= sizeof host || colon == hostport)
    return err_make (err, EINVAL, "'%s' is not HOST:PORT", hostport);
  if (num_parse_u64_str (colon + 1, 65535, &port) < 0 || port == 0)
    return err_make (err, EINVAL, "'%s' has no valid port", hostport);
  memcpy (host, hostport, (size_t) (colon - hostport));
  host[colon - hostport] = '\0';
  /* [::1]:port */
  if (host[0] == '[' && host[strlen (host) - 1] == ']')
    {
      memmove (host, host + 1, strlen (host));
      host[strlen (host) - 1] = '\0';
    }
  return dial_tcp (host, (unsigned) port, timeout_ms, err);
}
