/* SPDX-License-Identifier: Apache-2.0 */
/* Network setup with libnl-route-3: libnl builds the requests (link up with
   MTU, IPv4 address, default route, as in libmnl's rtnl examples) and
   nl_request() is the one place that sends them, waits for the ACK up to a
   CLOCK_MONOTONIC deadline and turns an NLMSG_ERROR, with the kernel's
   extended ACK text, into an error. */
#include "net.h"
#include "clock.h"

#include <errno.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "io.h"

#define NL_TIMEOUT_MS 5000

struct ack
{
  int done;
  int error; /* negative errno from the kernel */
  char extack[160];
};

/* The extended ACK message (NLMSGERR_ATTR_MSG) following an error, if
   any; e points into the whole NLMSG_ERROR message of nlmsg_len len. */
static void
extack_msg (const struct nlmsghdr *h, struct ack *ack)
{
  const struct nlmsgerr *e = NLMSG_DATA (h);
  size_t off = NLMSG_HDRLEN + sizeof *e;
  const struct nlattr *a;
  int rem;

  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
    return;
  /* Without NETLINK_CAP_ACK the original request follows the error. */
  if (!(h->nlmsg_flags & NLM_F_CAPPED))
    off += NLMSG_ALIGN (e->msg.nlmsg_len) - NLMSG_HDRLEN;
  if (off >= h->nlmsg_len)
    return;
  nla_for_each_attr (a, (struct nlattr *) ((char *) h + off), (int) (h->nlmsg_len - off),
                     rem) if (nla_type (a) == NLMSGERR_ATTR_MSG && nla_len (a) > 0)
      snprintf (ack->extack, sizeof ack->extack, "%.*s", nla_len (a), (const char *) nla_data (a));
}

static int
on_error (struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
  struct ack *ack = arg;

  (void) who;
  ack->done = 1;
  ack->error = e->error;
  if (e->error != 0)
    extack_msg ((const struct nlmsghdr *) ((char *) e - NLMSG_HDRLEN), ack);
  return NL_STOP;
}

static int
on_ack (struct nl_msg *msg, void *arg)
{
  struct ack *ack = arg;

  (void) msg;
  ack->done = 1;
  return NL_STOP;
}

/* Sends msg with NLM_F_ACK and waits for its ACK until the deadline.  what
   names the request in the error. */
