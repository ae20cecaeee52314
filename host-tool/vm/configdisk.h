/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The config disk (serial chvm-config) that tells guest-init what to run:
 * "# chvm-config 1" then key=value lines, NUL-padded to 4 KiB (DESIGN.md).
 * Rendering is pure so its output can be checked byte for byte.
 */
#ifndef CHVM_CONFIGDISK_H
#define CHVM_CONFIGDISK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CONFIG_MAGIC "# chvm-config 1"
#define CONFIG_MAX_TEXT (1u << 20)
#define CONFIG_MAX_LINE 4096
#define CONFIG_BLOCK 4096

struct config_input
{
  const char *hostname;         /* NULL: guest default */
  const char *const *image_env; /* image Env ("NAME=value"), then extra_env */
  size_t n_image_env;
  const char *const *extra_env; /* --env; a later NAME overrides (guest side) */
  size_t n_extra_env;
  const char *const *entrypoint;
  size_t n_entrypoint;
  const char *const *cmd;
  size_t n_cmd;
  const char *workdir; /* NULL or "": omitted */
  const char *user;
  const char *net_address; /* "A.B.C.D/prefix" */
  const char *net_gateway;
  const char *const *net_dns;
  size_t n_net_dns;
  unsigned net_mtu; /* 0: omitted */
  const char *const *ssh_keys;
  size_t n_ssh_keys;
  const char *overlay;      /* "tmpfs" | "disk" | NULL */
  const char *overlay_size; /* e.g. "1024M" */
  const char *root_device;  /* "pmem" | "blk" | NULL (blk) */
  int agent_vsock_port;     /* <0: omitted */
  int agent_tcp_port;       /* <=0: omitted */
  const char *agent_token;
  int agent_cdp_port; /* <=0: omitted */
  int init_timeout;   /* <=0: omitted */
};

/* Renders the text (not padded).  Refuses values that contain a newline,
   env entries without '=', lines over CONFIG_MAX_LINE and a text over
   CONFIG_MAX_TEXT, naming the offending key. */
int configdisk_render (const struct config_input *in, char **text, size_t *len, struct err **err);

/* Renders and writes path, padded with NULs to a multiple of CONFIG_BLOCK. */
int configdisk_write (const char *path, const struct config_input *in, struct err **err);

#endif
