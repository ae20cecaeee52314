/* SPDX-License-Identifier: Apache-2.0 */
#include "sys/rand.h"

#include <errno.h>
#include <stdio.h>
#include <sys/random.h>

int
rand_hex (char *out, size_t bytes, struct err **err)
{
  unsigned char b[64];
  size_t got = 0;

  if (bytes > sizeof b)
    return err_make (err, EINVAL, "rand_hex: %zu bytes asked, at most %zu", bytes, sizeof b);
  while (got < bytes)
    {
      ssize_t n = getrandom (b + got, bytes - got, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return err_make (err, errno, "getrandom");
      got += (size_t) n;
    }
  for (size_t i = 0; i < bytes; i++)
    snprintf (out + 2 * i, 3, "%02x", b[i]);
  return 0;
}
