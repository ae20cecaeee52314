/* SPDX-License-Identifier: Apache-2.0 */
/* rtnetlink written by hand: libnl-route is not needed for four requests.
   The requests follow libmnl's rtnl examples; nl_request() is the one place
   that sends, waits for the ACK and turns NLMSG_ERROR (with the kernel's
   extended ACK text) into an error. */
#include "net.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "io.h"

#define NL_BUF 4096
#define NL_TIMEOUT_MS 5000

struct nl_msg_buf
{
  union
  {
    struct nlmsghdr hdr;
    char buf[NL_BUF];
  };
};

static int
nl_open (struct err **err)
{
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  cleanup_close int fd = -1;
  int one = 1;

  fd = socket (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0)
    return err_make (err, errno, "rtnetlink socket");
  /* Ask for the kernel's error text, and not to echo our request back. */
  setsockopt (fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt (fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    return err_make (err, errno, "bind rtnetlink socket");
  return steal_fd (&fd);
}

/* Appends attribute type with len bytes of data; refuses to overflow. */
static int
nl_put (struct nl_msg_buf *m, unsigned short type, const void *data,
        size_t len)
{
  struct rtattr *rta;
  size_t off = NLMSG_ALIGN (m->hdr.nlmsg_len);

  if (off + RTA_SPACE (len) > sizeof m->buf)
    return -1;
  rta = (struct rtattr *) (m->buf + off);
  rta->rta_type = type;
  rta->rta_len = (unsigned short) RTA_LENGTH (len);
  memcpy (RTA_DATA (rta), data, len);
  m->hdr.nlmsg_len = (unsigned) (off + RTA_SPACE (len));
  return 0;
}

/* The extended ACK message (NLMSGERR_ATTR_MSG) of an error, if any. */
static const char *
nl_extack_msg (const struct nlmsghdr *h)
{
  const struct nlmsgerr *e = NLMSG_DATA (h);
  size_t off = NLMSG_HDRLEN + sizeof *e;
  const struct rtattr *rta;
  int len;

  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
    return NULL;
  /* Without NETLINK_CAP_ACK the original request follows the error. */
  if (!(h->nlmsg_flags & NLM_F_CAPPED))
    off += NLMSG_ALIGN (e->msg.nlmsg_len) - NLMSG_HDRLEN;
  if (off >= h->nlmsg_len)
    return NULL;
  len = (int) (h->nlmsg_len - off);
  for (rta = (const struct rtattr *) ((const char *) h + off);
       RTA_OK (rta, len); rta = RTA_NEXT (rta, len))
    if (rta->rta_type == NLMSGERR_ATTR_MSG && RTA_PAYLOAD (rta) > 0
        && ((const char *) RTA_DATA (rta))[RTA_PAYLOAD (rta) - 1] == '\0')
      return RTA_DATA (rta);
  return NULL;
}

/* Sends m with NLM_F_ACK and waits (bounded) for its ACK.  what names the
   request in the error. */
static int
nl_request (int fd, struct nl_msg_buf *m, const char *what, struct err **err)
{
  static unsigned seq;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  struct timespec deadline = deadline_in (NL_TIMEOUT_MS);
  char reply[NL_BUF];

  m->hdr.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  m->hdr.nlmsg_seq = ++seq;
  if (sendto (fd, m->buf, m->hdr.nlmsg_len, 0, (struct sockaddr *) &kernel,
              sizeof kernel)
      < 0)
    return err_make (err, errno, "%s: send", what);

  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      struct nlmsghdr *h;
      ssize_t n;
      int r = poll (&pfd, 1, deadline_left_ms (&deadline));

      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return err_make (err, r == 0 ? ETIMEDOUT : errno,
                         "%s: waiting for the kernel's ACK", what);
      n = recv (fd, reply, sizeof reply, 0);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return err_make (err, errno, "%s: recv", what);
        }
      for (h = (struct nlmsghdr *) reply; NLMSG_OK (h, (size_t) n);
           h = NLMSG_NEXT (h, n))
        {
          const struct nlmsgerr *e;
          const char *ext;

          if (h->nlmsg_seq != m->hdr.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR)
            continue;
          if (h->nlmsg_len < NLMSG_LENGTH (sizeof *e))
            return err_make (err, EPROTO, "%s: short netlink error", what);
          e = NLMSG_DATA (h);
          if (e->error == 0)
            return 0;
          ext = nl_extack_msg (h);
          return err_make (err, -e->error, "%s%s%s", what, ext ? ": " : "",
                           ext ? ext : "");
        }
    }
}

