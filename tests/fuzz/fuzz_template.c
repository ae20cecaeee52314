/* SPDX-License-Identifier: Apache-2.0 */
/* The two parsers of templates' outside input: the first byte picks one.
   'm': manifest.json (vm/template.c): refused with a message, or parsed
   into an info that serialises and parses back the same.  Else: a CH
   snapshot's config.json (vmm/ch_clone.c) edited for a clone: refused with
   a message, or an edited config whose memory is then the one private
   zone over the file given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vm/template.h"
#include "vmm/ch_clone.h"

static void
manifest (const char *text, size_t size)
{
  static struct template_info a, b;
  struct err *err = NULL;
  char *out = NULL;

  if (template_from_json (text, size, &a, &err) < 0)
    {
      if (err == NULL || err->msg == NULL)
        abort ();
      err_release (&err);
      return;
    }
  if (template_to_json (&a, &out, &err) < 0 || template_from_json (out, strlen (out), &b, &err) < 0
      || memcmp (&a, &b, sizeof a) != 0)
    abort ();
  free (out);
}

static void
config (const char *text, size_t size)
{
  const struct ch_clone_edit e = { "/var/lib/chvm/vms/tmpl-0", "/var/lib/chvm/vms/c1",
                                   "/var/lib/chvm/templates/t/memory", true };
  struct ch_config_memory m;
  struct err *err = NULL;
  char *out = NULL;
  size_t len = 0;

  if (ch_config_memory (text, size, &m, &err) < 0)
    err_release (&err);
  if (ch_clone_config (text, size, &e, &out, &len, &err) < 0)
    {
      if (err == NULL || err->msg == NULL)
        abort ();
      err_release (&err);
      return;
    }
  if (ch_config_memory (out, len, &m, &err) < 0 || !m.files_only || m.shared || m.n_zones != 1)
    abort ();
  free (out);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  if (data[0] == 'm')
    manifest ((const char *) data + 1, size - 1);
  else
    config ((const char *) data + 1, size - 1);
  return 0;
}
