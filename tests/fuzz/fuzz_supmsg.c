/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the supervisor parent's check of its worker's
   frames (supmsg_decode in host-tool/supervisor/supmsg.c): anything a
   worker, parsing hostile clients and a hostile guest, may send.  The
   first byte picks the side; a frame that passes is a whole frame of a
   known type, exactly what supmsg_make makes of its type, value and text
   (a canonical frame: nothing hides after its text). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "supervisor/supmsg.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct err *e = NULL;
  struct supmsg m, again;
  bool from_worker;

  if (size < 1)
    return 0;
  from_worker = data[0] & 1;
  if (supmsg_decode (data + 1, size - 1, from_worker, &m, &e) == 0)
    {
      if (from_worker ? m.type < SUPMSG_WAKE || m.type > SUPMSG_WORKER_LAST
                      : m.type < SUPMSG_STATE || m.type > SUPMSG_PARENT_LAST)
        abort ();
      if (memchr (m.text, '\0', sizeof m.text) == NULL)
        abort ();
      supmsg_make (&again, m.type, m.val, m.text);
      if (memcmp (&again, data + 1, sizeof again) != 0)
        abort ();
    }
  else if (e == NULL)
    abort ();
  err_release (&e);
  return 0;
}
