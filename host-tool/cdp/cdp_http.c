/* SPDX-License-Identifier: Apache-2.0 */
#include "cdp/cdp_http.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "num.h"

size_t
cdp_head_end (const char *buf, size_t len)
{
  const char *p = memmem (buf, len, "\r\n\r\n", 4);

  return p == NULL ? 0 : (size_t) (p - buf) + 4;
}

static bool
token_char (char c)
{
  return c > ' ' && c < 127 && strchr ("()<>@,;:\\\"/[]?={}", c) == NULL;
}

/* Narrows [*b, *e) to its text without the optional white space (spaces,
   tabs) around it. */
static void
ows_trim (const char **b, const char **e)
{
  while (*b < *e && (**b == ' ' || **b == '\t'))
    (*b)++;
  while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
    (*e)--;
}

/* Case-insensitive search of a comma-separated header value for token. */
static bool
value_has_token (const char *v, size_t vlen, const char *token)
{
  const char *p = v, *end = v + vlen;
  size_t tl = strlen (token);

  while (p < end)
    {
      const char *b = p, *e = memchr (p, ',', (size_t) (end - p));
      if (e == NULL)
        e = end;
      p = e + 1;
      ows_trim (&b, &e);
      if ((size_t) (e - b) == tl && strncasecmp (b, token, tl) == 0)
        return true;
    }
  return false;
}

/* A /json... request, whose answer names addresses. */
static bool
is_json (const struct cdp_req *req)
{
  return !req->upgrade && strncmp (req->target, "/json", 5) == 0
         && (req->target[5] == '\0' || req->target[5] == '/' || req->target[5] == '?');
}

int
cdp_parse_request (const char *head, size_t len, struct cdp_req *req, const char **why)
{
  const char *p = head, *end = head + len, *sp, *eol;
  size_t n;

  memset (req, 0, sizeof *req);
  *why = "bad request line";
  if (len < 4 || len > CDP_HEAD_MAX || memcmp (end - 4, "\r\n\r\n", 4) != 0)
    return -1;
  eol = memmem (p, (size_t) (end - p), "\r\n", 2);
  sp = memchr (p, ' ', (size_t) (eol - p));
  if (sp == NULL || sp == p || (size_t) (sp - p) >= sizeof req->method)
    return -1;
  for (const char *q = p; q < sp; q++)
    if (!token_char (*q))
      return -1;
  memcpy (req->method, p, (size_t) (sp - p));
  p = sp + 1;
  sp = memchr (p, ' ', (size_t) (eol - p));
  if (sp == NULL || sp == p || (size_t) (sp - p) >= sizeof req->target || *p != '/')
    return -1;
  for (const char *q = p; q < sp; q++)
    if (*q <= ' ' || *q >= 127)
      return -1;
  memcpy (req->target, p, (size_t) (sp - p));
  n = (size_t) (eol - (sp + 1));
  if (n != 8 || (memcmp (sp + 1, "HTTP/1.1", 8) != 0 && memcmp (sp + 1, "HTTP/1.0", 8) != 0))
    return -1;
  memcpy (req->version, sp + 1, 8);
  p = eol + 2;
  *why = "bad header";
  while (p < end - 2)
    {
      const char *colon, *v, *ve;
      eol = memmem (p, (size_t) (end - p), "\r\n", 2);
      if (eol == NULL)
        return -1;
      colon = memchr (p, ':', (size_t) (eol - p));
      if (colon == NULL || colon == p)
        return -1;
      for (const char *q = p; q < colon; q++)
        if (!token_char (*q))
          return -1;
      for (const char *q = colon + 1; q < eol; q++)
        if ((unsigned char) *q < ' ' && *q != '\t')
          return -1;
      v = colon + 1;
      ve = eol;
      ows_trim (&v, &ve);
      n = (size_t) (colon - p);
      if (n == 4 && strncasecmp (p, "Host", 4) == 0)
        {
          if (req->host[0] != '\0' || (size_t) (ve - v) >= sizeof req->host)
            return -1;
          memcpy (req->host, v, (size_t) (ve - v));
          req->host[ve - v] = '\0';
        }
      else if (n == 7 && strncasecmp (p, "Upgrade", 7) == 0)
        req->upgrade = value_has_token (v, (size_t) (ve - v), "websocket");
      p = eol + 2;
    }
  req->rewrite = is_json (req);
  *why = NULL;
  return 0;
}

