/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the agent's text decoders: the first byte picks
 * /proc/self/mountinfo (freeze candidates), an HTTP /json/version answer
 * (readiness), /proc/meminfo or /proc/loadavg.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *text;

  if (size < 1)
    return 0;
  text = malloc (size);
  if (text == NULL)
    return 0;
  memcpy (text, data + 1, size - 1);
  text[size - 1] = '\0';
  switch (data[0] % 4)
    {
    case 0:
      {
        struct mount_ent *m = NULL;
        size_t n = 0;
        struct err *e = NULL;
        if (freeze_parse_mountinfo (text, &m, &n, &e) == 0)
          for (size_t i = 0; i < n; i++)
            if (m[i].path[0] != '/' || m[i].major == 0)
              abort ();
        err_release (&e);
        freeze_free_mounts (m, n);
        break;
      }
    case 1:
      {
        /* Not NUL-terminated on purpose: the parser must respect len. */
        char browser[32];
        char *raw = malloc (size - 1 ? size - 1 : 1);
        memcpy (raw, data + 1, size - 1);
        if (ready_parse_version (raw, size - 1, browser, sizeof browser) > 0
            && strlen (browser) >= sizeof browser)
          abort ();
        free (raw);
        break;
      }
    case 2:
      {
        uint64_t t, a, f;
        sysinfo_parse_meminfo (text, &t, &a, &f);
        break;
      }
    default:
      {
        double l[3];
        sysinfo_parse_loadavg (text, l);
        break;
      }
    }
  free (text);
  return 0;
}
