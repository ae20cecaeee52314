/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the parsers of Cloud Hypervisor answers: vm.info,
   vmm.ping, error bodies and version strings.  The first byte picks the
   parser so one corpus covers all four. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/ch_api.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct err *e = NULL;
  struct ch_vm_info info;
  char out[256];
  int ma, mi;

  if (size < 1)
    return 0;
  const char *body = (const char *) data + 1;
  size_t len = size - 1;

  switch (data[0] % 4)
    {
    case 0:
      if (ch_parse_info (body, len, &info, &e) == 0)
        {
          /* The state is always one CH defines, NUL-terminated. */
          if (strlen (info.state) >= sizeof info.state)
            abort ();
        }
      break;
    case 1:
      ch_parse_ping (body, len, out, sizeof out, &e);
      break;
    case 2:
      ch_error_text (body, len, out, sizeof out);
      if (strlen (out) >= sizeof out)
        abort ();
      break;
    case 3:
      {
        /* Versions come NUL-terminated from ping/--version. */
        char *s = strndup (body, len);
        if (s != NULL)
          ch_parse_version (s, &ma, &mi);
        free (s);
      }
      break;
    }
  err_release (&e);
  return 0;
}