bool
cdp_take_token (struct cdp_req *req, const char *token)
{
  size_t tl = strlen (token), have = strlen (req->target);
  unsigned char diff = 0;
  char rest;

  if (tl == 0 || have < tl + 1)
    return false;
  /* Every byte compared, whatever the first difference. */
  for (size_t i = 0; i < tl; i++)
    diff |= (unsigned char) (req->target[1 + i] ^ token[i]);
  rest = req->target[1 + tl];
  if (diff != 0 || (rest != '\0' && rest != '/' && rest != '?'))
    return false;
  if (rest == '/')
    memmove (req->target, req->target + 1 + tl, have - tl);
  else
    {
      /* "/TOKEN" or "/TOKEN?QUERY": the guest's root, with the query. */
      memmove (req->target + 1, req->target + 1 + tl, have - tl);
    }
  req->rewrite = is_json (req);
  return true;
}

/* Appends n bytes at *pos of out (cap); false when they do not fit. */
static bool
put (char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
  if (n >= cap - *pos)
    return false;
  memcpy (out + *pos, s, n);
  *pos += n;
  out[*pos] = '\0';
  return true;
}

static bool
header_is (const char *line, size_t len, const char *name)
{
  size_t n = strlen (name);

  return len > n && line[n] == ':' && strncasecmp (line, name, n) == 0;
}

long
cdp_upstream_head (const char *head, size_t len, const struct cdp_req *req,
                   const char *upstream_host, char *out, size_t cap)
{
  const char *p = head, *end = head + len, *eol;
  size_t pos = 0;

  if (cap == 0 || len < 4)
    return -1;
  out[0] = '\0';
  eol = memmem (p, len, "\r\n", 2);
  if (eol == NULL || !put (out, cap, &pos, req->method, strlen (req->method))
      || !put (out, cap, &pos, " ", 1) || !put (out, cap, &pos, req->target, strlen (req->target))
      || !put (out, cap, &pos, " ", 1) || !put (out, cap, &pos, req->version, strlen (req->version))
      || !put (out, cap, &pos, "\r\n", 2))
    return -1;
  if (!put (out, cap, &pos, "Host: ", 6)
      || !put (out, cap, &pos, upstream_host, strlen (upstream_host))
      || !put (out, cap, &pos, "\r\n", 2))
    return -1;
  for (p = eol + 2; p < end - 2; p = eol + 2)
    {
      eol = memmem (p, (size_t) (end - p), "\r\n", 2);
      if (eol == NULL)
        return -1;
      if (header_is (p, (size_t) (eol - p), "Host"))
        continue;
      if (!req->upgrade
          && (header_is (p, (size_t) (eol - p), "Connection")
              || header_is (p, (size_t) (eol - p), "Keep-Alive")))
        continue;
      if (!put (out, cap, &pos, p, (size_t) (eol - p) + 2))
        return -1;
    }
  if (!req->upgrade && !put (out, cap, &pos, "Connection: close\r\n", 19))
    return -1;
  if (!put (out, cap, &pos, "\r\n", 2))
    return -1;
  return (long) pos;
}

const char *
cdp_client_host (const struct cdp_req *req, const char *listen)
{
  if (req->host[0] == '\0')
    return listen;
  for (const char *q = req->host; *q; q++)
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9')
          || strchr (".-:[]", *q) != NULL))
      return listen;
  return req->host;
}