static void
nl_init (struct nl_msg_buf *m, unsigned short type, unsigned short flags,
         const void *hdr, size_t hdrlen)
{
  memset (m, 0, sizeof *m);
  m->hdr.nlmsg_type = type;
  m->hdr.nlmsg_flags = flags;
  m->hdr.nlmsg_len = (unsigned) NLMSG_LENGTH (hdrlen);
  memcpy (NLMSG_DATA (&m->hdr), hdr, hdrlen);
}

static int
link_up (int fd, int ifindex, unsigned mtu, const char *name, struct err **err)
{
  struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC,
                           .ifi_index = ifindex,
                           .ifi_flags = IFF_UP,
                           .ifi_change = IFF_UP };
  struct nl_msg_buf m;
  char what[64];

  nl_init (&m, RTM_NEWLINK, 0, &ifi, sizeof ifi);
  if (mtu != 0 && nl_put (&m, IFLA_MTU, &mtu, sizeof mtu) < 0)
    return err_make (err, EMSGSIZE, "link %s: message too long", name);
  snprintf (what, sizeof what, "set link %s up (mtu %u)", name, mtu);
  return nl_request (fd, &m, what, err);
}

static int
addr_add (int fd, int ifindex, const struct chvm_config *cfg,
          struct err **err)
{
  struct ifaddrmsg ifa = { .ifa_family = AF_INET,
                           .ifa_prefixlen = (unsigned char) cfg->prefix,
                           .ifa_scope = RT_SCOPE_UNIVERSE,
                           .ifa_index = (unsigned) ifindex };
  struct nl_msg_buf m;
  char what[64];

  nl_init (&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &ifa, sizeof ifa);
  /* IPv4 wants both IFA_LOCAL and IFA_ADDRESS (see libmnl rtnl-addr-add). */
  if (nl_put (&m, IFA_LOCAL, cfg->address, 4) < 0
      || nl_put (&m, IFA_ADDRESS, cfg->address, 4) < 0)
    return err_make (err, EMSGSIZE, "address: message too long");
  snprintf (what, sizeof what, "add address %u.%u.%u.%u/%u to eth0",
            cfg->address[0], cfg->address[1], cfg->address[2],
            cfg->address[3], cfg->prefix);
  return nl_request (fd, &m, what, err);
}

static int
route_add_default (int fd, int ifindex, const uint8_t gw[4], struct err **err)
{
  struct rtmsg rtm = { .rtm_family = AF_INET,
                       .rtm_table = RT_TABLE_MAIN,
                       .rtm_protocol = RTPROT_BOOT,
                       .rtm_scope = RT_SCOPE_UNIVERSE,
                       .rtm_type = RTN_UNICAST };
  uint32_t oif = (uint32_t) ifindex;
  struct nl_msg_buf m;
  char what[64];

  nl_init (&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rtm, sizeof rtm);
  if (nl_put (&m, RTA_OIF, &oif, sizeof oif) < 0
      || nl_put (&m, RTA_GATEWAY, gw, 4) < 0)
    return err_make (err, EMSGSIZE, "route: message too long");
  snprintf (what, sizeof what, "add default route via %u.%u.%u.%u", gw[0],
            gw[1], gw[2], gw[3]);
  return nl_request (fd, &m, what, err);
}

int
net_configure (const struct chvm_config *cfg, struct err **err)
{
  cleanup_close int fd = nl_open (err);
  int lo, eth, r;

  if (fd < 0)
    return fd;
  lo = (int) if_nametoindex ("lo");
  if (lo == 0)
    return err_make (err, errno, "no loopback interface");
  if ((r = link_up (fd, lo, 0, "lo", err)) < 0)
    return r;
  if (!cfg->has_address)
    return 0;
  eth = (int) if_nametoindex ("eth0");
  if (eth == 0)
    return err_make (err, errno, "no eth0");
  if ((r = link_up (fd, eth, cfg->mtu, "eth0", err)) < 0
      || (r = addr_add (fd, eth, cfg, err)) < 0)
    return r;
  if (cfg->has_gateway && (r = route_add_default (fd, eth, cfg->gateway, err)) < 0)
    return r;
  return 0;
}
