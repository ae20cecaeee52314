/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parser for the config disk.  Every problem stops boot, so each
   check names the line and says what is wrong with it. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"

#define CFG_SRC "config chvm-config"

/* Bounds that are not the file format's but the values' own. */
#define HOSTNAME_MAX 64
#define TOKEN_MIN 32
#define TOKEN_MAX 128
#define TIMEOUT_MAX 3600

int
strv_push (struct strv *sv, const char *s, size_t len)
{
  char **nv, *copy;

  copy = strndup (s, len);
  if (copy == NULL)
    return -1;
  nv = realloc (sv->v, (sv->n + 2) * sizeof *nv);
  if (nv == NULL)
    {
      free (copy);
      return -1;
    }
  nv[sv->n++] = copy;
  nv[sv->n] = NULL;
  sv->v = nv;
  return 0;
}

void
strv_free (struct strv *sv)
{
  for (size_t i = 0; i < sv->n; i++)
    free (sv->v[i]);
  free (sv->v);
  sv->v = NULL;
  sv->n = 0;
}

void
config_free (struct chvm_config *cfg)
{
  free (cfg->hostname);
  free (cfg->workdir);
  free (cfg->user);
  free (cfg->agent_token);
  strv_free (&cfg->env);
  strv_free (&cfg->entrypoint);
  strv_free (&cfg->cmd);
  strv_free (&cfg->dns);
  strv_free (&cfg->authorized_keys);
  memset (cfg, 0, sizeof *cfg);
}

static void
config_defaults (struct chvm_config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->overlay = OVERLAY_TMPFS;
  cfg->root_device = ROOT_BLK;
  cfg->agent_vsock_port = 1024;
  cfg->agent_cdp_port = 9222;
  cfg->init_timeout = 30;
}

/* One value of a line: not NUL-terminated in the buffer. */
struct val
{
  const char *p;
  size_t len;
};

/* Strict unsigned decimal, at most max; config values are canonical, so
   no leading zeros except "0". */
static int
parse_uint (struct val v, uint64_t max, uint64_t *out)
{
  if (v.len > 1 && v.p[0] == '0')
    return -1;
  return num_parse_u64 (v.p, v.len, max, out);
}

/* Dotted quad, each part 0-255 without leading zeros. */
static int
parse_ipv4 (struct val v, uint8_t out[4])
{
  size_t start = 0;

  for (int part = 0; part < 4; part++)
    {
      size_t end = start;
      uint64_t n;
      while (end < v.len && v.p[end] != '.')
        end++;
      if ((part < 3) != (end < v.len))
        return -1;
      if (parse_uint ((struct val){ v.p + start, end - start }, 255, &n) < 0)
        return -1;
      out[part] = (uint8_t) n;
      start = end + 1;
    }
  return 0;
}

/* "1024M": a number with an optional K/M/G/T suffix (binary units). */
static int
parse_size (struct val v, uint64_t *out)
{
  uint64_t n, mult = 1;
  const char *units = "KMGT";
  const char *u;

  if (v.len > 1 && (u = memchr (units, v.p[v.len - 1], 4)) != NULL)
    {
      mult = 1ULL << (10 * (u - units + 1));
      v.len--;
    }
  if (parse_uint (v, UINT64_MAX / mult, &n) < 0 || n == 0)
    return -1;
  *out = n * mult;
  return 0;
}

static int
is_hex (struct val v)
{
  for (size_t i = 0; i < v.len; i++)
    if (!strchr ("0123456789abcdefABCDEF", v.p[i]) || v.p[i] == '\0')
      return 0;
  return 1;
}

/* RFC 1123 labels: letters, digits, '-', dots between labels. */
static int
valid_hostname (struct val v)
{
  if (v.len == 0 || v.len > HOSTNAME_MAX || v.p[0] == '.' || v.p[0] == '-' || v.p[v.len - 1] == '.'
      || v.p[v.len - 1] == '-')
    return 0;
  for (size_t i = 0; i < v.len; i++)
    {
      char c = v.p[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
            || c == '.'))
        return 0;
      if (c == '.' && v.p[i + 1] == '.')
        return 0;
    }
  return 1;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid.
   Rejects overlong forms, surrogates and code points above U+10FFFF. */
