/* SPDX-License-Identifier: Apache-2.0 */
#include "spec.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"

/* Fields of one /etc/passwd or /etc/group line, pointing into a copy. */
#define MAX_FIELDS 7

struct fields
{
  const char *f[MAX_FIELDS];
  size_t len[MAX_FIELDS];
  size_t n;
};

/* Splits line[0..len) on ':' into at most MAX_FIELDS fields. */
static void
split_fields (const char *line, size_t len, struct fields *fl)
{
  size_t start = 0;

  fl->n = 0;
  for (size_t i = 0; i <= len && fl->n < MAX_FIELDS; i++)
    if (i == len || line[i] == ':')
      {
        fl->f[fl->n] = line + start;
        fl->len[fl->n] = i - start;
        fl->n++;
        start = i + 1;
      }
}

/* Strict decimal id below 2^32-1 ((uid_t)-1 means "no change" to setuid). */
static int
parse_id (const char *s, size_t len, uint32_t *out)
{
  uint64_t n;

  if (num_parse_u64 (s, len, UINT32_MAX - 1, &n) < 0)
    return -1;
  *out = (uint32_t) n;
  return 0;
}

static int
field_eq (const struct fields *fl, size_t i, const char *s, size_t len)
{
  return i < fl->n && fl->len[i] == len && memcmp (fl->f[i], s, len) == 0;
}

/* Calls fn for each well-formed line of text with at least min_fields
   fields; stops when fn returns nonzero and returns that value. */
static int
for_each_entry (const char *text, size_t min_fields, int (*fn) (const struct fields *fl, void *ctx),
                void *ctx)
{
  const char *p = text;

  while (p != NULL && *p != '\0')
    {
      const char *nl = strchr (p, '\n');
      size_t len = nl ? (size_t) (nl - p) : strlen (p);
      struct fields fl;
      int r;

      split_fields (p, len, &fl);
      p = nl ? nl + 1 : NULL;
      if (len == 0 || fl.f[0][0] == '#' || fl.n < min_fields)
        continue;
      r = fn (&fl, ctx);
      if (r != 0)
        return r;
    }
  return 0;
}

struct user_query
{
  const char *name; /* set when the spec is not numeric */
  size_t name_len;
  uint32_t uid;
  struct spec_user *out;
  char matched_name[256];
};

static int
match_passwd (const struct fields *fl, void *ctx)
{
  struct user_query *q = ctx;
  uint32_t uid, gid;

  /* name:password:uid:gid:gecos:home:shell */
  if (parse_id (fl->f[2], fl->len[2], &uid) < 0 || parse_id (fl->f[3], fl->len[3], &gid) < 0)
    return 0;
  if (q->name ? !field_eq (fl, 0, q->name, q->name_len) : uid != q->uid)
    return 0;
  if (fl->len[0] >= sizeof q->matched_name || fl->len[5] >= sizeof q->out->home)
    return 0;
  q->out->uid = uid;
  q->out->gid = gid;
  memcpy (q->out->home, fl->f[5], fl->len[5]);
  q->out->home[fl->len[5]] = '\0';
  memcpy (q->matched_name, fl->f[0], fl->len[0]);
  q->matched_name[fl->len[0]] = '\0';
  return 1; /* first match wins, as in runc */
}

struct group_query
{
  const char *arg; /* explicit group argument, or NULL */
  size_t arg_len;
  int arg_numeric;
  uint32_t arg_gid;
  const char *member; /* user name for supplementary groups */
  struct spec_user *out;
  int found;
  int overflow;
};

static int
is_member (const struct fields *fl, const char *name)
{
  const char *p;
  size_t len, start = 0, nlen = strlen (name);

  /* "name:x:gid" has no members field; f[3] is then unset (or left over
     from the previous line). */
  if (fl->n < 4)
    return 0;
  p = fl->f[3];
  len = fl->len[3];
  for (size_t i = 0; i <= len; i++)
    if (i == len || p[i] == ',')
      {
        if (i - start == nlen && memcmp (p + start, name, nlen) == 0)
          return 1;
        start = i + 1;
      }
  return 0;
}