static int
nl_request (struct nl_sock *sk, struct nl_msg *msg, const char *what, struct err **err)
{
  double deadline = clock_now_ms () + NL_TIMEOUT_MS;
  struct nl_cb *cb = nl_cb_clone (nl_socket_get_cb (sk));
  struct ack ack = { 0 };
  int r;

  if (cb == NULL)
    return err_make (err, ENOMEM, "%s", what);
  nl_cb_err (cb, NL_CB_CUSTOM, on_error, &ack);
  nl_cb_set (cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, &ack);
  nlmsg_hdr (msg)->nlmsg_flags |= NLM_F_ACK;
  r = nl_send_auto (sk, msg);
  while (r >= 0 && !ack.done)
    {
      int left = clock_left_ms (deadline);
      struct timeval tv = { .tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000 };
      /* libnl blocks in recvmsg(); the socket timeout bounds each wait. */
      if (left == 0)
        {
          nl_cb_put (cb);
          return err_make (err, ETIMEDOUT, "%s: waiting for the kernel's ACK", what);
        }
      setsockopt (nl_socket_get_fd (sk), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      r = nl_recvmsgs (sk, cb);
      if (r == -NLE_AGAIN || r == -NLE_INTR)
        r = 0;
    }
  nl_cb_put (cb);
  /* On a kernel error libnl also returns its own, vaguer, code: the
     kernel's errno and text come first. */
  if (ack.error != 0)
    return err_make (err, -ack.error, "%s%s%s", what, ack.extack[0] ? ": " : "", ack.extack);
  if (r < 0)
    return err_make (err, 0, "%s: %s", what, nl_geterror (r));
  return 0;
}

static int
link_up (struct nl_sock *sk, int ifindex, unsigned mtu, const char *name, struct err **err)
{
  struct rtnl_link *orig = rtnl_link_alloc (), *change = rtnl_link_alloc ();
  struct nl_msg *msg = NULL;
  char what[64];
  int r;

  snprintf (what, sizeof what, "set link %s up (mtu %u)", name, mtu);
  if (orig == NULL || change == NULL)
    r = err_make (err, ENOMEM, "%s", what);
  else
    {
      rtnl_link_set_ifindex (orig, ifindex);
      rtnl_link_set_flags (change, IFF_UP);
      if (mtu != 0)
        rtnl_link_set_mtu (change, mtu);
      r = rtnl_link_build_change_request (orig, change, 0, &msg);
      r = r < 0 ? err_make (err, 0, "%s: %s", what, nl_geterror (r))
                : nl_request (sk, msg, what, err);
    }
  nlmsg_free (msg);
  rtnl_link_put (orig);
  rtnl_link_put (change);
  return r;
}

static int
addr_add (struct nl_sock *sk, int ifindex, const struct chvm_config *cfg, struct err **err)
{
  struct rtnl_addr *addr = rtnl_addr_alloc ();
  struct nl_addr *local = nl_addr_build (AF_INET, cfg->address, 4);
  struct nl_msg *msg = NULL;
  char what[64];
  int r;

  snprintf (what, sizeof what, "add address %u.%u.%u.%u/%u to eth0", cfg->address[0],
            cfg->address[1], cfg->address[2], cfg->address[3], cfg->prefix);
  if (addr == NULL || local == NULL)
    r = err_make (err, ENOMEM, "%s", what);
  else
    {
      nl_addr_set_prefixlen (local, (int) cfg->prefix);
      rtnl_addr_set_ifindex (addr, ifindex);
      /* Sets IFA_LOCAL and, for IPv4, IFA_ADDRESS too. */
      r = rtnl_addr_set_local (addr, local);
      if (r >= 0)
        r = rtnl_addr_build_add_request (addr, NLM_F_CREATE | NLM_F_REPLACE, &msg);
      r = r < 0 ? err_make (err, 0, "%s: %s", what, nl_geterror (r))
                : nl_request (sk, msg, what, err);
    }
  nlmsg_free (msg);
  nl_addr_put (local);
  rtnl_addr_put (addr);
  return r;
}

static int
route_add_default (struct nl_sock *sk, int ifindex, const uint8_t gw[4], struct err **err)
{
  static const uint8_t any[4];
  struct rtnl_route *route = rtnl_route_alloc ();
  struct rtnl_nexthop *nh = rtnl_route_nh_alloc ();
  struct nl_addr *dst = nl_addr_build (AF_INET, any, 4);
  struct nl_addr *via = nl_addr_build (AF_INET, gw, 4);
  struct nl_msg *msg = NULL;
  char what[64];
  int r;

  snprintf (what, sizeof what, "add default route via %u.%u.%u.%u", gw[0], gw[1], gw[2], gw[3]);
  if (route == NULL || nh == NULL || dst == NULL || via == NULL)
    {
      r = err_make (err, ENOMEM, "%s", what);
      rtnl_route_nh_free (nh);
    }
  else
    {
      nl_addr_set_prefixlen (dst, 0);
      rtnl_route_set_family (route, AF_INET);
      rtnl_route_set_table (route, RT_TABLE_MAIN);
      rtnl_route_set_protocol (route, RTPROT_BOOT);
      rtnl_route_set_scope (route, RT_SCOPE_UNIVERSE);
      rtnl_route_set_type (route, RTN_UNICAST);
      rtnl_route_set_dst (route, dst);
      rtnl_route_nh_set_ifindex (nh, ifindex);
      rtnl_route_nh_set_gateway (nh, via);
      rtnl_route_add_nexthop (route, nh); /* route owns nh now */
      r = rtnl_route_build_add_request (route, NLM_F_CREATE | NLM_F_REPLACE, &msg);
      r = r < 0 ? err_make (err, 0, "%s: %s", what, nl_geterror (r))
                : nl_request (sk, msg, what, err);
    }
  nlmsg_free (msg);
  nl_addr_put (dst);
  nl_addr_put (via);
  rtnl_route_put (route);
  return r;
}

int
net_configure (const struct chvm_config *cfg, struct err **err)
{
  struct nl_sock *sk = nl_socket_alloc ();
  int one = 1, lo, eth, r;

  if (sk == NULL)
    return err_make (err, ENOMEM, "netlink socket");
  r = nl_connect (sk, NETLINK_ROUTE);
  if (r < 0)
    {
      nl_socket_free (sk);
      return err_make (err, 0, "rtnetlink socket: %s", nl_geterror (r));
    }
  /* Ask for the kernel's error text, and not to echo our request back. */
  setsockopt (nl_socket_get_fd (sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt (nl_socket_get_fd (sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);

  lo = (int) if_nametoindex ("lo");
  if (lo == 0)
    r = err_make (err, errno, "no loopback interface");
  else
    r = link_up (sk, lo, 0, "lo", err);
  if (r >= 0 && cfg->has_address)
    {
      eth = (int) if_nametoindex ("eth0");
      if (eth == 0)
        r = err_make (err, errno, "no eth0");
      else if ((r = link_up (sk, eth, cfg->mtu, "eth0", err)) >= 0
               && (r = addr_add (sk, eth, cfg, err)) >= 0 && cfg->has_gateway)
        r = route_add_default (sk, eth, cfg->gateway, err);
    }
  nl_socket_free (sk);
  return r < 0 ? r : 0;
}
