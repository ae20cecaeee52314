/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the OCI image config parser and the image.json parser
   (host-tool/image.c) on arbitrary bytes.  Both read files an image or a
   damaged cache hands us. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct oci_config *c = NULL;
  struct image *img = calloc (1, sizeof *img);
  struct err *e = NULL;
  char *json = NULL;

  if (oci_config_parse ((const char *) data, size, &c, &e) == 0)
    {
      /* Whatever parses must survive a round trip through image.json. */
      memcpy (img->id, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
              IMAGE_ID_LEN + 1);
      img->source = strdup ("fuzz");
      img->config = c;
      if (image_meta_to_json (img, &json, &e) == 0)
        {
          struct image *back = calloc (1, sizeof *back);

          if (image_meta_parse (json, strlen (json), back, &e) < 0)
            abort ();
          if (back->config->n_env != c->n_env || back->config->n_cmd != c->n_cmd
              || strcmp (back->config->user, c->user) != 0)
            abort ();
          image_free (back);
          free (json);
        }
      image_free (img);
      img = calloc (1, sizeof *img);
    }
  err_release (&e);
  if (image_meta_parse ((const char *) data, size, img, &e) < 0)
    err_release (&e);
  image_free (img);
  return 0;
}
