/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: OCI index.json and manifest parsing and digest checks
   (host-tool/image.c).  The digest hex becomes a path component, so any
   accepted digest must be exactly 64 lowercase hex digits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_hex (const char *hex)
{
  if (strlen (hex) != IMAGE_ID_LEN || strspn (hex, "0123456789abcdef") != IMAGE_ID_LEN)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *json = (const char *) data;
  char hex[IMAGE_ID_LEN + 1], *str;
  struct err *e = NULL;
  bool is_index;
  size_t n;

  if (oci_index_pick (json, size, "latest", hex, &is_index, &e) == 0)
    check_hex (hex);
  err_release (&e);
  if (oci_index_pick (json, size, NULL, hex, &is_index, &e) == 0)
    check_hex (hex);
  err_release (&e);
  if (oci_manifest_parse (json, size, hex, &n, &e) == 0)
    check_hex (hex);
  err_release (&e);

  str = strndup (json, size);
  if (str != NULL && oci_digest_hex (str, hex, &e) == 0)
    check_hex (hex);
  err_release (&e);
  free (str);
  return 0;
}