static size_t
utf8_seq (const unsigned char *s, size_t n)
{
  size_t len;
  uint32_t cp;

  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    len = 2, cp = s[0] & 0x1f;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    len = 3, cp = s[0] & 0x0f;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    len = 4, cp = s[0] & 0x07;
  else
    return 0;
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++)
    {
      if ((s[i] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i] & 0x3f);
    }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
      || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

/* Problems found in a line; the caller adds the line number. */
enum
{
  KEY_ONCE = 0,
  KEY_REPEAT = 1,
};

struct key_def
{
  const char *name;
  int repeat;
  /* Returns NULL on success, else a static description of the problem. */
  const char *(*set) (struct chvm_config *cfg, struct val v);
};

static const char oom_problem[] = "out of memory";
#define OOM_PROBLEM oom_problem

static const char *
set_string (char **dst, struct val v)
{
  *dst = strndup (v.p, v.len);
  return *dst ? NULL : OOM_PROBLEM;
}

static const char *
push (struct strv *sv, struct val v)
{
  return strv_push (sv, v.p, v.len) < 0 ? OOM_PROBLEM : NULL;
}

static const char *
set_hostname (struct chvm_config *cfg, struct val v)
{
  if (!valid_hostname (v))
    return "invalid hostname (letters, digits, '-', '.'; at most 64)";
  return set_string (&cfg->hostname, v);
}

static const char *
set_env (struct chvm_config *cfg, struct val v)
{
  const char *eq = memchr (v.p, '=', v.len);
  if (eq == NULL || eq == v.p)
    return "env value must be NAME=value";
  return push (&cfg->env, v);
}

static const char *
set_entrypoint (struct chvm_config *cfg, struct val v)
{
  return push (&cfg->entrypoint, v);
}

static const char *
set_cmd (struct chvm_config *cfg, struct val v)
{
  return push (&cfg->cmd, v);
}

static const char *
set_workdir (struct chvm_config *cfg, struct val v)
{
  if (v.len == 0 || v.p[0] != '/')
    return "workdir must be an absolute path";
  return set_string (&cfg->workdir, v);
}

static const char *
set_user (struct chvm_config *cfg, struct val v)
{
  const char *colon = memchr (v.p, ':', v.len);
  if (v.len == 0 || colon == v.p || (colon && colon == v.p + v.len - 1)
      || (colon && memchr (colon + 1, ':', v.len - (colon + 1 - v.p))))
    return "user must be name, uid, name:group or uid:gid";
  return set_string (&cfg->user, v);
}

static const char *
set_address (struct chvm_config *cfg, struct val v)
{
  const char *slash = memchr (v.p, '/', v.len);
  uint64_t prefix;

  if (slash == NULL || parse_ipv4 ((struct val){ v.p, (size_t) (slash - v.p) }, cfg->address) < 0
      || parse_uint ((struct val){ slash + 1, v.len - (slash + 1 - v.p) }, 32, &prefix) < 0)
    return "net.address must be A.B.C.D/prefix";
  cfg->prefix = (unsigned) prefix;
  cfg->has_address = 1;
  return NULL;
}

static const char *
set_gateway (struct chvm_config *cfg, struct val v)
{
  if (parse_ipv4 (v, cfg->gateway) < 0)
    return "net.gateway must be A.B.C.D";
  cfg->has_gateway = 1;
  return NULL;
}

static const char *
set_dns (struct chvm_config *cfg, struct val v)
{
  /* A nameserver address, IPv4 or IPv6: no spaces, nothing exotic. */
  if (v.len == 0 || v.len > 45)
    return "net.dns must be an IP address";
  for (size_t i = 0; i < v.len; i++)
    if (!strchr ("0123456789abcdefABCDEF.:%", v.p[i]) || v.p[i] == '\0')
      return "net.dns must be an IP address";
  return push (&cfg->dns, v);
}

static const char *
set_mtu (struct chvm_config *cfg, struct val v)
{
  uint64_t n;
  if (parse_uint (v, 65535, &n) < 0 || n < 68)
    return "net.mtu must be 68-65535";
  cfg->mtu = (unsigned) n;
  return NULL;
}

