/* SPDX-License-Identifier: Apache-2.0 */
/* Host ports: "[HOST:]PORT" parsed, a free one picked, one checked free. */
#ifndef CHVM_SYS_PORT_H
#define CHVM_SYS_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* "HOST:PORT", "[IPV6]:PORT" or "PORT": host gets HOST without brackets
   (left as it was when s names none: the caller's default), *port the
   port (0-65535; callers that need one say so). */
int port_parse (const char *s, char *host, size_t host_len, uint16_t *port, struct err **err);

/* An endpoint's "[ADDR:]PORT" with an IPv4 ADDR (addr keeps its value when
   s names none); *beyond: ADDR is not a loopback one (127/8). */
int port_parse_ipv4 (const char *s, char *addr, size_t addr_len, uint16_t *port, bool *beyond,
                     struct err **err);

/* A free TCP port on IPv4 address addr, chosen by the kernel. */
int port_pick (const char *addr, uint16_t *port, struct err **err);

/* Fails with "ADDR:PORT/PROTO is already in use" when it cannot be bound. */
int port_check (const char *addr, uint16_t port, bool udp, struct err **err);

#endif
