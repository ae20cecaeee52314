/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the supervisor's control requests
   (supctl_parse_request in host-tool/supervisor.c): one line of anything
   from a local client; a command it accepts is one it knows. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "supervisor/supervisor.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct err *e = NULL;
  char cmd[16];

  if (supctl_parse_request ((const char *) data, size, cmd, sizeof cmd, &e) == 0)
    {
      if (strcmp (cmd, "status") != 0 && strcmp (cmd, "stop") != 0)
        abort ();
    }
  err_release (&e);
  return 0;
}
