/* SPDX-License-Identifier: Apache-2.0 */
#include "num.h"

#include <string.h>

int
num_parse_u64 (const char *s, size_t len, uint64_t max, uint64_t *out)
{
  uint64_t n = 0;

  if (len == 0)
    return -1;
  for (size_t i = 0; i < len; i++)
    {
      unsigned d;

      if (s[i] < '0' || s[i] > '9')
        return -1;
      d = (unsigned) (s[i] - '0');
      /* n * 10 + d <= max without computing past it (max may be 2^64-1). */
      if (d > max || n > (max - d) / 10)
        return -1;
      n = n * 10 + d;
    }
  *out = n;
  return 0;
}

int
num_parse_u64_str (const char *s, uint64_t max, uint64_t *out)
{
  return num_parse_u64 (s, strlen (s), max, out);
}
