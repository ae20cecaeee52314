/* SPDX-License-Identifier: Apache-2.0 */
/* Derived names (names.h). */
#include "names.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "state/vmrec.h"

void
names_hash_hex (const char *const parts[], size_t n, char out[65])
{
  static const uint64_t offsets[4] = { 0xcbf29ce484222325ull, 0x84222325cbf29ce4ull,
                                       0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full };

  for (int lane = 0; lane < 4; lane++)
    {
      uint64_t h = offsets[lane];

      for (size_t i = 0; i < n; i++)
        {
          /* Each part and its terminating NUL: "ab","c" differs from "a","bc". */
          for (const unsigned char *p = (const unsigned char *) parts[i];; p++)
            {
              h ^= *p;
              h *= 0x100000001b3ull;
              if (*p == '\0')
                break;
            }
        }
      snprintf (out + lane * 16, 17, "%016llx", (unsigned long long) h);
    }
}

int
names_vm (const char *ns, const char *id, char *out, size_t len, struct err **err)
{
  const char *parts[] = { "vm", ns, id };
  char hex[65];
  int n = snprintf (out, len, "ctr-%s-%s", ns, id);

  if (n > 0 && (size_t) n < len && vm_name_check (out, NULL) == 0)
    return 0;
  names_hash_hex (parts, 3, hex);
  n = snprintf (out, len, "ctr-%.16s", hex);
  if (n < 0 || (size_t) n >= len)
    return err_make (err, ENAMETOOLONG, "VM name");
  return 0;
}

void
names_socket (const char *address, const char *ns, const char *id, char *out, size_t len)
{
  const char *parts[] = { "chvm-shim-socket", address, ns, id };
  const char *slash = strrchr (address, '/');
  int dir = slash != NULL ? (int) (slash - address) : 0;
  char hex[65];
  int n;

  names_hash_hex (parts, 4, hex);
  n = snprintf (out, len, "%.*s/s/%.32s", dir, address, hex);
  if (n < 0 || (size_t) n >= len || (size_t) n >= sizeof ((struct sockaddr_un *) 0)->sun_path)
    snprintf (out, len, "/run/chvm-shim/%.32s", hex);
}