static const char *
set_authorized_key (struct chvm_config *cfg, struct val v)
{
  if (v.len == 0)
    return "ssh.authorized_key is empty";
  return push (&cfg->authorized_keys, v);
}

static const char *
set_overlay (struct chvm_config *cfg, struct val v)
{
  if (v.len == 5 && memcmp (v.p, "tmpfs", 5) == 0)
    cfg->overlay = OVERLAY_TMPFS;
  else if (v.len == 4 && memcmp (v.p, "disk", 4) == 0)
    cfg->overlay = OVERLAY_DISK;
  else
    return "overlay must be tmpfs or disk";
  return NULL;
}

static const char *
set_root_device (struct chvm_config *cfg, struct val v)
{
  if (v.len == 3 && memcmp (v.p, "blk", 3) == 0)
    cfg->root_device = ROOT_BLK;
  else if (v.len == 4 && memcmp (v.p, "pmem", 4) == 0)
    cfg->root_device = ROOT_PMEM;
  else
    return "root.device must be blk or pmem";
  return NULL;
}

static const char *
set_overlay_size (struct chvm_config *cfg, struct val v)
{
  if (parse_size (v, &cfg->overlay_size) < 0)
    return "overlay.size must be a positive size like 1024M";
  return NULL;
}

static const char *
set_vsock_port (struct chvm_config *cfg, struct val v)
{
  uint64_t n;
  /* VMADDR_PORT_ANY (0xffffffff) is not a port one can listen on. */
  if (parse_uint (v, UINT32_MAX - 1, &n) < 0)
    return "agent.vsock_port must be 0-4294967294";
  cfg->agent_vsock_port = (uint32_t) n;
  return NULL;
}

static const char *
set_tcp_port (struct chvm_config *cfg, struct val v)
{
  uint64_t n;
  if (parse_uint (v, 65535, &n) < 0)
    return "agent.tcp_port must be 0-65535";
  cfg->agent_tcp_port = (uint16_t) n;
  return NULL;
}

static const char *
set_token (struct chvm_config *cfg, struct val v)
{
  if (v.len < TOKEN_MIN || v.len > TOKEN_MAX || !is_hex (v))
    return "agent.token must be 32-128 hex characters";
  return set_string (&cfg->agent_token, v);
}

static const char *
set_cdp_port (struct chvm_config *cfg, struct val v)
{
  uint64_t n;
  if (parse_uint (v, 65535, &n) < 0 || n == 0)
    return "agent.cdp_port must be 1-65535";
  cfg->agent_cdp_port = (uint16_t) n;
  return NULL;
}

static const char *
set_timeout (struct chvm_config *cfg, struct val v)
{
  uint64_t n;
  if (parse_uint (v, TIMEOUT_MAX, &n) < 0 || n == 0)
    return "init.timeout must be 1-3600 seconds";
  cfg->init_timeout = (unsigned) n;
  return NULL;
}

static const struct key_def keys[] = {
  { "hostname", KEY_ONCE, set_hostname },
  { "env", KEY_REPEAT, set_env },
  { "entrypoint", KEY_REPEAT, set_entrypoint },
  { "cmd", KEY_REPEAT, set_cmd },
  { "workdir", KEY_ONCE, set_workdir },
  { "user", KEY_ONCE, set_user },
  { "net.address", KEY_ONCE, set_address },
  { "net.gateway", KEY_ONCE, set_gateway },
  { "net.dns", KEY_REPEAT, set_dns },
  { "net.mtu", KEY_ONCE, set_mtu },
  { "ssh.authorized_key", KEY_REPEAT, set_authorized_key },
  { "overlay", KEY_ONCE, set_overlay },
  { "overlay.size", KEY_ONCE, set_overlay_size },
  { "root.device", KEY_ONCE, set_root_device },
  { "agent.vsock_port", KEY_ONCE, set_vsock_port },
  { "agent.tcp_port", KEY_ONCE, set_tcp_port },
  { "agent.token", KEY_ONCE, set_token },
  { "agent.cdp_port", KEY_ONCE, set_cdp_port },
  { "init.timeout", KEY_ONCE, set_timeout },
};

