/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the config disk parser: any bytes must give either a
   config or one error naming a line, never a crash or a leak, and a parsed
   config must respect the format's limits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void
check_strv (const struct strv *sv)
{
  for (size_t i = 0; i < sv->n; i++)
    if (strlen (sv->v[i]) > CONFIG_MAX_LINE || strchr (sv->v[i], '\n'))
      abort ();
  if (sv->n > 0 && sv->v[sv->n] != NULL)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct chvm_config cfg;
  struct err *err = NULL;
  int r = config_parse ((const char *) data, size, &cfg, &err);

  if (r < 0)
    {
      /* Every error is one console line starting with the source. */
      if (err == NULL || err->msg == NULL || strncmp (err->msg, "config chvm-config", 18) != 0
          || strchr (err->msg, '\n') != NULL)
        abort ();
    }
  else
    {
      if (err != NULL)
        abort ();
      check_strv (&cfg.env);
      check_strv (&cfg.entrypoint);
      check_strv (&cfg.cmd);
      check_strv (&cfg.dns);
      check_strv (&cfg.authorized_keys);
      if (cfg.prefix > 32 || (cfg.agent_tcp_port && !cfg.agent_token) || cfg.init_timeout == 0)
        abort ();
    }
  err_release (&err);
  config_free (&cfg);
  return 0;
}
