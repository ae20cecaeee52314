/* SPDX-License-Identifier: Apache-2.0 */
/* The config disk (docs/DESIGN.md "Config disk format"), parsed by pure code:
   no syscalls, so it can be unit-tested and fuzzed on the host. */
#ifndef CHVM_INIT_CONFIG_H
#define CHVM_INIT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CONFIG_MAX_TEXT (1024 * 1024)
#define CONFIG_MAX_LINE 4096
#define CONFIG_HEADER "# chvm-config 1"

/* A growable vector of owned strings, NULL-terminated for execve(). */
struct strv
{
  char **v;
  size_t n;
};

enum overlay_kind
{
  OVERLAY_TMPFS,
  OVERLAY_DISK,
};

/* How the host attached the root filesystem: a virtio-blk disk (serial
   chvm-root), or also as virtio-pmem (/dev/pmem0), which init mounts with
   DAX, falling back to the disk. */
enum root_device
{
  ROOT_BLK,
  ROOT_PMEM,
};

struct chvm_config
{
  char *hostname;
  struct strv env;        /* NAME=value, in file order */
  struct strv entrypoint; /* argv head */
  struct strv cmd;        /* argv tail */
  char *workdir;
  char *user; /* NULL: root */

  int has_address;
  uint8_t address[4];
  unsigned prefix;
  int has_gateway;
  uint8_t gateway[4];
  struct strv dns;
  unsigned mtu; /* 0: leave the kernel's */

  struct strv authorized_keys;

  enum overlay_kind overlay;
  uint64_t overlay_size; /* bytes; 0: tmpfs default (50% of RAM) */
  enum root_device root_device;

  uint32_t agent_vsock_port;
  uint16_t agent_tcp_port;
  char *agent_token;
  uint16_t agent_cdp_port;

  unsigned init_timeout; /* seconds */
};

/* Fills *cfg from the disk bytes buf[0..len) (the text ends at the first NUL).
   On error returns <0 with a message "config chvm-config line N: problem".
   *cfg always holds defaults or parsed values and must be freed with
   config_free(), also after an error. */
int config_parse (const char *buf, size_t len, struct chvm_config *cfg, struct err **err);
void config_free (struct chvm_config *cfg);

/* Appends a copy of s; returns <0 on allocation failure. */
int strv_push (struct strv *sv, const char *s, size_t len);
void strv_free (struct strv *sv);

#endif
