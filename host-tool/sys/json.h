/* SPDX-License-Identifier: Apache-2.0 */
/* json-c as every part uses it: a cleanup attribute, and the one way a
   document is written out (plain, slashes unescaped, one line). */
#ifndef CHVM_SYS_JSON_H
#define CHVM_SYS_JSON_H

#include <json-c/json.h>
#include <stdio.h>

static inline void
json_put_fn (struct json_object **o)
{
  if (*o != NULL)
    json_object_put (*o);
}
#define cleanup_json __attribute__ ((cleanup (json_put_fn)))

/* The text of o as chvm prints and stores JSON: one line, no spaces, "/"
   not escaped.  Valid until o is freed. */
static inline const char *
json_text (struct json_object *o)
{
  return json_object_to_json_string_ext (o,
                                         JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Writes json_text (o) and a newline to f. */
static inline void
json_print (FILE *f, struct json_object *o)
{
  fprintf (f, "%s\n", json_text (o));
}

#endif