static int
match_group (const struct fields *fl, void *ctx)
{
  struct group_query *q = ctx;
  uint32_t gid;

  /* name:password:gid:members */
  if (parse_id (fl->f[2], fl->len[2], &gid) < 0)
    return 0;
  if (q->arg != NULL)
    {
      if (q->arg_numeric ? gid != q->arg_gid : !field_eq (fl, 0, q->arg, q->arg_len))
        return 0;
      q->out->gid = gid;
      q->found = 1;
      return 1;
    }
  if (!is_member (fl, q->member))
    return 0;
  if (q->out->ngroups == SPEC_MAX_GROUPS)
    {
      q->overflow = 1;
      return 1;
    }
  q->out->groups[q->out->ngroups++] = gid;
  return 0;
}

int
spec_resolve_user (const char *spec, const char *passwd, const char *group, struct spec_user *out,
                   struct err **err)
{
  struct user_query uq = { .out = out };
  struct group_query gq = { .out = out };
  const char *colon, *user_arg = spec ? spec : "";
  size_t user_len;
  int numeric, matched;

  memset (out, 0, sizeof *out);
  out->home[0] = '/';
  colon = strchr (user_arg, ':');
  user_len = colon ? (size_t) (colon - user_arg) : strlen (user_arg);
  if (colon != NULL)
    {
      gq.arg = colon + 1;
      gq.arg_len = strlen (gq.arg);
      if (gq.arg_len == 0)
        return err_make (err, 0, "user '%s': empty group", user_arg);
      gq.arg_numeric = parse_id (gq.arg, gq.arg_len, &gq.arg_gid) == 0;
    }

  numeric = parse_id (user_arg, user_len, &uq.uid) == 0;
  if (!numeric)
    {
      uq.name = user_arg;
      uq.name_len = user_len;
    }
  matched = user_len > 0 && passwd != NULL && for_each_entry (passwd, 7, match_passwd, &uq) == 1;
  if (!matched && user_len > 0)
    {
      if (!numeric)
        return err_make (err, ENOENT, "unable to find user %.*s in /etc/passwd", (int) user_len,
                         user_arg);
      out->uid = uq.uid;
    }

  if (gq.arg != NULL || matched)
    {
      gq.member = uq.matched_name;
      if (group != NULL)
        for_each_entry (group, 3, match_group, &gq);
      if (gq.overflow)
        return err_make (err, E2BIG, "user %s is in more than %d groups", uq.matched_name,
                         SPEC_MAX_GROUPS);
      if (gq.arg != NULL && !gq.found)
        {
          if (!gq.arg_numeric)
            return err_make (err, ENOENT, "unable to find group %s in /etc/group", gq.arg);
          out->gid = gq.arg_gid;
        }
    }
  return 0;
}

const char *
spec_getenv (char *const *env, const char *name)
{
  size_t nlen = strlen (name);

  for (; env != NULL && *env != NULL; env++)
    if (strncmp (*env, name, nlen) == 0 && (*env)[nlen] == '=')
      return *env + nlen + 1;
  return NULL;
}

/* Index of the entry with the same NAME as kv (up to '='), or -1. */
static long
env_find (const struct strv *sv, const char *kv)
{
  size_t nlen = strcspn (kv, "=");

  for (size_t i = 0; i < sv->n; i++)
    if (strncmp (sv->v[i], kv, nlen) == 0 && sv->v[i][nlen] == '=')
      return (long) i;
  return -1;
}

static int
env_set (struct strv *out, const char *kv, struct err **err)
{
  long i = env_find (out, kv);
  char *copy;

  if (i < 0)
    {
      if (strv_push (out, kv, strlen (kv)) < 0)
        return err_make (err, ENOMEM, "building the environment");
      return 0;
    }
  copy = strdup (kv);
  if (copy == NULL)
    return err_make (err, ENOMEM, "building the environment");
  free (out->v[i]);
  out->v[i] = copy;
  return 0;
}

int
spec_build_env (const struct strv *env, const char *home, struct strv *out, struct err **err)
{
  int r;

  for (size_t i = 0; i < env->n; i++)
    if ((r = env_set (out, env->v[i], err)) < 0)
      return r;
  if (env_find (out, "PATH=") < 0 && (r = env_set (out, "PATH=" SPEC_DEFAULT_PATH, err)) < 0)
    return r;
  if (env_find (out, "HOME=") < 0)
    {
      char kv[SPEC_HOME_MAX + 8];
      snprintf (kv, sizeof kv, "HOME=%s", home);
      if ((r = env_set (out, kv, err)) < 0)
        return r;
    }
  return 0;
}
