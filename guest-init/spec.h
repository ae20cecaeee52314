/* SPDX-License-Identifier: Apache-2.0 */
/* The entrypoint's process spec as docker builds it: user and groups looked
   up in the image's /etc/passwd and /etc/group text, and the environment
   merged.  Pure code (no syscalls), unit-tested on the host. */
#ifndef CHVM_INIT_SPEC_H
#define CHVM_INIT_SPEC_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "err.h"

#define SPEC_MAX_GROUPS 64
#define SPEC_HOME_MAX 256

struct spec_user
{
  uid_t uid;
  gid_t gid;
  char home[SPEC_HOME_MAX];
  gid_t groups[SPEC_MAX_GROUPS]; /* supplementary groups */
  size_t ngroups;
};

/* Resolves a docker `User` string (NULL or "" = root) against the text of
   /etc/passwd and /etc/group (either may be NULL when the file is missing),
   following runc's GetExecUser: a name must exist; a numeric uid or gid need
   not; supplementary groups are those listing the user by name, and only
   when no group was given. */
int spec_resolve_user (const char *spec, const char *passwd, const char *group,
                       struct spec_user *out, struct err **err);

/* Builds the entrypoint environment in *out: the entries of env in order, a
   later NAME replacing an earlier one in place, then PATH (docker's default)
   and HOME=home when absent. */
int spec_build_env (const struct strv *env, const char *home, struct strv *out, struct err **err);

/* Returns the value of NAME in env (a NULL-terminated NAME=value list), or
   NULL. */
const char *spec_getenv (char *const *env, const char *name);

#define SPEC_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#endif
