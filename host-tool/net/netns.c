/* SPDX-License-Identifier: Apache-2.0 */
#include "net/netns.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sys/proc.h"

static int
check_name (const char *name, struct err **err)
{
  if (name[0] == '\0' || name[0] == '.' || strchr (name, '/') != NULL || strlen (name) > 63)
    return err_make (err, EINVAL, "bad network namespace name '%s'", name);
  return 0;
}

int
net_netns_add (const char *name, struct err **err)
{
  const char *const argv[] = { "ip", "netns", "add", name, NULL };

  if (check_name (name, err) < 0)
    return -1;
  if (proc_run (argv, NULL, false, err) < 0)
    return err_wrap (err, "network namespace %s", name);
  return 0;
}

int
net_netns_delete (const char *name, struct err **err)
{
  const char *const argv[] = { "ip", "netns", "delete", name, NULL };
  char path[128];

  if (check_name (name, err) < 0)
    return -1;
  snprintf (path, sizeof path, "/run/netns/%s", name);
  if (access (path, F_OK) < 0)
    return 0;
  if (proc_run (argv, NULL, false, err) < 0)
    return err_wrap (err, "network namespace %s", name);
  return 0;
}
