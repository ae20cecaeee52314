/* SPDX-License-Identifier: Apache-2.0 */
/*
 * VM networking on the host.
 *
 * QEMU user-net needs only host ports: a free loopback port for the agent
 * and a check that each --publish port is free.
 *
 * The tap mode (CH, or QEMU with --net tap) gives each VM a persistent tap
 * on the bridge chvm0 (10.213.0.1/24), a guest address from that subnet that
 * no other VM's vm.json holds, NAT out through the nft table `ip chvm`, and
 * --publish as DNAT map elements of that table (on the publish's address
 * only, unless it is 0.0.0.0).  Taps are isolated bridge ports, and the
 * table `bridge chvm` admits from each only its VM's MAC and address.  Everything can be done
 * inside a named network namespace (--netns), which is how it is tested.
 * Commands (ip, nft) run through posix_spawn with an argv, never a shell.
 * The tap outlives the VMM on purpose: standby keeps it so that TCP
 * connections through it survive a restore.
 */
#ifndef CHVM_NET_H
#define CHVM_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "state/vmstate.h"

#define NET_BRIDGE "chvm0"
#define NET_PREFIX 24
#define NET_SUBNET 0x0ad50000u  /* 10.213.0.0 */
#define NET_GATEWAY 0x0ad50001u /* 10.213.0.1, the bridge */

/* "[ADDR:]HOST:GUEST[/udp|/tcp]" (ADDR may be [v6]); default addr 127.0.0.1.
   HOST and GUEST may be ranges LO-HI of equal length; a lone "LO-HI" is the
   same range on both sides. */
int net_parse_publish (const char *s, struct publish *out, struct err **err);

/* Whether two publishes share a host port of the same protocol (the
   address is not compared: QEMU and nft key on the port). */
bool net_publish_overlap (const struct publish *a, const struct publish *b);

/* The lowest free guest address in the subnet (.2 - .254), given the ones
   in use (host byte order); pure. */
int net_alloc_address (const uint32_t *used, size_t n, uint32_t *out, struct err **err);

/* Parses "A.B.C.D[/prefix]" into host byte order. */
int net_parse_ipv4 (const char *s, uint32_t *addr, struct err **err);

/* Tap name and locally administered MAC derived from the guest address, so
   they are unique whenever addresses are. */
void net_tap_name (uint32_t addr, char *out, size_t len);
void net_mac (uint32_t addr, char *out, size_t len);

/* Moves this process into /run/netns/NAME, or back into the namespace it
   started in for NULL or "": the VMM spawned next must live where its tap
   is. */
int net_enter_netns (const char *netns, struct err **err);

/* Bridge + NAT table (idempotent), then the VM's tap and DNAT elements.
   netns NULL: the current namespace; "" the one chvm started in; else
   /run/netns/NAME. */
int net_setup_vm (const char *netns, const struct vm_record *r, struct err **err);
/* Recreates the tap only (restore), isolated on the bridge and admitting
   only the record's MAC and address.  With a vmm_uid the tap is that uid's
   (TUNSETOWNER), so its VMM can open it unprivileged. */
int net_ensure_tap (const char *netns, const struct vm_record *r, struct err **err);
/* Cloud Hypervisor v48 gives a tap it opens an IPv4 address of its own
   (NetConfig.ip defaults to 192.168.249.1) in the namespace of the VMM; a
   bridge port must have none, so chvm removes it after start and restore. */
int net_tap_clear_addresses (const char *tap, struct err **err);
/* Removes the VM's tap, its filter and the DNAT elements that map to its
   address (never another VM's); missing ones are not an error. */
int net_teardown_vm (const char *netns, const struct vm_record *r, struct err **err);
/* Removes the bridge and the nft tables (when no VM uses them any more), and
   turns ip_forward off again if chvm turned it on. */
int net_teardown_all (const char *netns, struct err **err);

#endif
