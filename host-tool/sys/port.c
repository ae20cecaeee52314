/* SPDX-License-Identifier: Apache-2.0 */
/* Host ports: "[HOST:]PORT" parsed, a free one picked, one checked free. */
#include "sys/port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "num.h"

int
port_parse (const char *s, char *host, size_t host_len, uint16_t *port, struct err **err)
{
  const char *colon = strrchr (s, ':'), *p = s, *h = s;
  size_t hl = 0;
  uint64_t v;

  if (colon != NULL)
    {
      hl = (size_t) (colon - s);
      p = colon + 1;
      /* [::1]:PORT */
      if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']')
        {
          h++;
          hl -= 2;
        }
      else if (memchr (s, ':', hl) != NULL)
        return err_make (err, EINVAL, "'%s': an IPv6 address needs brackets ([ADDR]:PORT)", s);
      if (hl == 0)
        return err_make (err, EINVAL, "'%s' has no address before ':'", s);
      if (hl >= host_len)
        return err_make (err, ENAMETOOLONG, "'%s': address too long", s);
      memcpy (host, h, hl);
      host[hl] = '\0';
    }
  if (num_parse_u64_str (p, 65535, &v) < 0)
    return err_make (err, EINVAL, "'%s' has no valid port (0-65535)", s);
  *port = (uint16_t) v;
  return 0;
}

int
port_parse_ipv4 (const char *s, char *addr, size_t addr_len, uint16_t *port, bool *beyond,
                 struct err **err)
{
  struct in_addr ia;

  if (port_parse (s, addr, addr_len, port, err) < 0)
    return -1;
  if (inet_pton (AF_INET, addr, &ia) != 1)
    return err_make (err, EINVAL, "'%s': the address is not IPv4", addr);
  *beyond = (ntohl (ia.s_addr) >> 24) != 127;
  return 0;
}

int
port_pick (const char *addr, uint16_t *port, struct err **err)
{
  struct sockaddr_in sa = { .sin_family = AF_INET };
  socklen_t sl = sizeof sa;
  cleanup_close int fd = -1;

  if (inet_pton (AF_INET, addr, &sa.sin_addr) != 1)
    return err_make (err, 0, "pick a port on '%s': not an IPv4 address", addr);
  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  /* The port is free again once closed; QEMU binds it right after, and a
     loser of that race fails to start with a clear hostfwd error. */
  if (fd < 0 || bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0
      || getsockname (fd, (struct sockaddr *) &sa, &sl) < 0)
    return err_make (err, errno, "pick a free port on %s", addr);
  *port = ntohs (sa.sin_port);
  return 0;
}

int
port_check (const char *addr, uint16_t port, bool udp, struct err **err)
{
  struct sockaddr_storage ss = { 0 };
  struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;
  cleanup_close int fd = -1;
  socklen_t sl;
  int one = 1;

  if (inet_pton (AF_INET, addr, &s4->sin_addr) == 1)
    {
      s4->sin_family = AF_INET;
      s4->sin_port = htons (port);
      sl = sizeof *s4;
    }
  else if (inet_pton (AF_INET6, addr, &s6->sin6_addr) == 1)
    {
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons (port);
      sl = sizeof *s6;
    }
  else
    return err_make (err, 0, "publish address '%s' is not an IP address", addr);
  fd = socket (ss.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return err_make (err, errno, "socket");
  /* Same option QEMU's listener uses, so TIME_WAIT leftovers do not count. */
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &ss, sl) < 0)
    {
      if (errno == EADDRINUSE)
        return err_make (err, 0, "publish %s:%u/%s: port already in use", addr, port,
                         udp ? "udp" : "tcp");
      return err_make (err, errno, "publish %s:%u/%s", addr, port, udp ? "udp" : "tcp");
    }
  return 0;
}
