/* SPDX-License-Identifier: Apache-2.0 */
/* vm.json parser: any input is refused or parsed into a record that
   serialises and parses back to the same record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state/vmstate.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct vm_record a, b;
  struct err *err = NULL;
  char *text = NULL;

  if (vmrec_from_json ((const char *) data, size, &a, &err) < 0)
    {
      if (err == NULL || err->msg == NULL)
        abort (); /* a refusal must say why */
      err_release (&err);
      return 0;
    }
  if (vmrec_to_json (&a, &text, &err) < 0)
    abort ();
  if (vmrec_from_json (text, strlen (text), &b, &err) < 0 || memcmp (&a, &b, sizeof a) != 0)
    abort ();
  free (text);
  return 0;
}