bool
cdp_host_allowed (const struct cdp_req *req)
{
  const char *h = req->host, *port;
  char name[sizeof req->host];
  unsigned char addr[16];
  size_t n;

  if (h[0] == '\0')
    return true;
  if (h[0] == '[')
    {
      const char *close = strchr (h, ']');
      if (close == NULL)
        return false;
      n = (size_t) (close - h - 1);
      memcpy (name, h + 1, n);
      name[n] = '\0';
      port = close + 1;
      if (inet_pton (AF_INET6, name, addr) != 1)
        return false;
    }
  else
    {
      const char *colon = strchr (h, ':');
      n = colon != NULL ? (size_t) (colon - h) : strlen (h);
      memcpy (name, h, n);
      name[n] = '\0';
      port = h + n;
      if (inet_pton (AF_INET, name, addr) != 1 && strcasecmp (name, "localhost") != 0)
        return false;
    }
  if (port[0] == '\0')
    return true;
  if (port[0] != ':' || port[1] == '\0' || strlen (port + 1) > 5)
    return false;
  for (const char *q = port + 1; *q; q++)
    if (*q < '0' || *q > '9')
      return false;
  return true;
}

int
cdp_response_complete (const char *buf, size_t len)
{
  size_t hend = cdp_head_end (buf, len > CDP_HEAD_MAX ? CDP_HEAD_MAX : len);
  const char *p, *eol;

  if (hend == 0)
    return len >= CDP_HEAD_MAX ? -1 : 0;
  for (p = buf; p < buf + hend - 2; p = eol + 2)
    {
      eol = memmem (p, (size_t) (buf + hend - p), "\r\n", 2);
      if (eol == NULL)
        return -1;
      if (header_is (p, (size_t) (eol - p), "Content-Length"))
        {
          const char *v = p + 15, *e = eol;
          uint64_t cl;
          ows_trim (&v, &e);
          if (num_parse_u64 (v, (size_t) (e - v), CDP_BODY_MAX, &cl) < 0)
            return -1;
          return len - hend >= cl ? 1 : 0;
        }
    }
  return -1;
}

#define JSON_DEPTH 16 /* DevTools' /json answers nest three deep */

/* Whether every value of a key "webSocketDebuggerUrl", at any depth of o,
   is a string "ws://TO/...". */
static bool
ws_values_only_to (struct json_object *o, const char *to, size_t tl)
{
  if (json_object_is_type (o, json_type_array))
    {
      for (size_t i = 0; i < json_object_array_length (o); i++)
        if (!ws_values_only_to (json_object_array_get_idx (o, i), to, tl))
          return false;
      return true;
    }
  if (!json_object_is_type (o, json_type_object))
    return true;
  json_object_object_foreach (o, key, val)
  {
    if (strcmp (key, "webSocketDebuggerUrl") == 0)
      {
        const char *v = json_object_get_string (val);
        if (!json_object_is_type (val, json_type_string) || strncmp (v, "ws://", 5) != 0
            || strncmp (v + 5, to, tl) != 0 || v[5 + tl] != '/')
          return false;
      }
    else if (!ws_values_only_to (val, to, tl))
      return false;
  }
  return true;
}

/* Whether a client given this body can be sent nowhere but the endpoint:
   a body with no '{' is text ("Target activated"); anything else must be
   strict JSON (what a client's JSON.parse takes, json-c takes too) whose
   every "webSocketDebuggerUrl", however its key is escaped, is "ws://TO/..."
   (a guest naming another host would send puppeteer's browserWSEndpoint or
   playwright's connectOverCDP there: another VM's endpoint, say). */
static bool
ws_urls_only_to (const char *body, size_t len, const char *to)
{
  struct json_tokener *tok;
  struct json_object *o;
  size_t end;
  bool ok;

  if (memchr (body, '{', len) == NULL)
    return true;
  if (len > INT32_MAX || (tok = json_tokener_new_ex (JSON_DEPTH)) == NULL)
    return false;
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  o = json_tokener_parse_ex (tok, body, (int) len);
  end = json_tokener_get_parse_end (tok);
  while (end < len && strchr (" \t\r\n", body[end]) != NULL && body[end] != '\0')
    end++;
  ok = o != NULL && json_tokener_get_error (tok) == json_tokener_success && end == len
       && ws_values_only_to (o, to, strlen (to));
  json_object_put (o);
  json_tokener_free (tok);
  return ok;
}

/* Whether the status line of a response head is a redirect (3xx), which a
   client would follow anywhere. */
static bool
is_redirect (const char *resp, size_t len)
{
  return len > 12 && memcmp (resp, "HTTP/1.", 7) == 0 && resp[9] == '3';
}

