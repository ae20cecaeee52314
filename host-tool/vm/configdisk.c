/* SPDX-License-Identifier: Apache-2.0 */
#include "vm/configdisk.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "state/vmstate.h"
#include "sys/fs.h"

struct buf
{
  char *p;
  size_t len, cap;
};

static int
append (struct buf *b, const char *s, size_t n, struct err **err)
{
  if (b->len + n > CONFIG_MAX_TEXT)
    return err_make (err, 0, "config: text larger than %u bytes", CONFIG_MAX_TEXT);
  if (b->len + n + 1 > b->cap)
    {
      size_t cap = b->cap ? b->cap : 4096;
      char *np;
      while (cap < b->len + n + 1)
        cap *= 2;
      np = realloc (b->p, cap);
      if (np == NULL)
        return err_make (err, ENOMEM, "config");
      b->p = np;
      b->cap = cap;
    }
  memcpy (b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

static int
add_line (struct buf *b, const char *key, const char *value, struct err **err)
{
  size_t kl = strlen (key), vl = strlen (value);

  /* The value is taken verbatim up to the line end: a newline would start a
     new key the user never meant to set. */
  if (strchr (value, '\n') != NULL || strchr (value, '\r') != NULL)
    return err_make (err, 0, "config %s: value contains a line break", key);
  if (kl + 1 + vl + 1 > CONFIG_MAX_LINE)
    return err_make (err, 0, "config %s: line longer than %u bytes", key, CONFIG_MAX_LINE);
  if (append (b, key, kl, err) < 0 || append (b, "=", 1, err) < 0 || append (b, value, vl, err) < 0
      || append (b, "\n", 1, err) < 0)
    return -1;
  return 0;
}

static int
add_opt (struct buf *b, const char *key, const char *value, struct err **err)
{
  return value != NULL && *value ? add_line (b, key, value, err) : 0;
}

static int
add_num (struct buf *b, const char *key, long v, struct err **err)
{
  char s[32];
  snprintf (s, sizeof s, "%ld", v);
  return add_line (b, key, s, err);
}

static int
add_list (struct buf *b, const char *key, const char *const *v, size_t n, struct err **err)
{
  for (size_t i = 0; i < n; i++)
    if (add_line (b, key, v[i], err) < 0)
      return -1;
  return 0;
}

static int
add_env (struct buf *b, const char *const *v, size_t n, struct err **err)
{
  for (size_t i = 0; i < n; i++)
    {
      const char *eq = strchr (v[i], '=');
      if (eq == NULL || eq == v[i])
        return err_make (err, 0, "config env '%s': expected NAME=value", v[i]);
      if (add_line (b, "env", v[i], err) < 0)
        return -1;
    }
  return 0;
}

int
configdisk_render (const struct config_input *in, char **text, size_t *len, struct err **err)
{
  struct buf b = { 0 };
  int r;

  r = append (&b, CONFIG_MAGIC "\n", sizeof CONFIG_MAGIC, err);
  if (r < 0 || add_opt (&b, "hostname", in->hostname, err) < 0
      || add_env (&b, in->image_env, in->n_image_env, err) < 0
      || add_env (&b, in->extra_env, in->n_extra_env, err) < 0
      || add_list (&b, "entrypoint", in->entrypoint, in->n_entrypoint, err) < 0
      || add_list (&b, "cmd", in->cmd, in->n_cmd, err) < 0
      || add_opt (&b, "workdir", in->workdir, err) < 0 || add_opt (&b, "user", in->user, err) < 0
      || add_opt (&b, "net.address", in->net_address, err) < 0
      || add_opt (&b, "net.gateway", in->net_gateway, err) < 0
      || add_list (&b, "net.dns", in->net_dns, in->n_net_dns, err) < 0
      || (in->net_mtu > 0 && add_num (&b, "net.mtu", in->net_mtu, err) < 0)
      || add_list (&b, "ssh.authorized_key", in->ssh_keys, in->n_ssh_keys, err) < 0
      || add_opt (&b, "overlay", in->overlay, err) < 0
      || add_opt (&b, "overlay.size", in->overlay_size, err) < 0
      || add_opt (&b, "root.device", in->root_device, err) < 0
      || (in->agent_vsock_port >= 0
          && add_num (&b, "agent.vsock_port", in->agent_vsock_port, err) < 0)
      || (in->agent_tcp_port > 0 && add_num (&b, "agent.tcp_port", in->agent_tcp_port, err) < 0)
      || add_opt (&b, "agent.token", in->agent_token, err) < 0
      || (in->agent_cdp_port > 0 && add_num (&b, "agent.cdp_port", in->agent_cdp_port, err) < 0)
      || (in->init_timeout > 0 && add_num (&b, "init.timeout", in->init_timeout, err) < 0))
    {
      free (b.p);
      return -1;
    }
  if (in->agent_tcp_port > 0 && (in->agent_token == NULL || *in->agent_token == '\0'))
    {
      free (b.p);
      return err_make (err, 0, "config agent.tcp_port requires agent.token");
    }
  *text = b.p;
  *len = b.len;
  return 0;
}

int
configdisk_write (const char *path, const struct config_input *in, struct err **err)
{
  cleanup_free char *text = NULL;
  cleanup_free char *disk = NULL;
  size_t len, padded;

  if (configdisk_render (in, &text, &len, err) < 0)
    return -1;
  padded = (len / CONFIG_BLOCK + 1) * CONFIG_BLOCK; /* at least one NUL ends the text */
  disk = calloc (1, padded);
  if (disk == NULL)
    return err_make (err, ENOMEM, "config disk");
  memcpy (disk, text, len);
  return fs_write_atomic (path, disk, padded, 0600, err);
}