#define NKEYS (sizeof keys / sizeof keys[0])

static int
line_error (struct err **err, size_t lineno, const char *problem)
{
  return err_make (err, problem == OOM_PROBLEM ? ENOMEM : 0, CFG_SRC " line %zu: %s", lineno,
                   problem);
}

/* Prints at most 32 bytes of an unknown key, with anything unprintable
   replaced, so the console line stays one readable line. */
static int
unknown_key_error (struct err **err, size_t lineno, struct val key)
{
  char shown[33];
  size_t n = key.len < 32 ? key.len : 32;

  for (size_t i = 0; i < n; i++)
    shown[i] = (key.p[i] >= 0x20 && key.p[i] < 0x7f) ? key.p[i] : '?';
  shown[n] = '\0';
  return err_make (err, 0, CFG_SRC " line %zu: unknown key '%s%s'", lineno, shown,
                   key.len > n ? "..." : "");
}

int
config_parse (const char *buf, size_t len, struct chvm_config *cfg, struct err **err)
{
  unsigned char seen[NKEYS] = { 0 };
  const char *nul = memchr (buf, '\0', len);
  size_t text_len = nul ? (size_t) (nul - buf) : len;
  size_t pos = 0, lineno = 0;
  size_t tcp_port_line = 0;

  config_defaults (cfg);
  if (text_len > CONFIG_MAX_TEXT)
    return err_make (err, 0, CFG_SRC ": text larger than 1 MiB");

  while (pos < text_len)
    {
      const char *line = buf + pos;
      const char *nl = memchr (line, '\n', text_len - pos);
      size_t line_len = nl ? (size_t) (nl - line) : text_len - pos;
      const char *eq, *problem;
      struct val key, v;
      size_t k;

      lineno++;
      pos += line_len + (nl ? 1 : 0);

      if (line_len > CONFIG_MAX_LINE)
        return line_error (err, lineno, "line longer than 4096 bytes");
      for (size_t i = 0, n; i < line_len; i += n)
        {
          n = utf8_seq ((const unsigned char *) line + i, line_len - i);
          if (n == 0)
            return line_error (err, lineno, "invalid UTF-8");
          if (line[i] == '\r')
            return line_error (err, lineno, "carriage return (use \\n line ends)");
        }
      if (lineno == 1)
        {
          if (line_len != strlen (CONFIG_HEADER) || memcmp (line, CONFIG_HEADER, line_len) != 0)
            return line_error (err, lineno, "first line must be '" CONFIG_HEADER "'");
          continue;
        }
      if (line_len == 0 || line[0] == '#')
        continue;

      eq = memchr (line, '=', line_len);
      if (eq == NULL)
        return line_error (err, lineno, "expected key=value");
      key = (struct val){ line, (size_t) (eq - line) };
      v = (struct val){ eq + 1, line_len - key.len - 1 };

      for (k = 0; k < NKEYS; k++)
        if (strlen (keys[k].name) == key.len && memcmp (keys[k].name, key.p, key.len) == 0)
          break;
      if (k == NKEYS)
        return unknown_key_error (err, lineno, key);
      if (seen[k] && keys[k].repeat == KEY_ONCE)
        return err_make (err, 0, CFG_SRC " line %zu: duplicate key '%s'", lineno, keys[k].name);
      seen[k] = 1;
      problem = keys[k].set (cfg, v);
      if (problem != NULL)
        return line_error (err, lineno, problem);
      if (keys[k].set == set_tcp_port)
        tcp_port_line = lineno;
    }

  if (lineno == 0)
    return line_error (err, 1, "first line must be '" CONFIG_HEADER "'");
  /* The TCP transport is reachable by anything that reaches the port, so it
     is only offered with a token. */
  if (cfg->agent_tcp_port != 0 && cfg->agent_token == NULL)
    return line_error (err, tcp_port_line, "agent.tcp_port requires agent.token");
  if (cfg->has_gateway && !cfg->has_address)
    return err_make (err, 0, CFG_SRC ": net.gateway without net.address");
  return 0;
}
