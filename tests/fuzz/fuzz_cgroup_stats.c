/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the cgroup v2 stat parser (cgroup_stats_parse in
   host-tool/sys/cgroup.c; the shim's Stats reads a VM's cgroup with it,
   files whose figures the VMM's processes move).  The first byte picks the
   file, the rest is its text, in a buffer of exactly its size (not
   NUL-terminated: ASan sees a read past it).  Any input parses, or fails
   with one error line naming the file; a one-value file that parses was
   digits (or "max" for a limit) and set exactly its one field. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sys/cgroup.h"

static void
check_value (const char *file, const char *text, size_t len, const struct cgroup_stats *s)
{
  const uint64_t *f = (const uint64_t *) s;
  size_t set = 0;
  uint64_t want, got = 0;
  char *z;

  if (len > 0 && text[len - 1] == '\n')
    len--;
  if (len == 3 && memcmp (text, "max", 3) == 0)
    {
      if (strstr (file, ".max") == NULL)
        abort ();
      want = UINT64_MAX;
    }
  else
    {
      if ((z = strndup (text, len)) == NULL)
        return;
      if (len == 0 || strspn (z, "0123456789") != len)
        abort ();
      want = strtoull (z, NULL, 10);
      free (z);
    }
  for (size_t i = 0; i < sizeof *s / sizeof *f; i++)
    if (f[i] != 0)
      {
        set++;
        got = f[i];
      }
  if (want != 0 ? set != 1 || got != want : set != 0)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct cgroup_stats s = { 0 };
  struct err *e = NULL;
  size_t n_files = 0, len;
  const char *file;
  char *text;

  if (size < 1)
    return 0;
  while (cgroup_stats_files[n_files] != NULL)
    n_files++;
  file = cgroup_stats_files[data[0] % n_files];
  len = size - 1;
  if ((text = malloc (len ?: 1)) == NULL)
    return 0;
  memcpy (text, data + 1, len);
  if (cgroup_stats_parse (file, text, len, &s, &e) < 0)
    {
      if (e == NULL || e->msg == NULL || strncmp (e->msg, file, strlen (file)) != 0
          || strchr (e->msg, '\n') != NULL)
        abort ();
    }
  else if (e != NULL)
    abort ();
  else if (strcmp (file, "cpu.stat") != 0)
    check_value (file, text, len, &s);
  err_release (&e);
  free (text);
  return 0;
}