long
cdp_rewrite_response (const char *resp, size_t len, const char *from, const char *to, char *out,
                      size_t cap)
{
  size_t hend = cdp_head_end (resp, len > CDP_HEAD_MAX ? CDP_HEAD_MAX : len);
  size_t fl = strlen (from), tl = strlen (to), pos = 0, blen = 0;
  const char *p, *eol, *body;
  char cl[48];

  if (hend == 0 || fl == 0 || cap == 0)
    return -1;
  if (is_redirect (resp, hend))
    return -2;
  eol = memmem (resp, hend, "\r\n", 2);
  if (eol == NULL || !put (out, cap, &pos, resp, (size_t) (eol - resp) + 2))
    return -1;
  for (p = eol + 2; p < resp + hend - 2; p = eol + 2)
    {
      eol = memmem (p, (size_t) (resp + hend - p), "\r\n", 2);
      if (eol == NULL)
        return -1;
      if (header_is (p, (size_t) (eol - p), "Transfer-Encoding"))
        return -1;
      if (header_is (p, (size_t) (eol - p), "Content-Length")
          || header_is (p, (size_t) (eol - p), "Connection")
          || header_is (p, (size_t) (eol - p), "Keep-Alive"))
        continue;
      if (!put (out, cap, &pos, p, (size_t) (eol - p) + 2))
        return -1;
    }
  /* The body's new length first: count the replacements. */
  body = resp + hend;
  for (size_t i = 0; i < len - hend;)
    if (len - hend - i >= fl && memcmp (body + i, from, fl) == 0)
      {
        blen += tl;
        i += fl;
      }
    else
      {
        blen++;
        i++;
      }
  snprintf (cl, sizeof cl, "Content-Length: %zu\r\n", blen);
  if (!put (out, cap, &pos, cl, strlen (cl))
      || !put (out, cap, &pos, "Connection: close\r\n\r\n", 21))
    return -1;
  for (size_t i = 0; i < len - hend;)
    {
      const char *hit = fl <= len - hend - i ? memmem (body + i, len - hend - i, from, fl) : NULL;
      size_t upto = hit ? (size_t) (hit - body) : len - hend;
      if (upto > i && !put (out, cap, &pos, body + i, upto - i))
        return -1;
      i = upto;
      if (hit == NULL)
        break;
      if (!put (out, cap, &pos, to, tl))
        return -1;
      i += fl;
    }
  if (!ws_urls_only_to (out + (pos - blen), blen, to))
    return -2;
  return (long) pos;
}

size_t
cdp_rewrite_cap (const char *resp, size_t len, const char *from, const char *to)
{
  size_t fl = strlen (from), tl = strlen (to), hits = 0;

  for (const char *p = resp, *end = resp + len;
       fl > 0 && (p = memmem (p, (size_t) (end - p), from, fl)) != NULL; p += fl)
    hits++;
  return len + hits * (tl > fl ? tl - fl : 0) + 128;
}

int
cdp_browser_path (const char *body, size_t len, char *out, size_t cap)
{
  static const char key[] = "\"webSocketDebuggerUrl\"";
  const char *p = memmem (body, len, key, sizeof key - 1), *end = body + len, *q;

  if (p == NULL)
    return -1;
  p += sizeof key - 1;
  while (p < end && (*p == ' ' || *p == ':'))
    p++;
  if (end - p < 6 || memcmp (p, "\"ws://", 6) != 0)
    return -1;
  p += 6;
  q = memchr (p, '/', (size_t) (end - p));
  if (q == NULL)
    return -1;
  p = q;
  q = memchr (p, '"', (size_t) (end - p));
  if (q == NULL || (size_t) (q - p) >= cap)
    return -1;
  for (const char *c = p; c < q; c++)
    if (*c <= ' ' || *c >= 127 || *c == '\\')
      return -1;
  memcpy (out, p, (size_t) (q - p));
  out[q - p] = '\0';
  return 0;
}

size_t
cdp_error_response (int status, const char *reason, const char *text, char *out, size_t cap)
{
  int n = snprintf (out, cap,
                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\n\r\n%s\n",
                    status, reason, strlen (text) + 1, text);

  if (n < 0)
    return 0;
  return (size_t) n < cap ? (size_t) n : cap - 1;
}
