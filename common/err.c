/* SPDX-License-Identifier: Apache-2.0 */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *
vformat (const char *fmt, va_list ap)
{
  char *s = NULL;
  if (vasprintf (&s, fmt, ap) < 0)
    return NULL;
  return s;
}

int (err_make) (struct err **err, int status, const char *fmt, ...)
{
  va_list ap;
  struct err *e;

  if (status < 0)
    status = -status;
  if (err == NULL)
    return -status - 1;
  e = calloc (1, sizeof *e);
  if (e == NULL)
    return -ENOMEM - 1;
  va_start (ap, fmt);
  e->msg = vformat (fmt, ap);
  va_end (ap);
  e->status = status;
  err_release (err);
  *err = e;
  return -status - 1;
}

int (err_wrap) (struct err **err, const char *fmt, ...)
{
  va_list ap;
  char *ctx, *joined = NULL;

  if (err == NULL || *err == NULL)
    return -1;
  va_start (ap, fmt);
  ctx = vformat (fmt, ap);
  va_end (ap);
  if (ctx != NULL && asprintf (&joined, "%s: %s", ctx, (*err)->msg ? (*err)->msg : "") >= 0)
    {
      free ((*err)->msg);
      (*err)->msg = joined;
    }
  free (ctx);
  return -(*err)->status - 1;
}

void
err_release (struct err **err)
{
  if (err == NULL || *err == NULL)
    return;
  free ((*err)->msg);
  free (*err);
  *err = NULL;
}

const char *
err_str (const struct err *err, char *buf, unsigned long len)
{
  if (err == NULL)
    snprintf (buf, len, "unknown error");
  else if (err->status != 0)
    snprintf (buf, len, "%s: %s", err->msg ? err->msg : "", strerror (err->status));
  else
    snprintf (buf, len, "%s", err->msg ? err->msg : "");
  return buf;
}
