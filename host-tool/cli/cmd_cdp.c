/* SPDX-License-Identifier: Apache-2.0 */
/* chvm cdp [--http] NAME: the VM's CDP endpoint as a client connects to it,
   ws://ADDR:PORT/TOKEN/devtools/browser/<id> (what its /json/version names),
   or with --http the endpoint's http://ADDR:PORT/TOKEN.  The token is the
   endpoint's capability: this prints it to the VM's owner (root) alone.  The browser's path comes
   from the supervisor when it has seen one, else from a /json/version
   through the endpoint itself, which, like any client, wakes a VM in
   standby. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdp/cdp_http.h"
#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "supervisor/supervisor.h"
#include "sys/json.h"
#include "vm/vmctl.h"

#define CDP_FETCH_S 300 /* a wake under TCG takes a while */
#define VERSION_MAX 65536

struct body
{
  char buf[VERSION_MAX];
  size_t len;
};

static size_t
on_body (char *p, size_t size, size_t n, void *ctx)
{
  struct body *b = ctx;
  size_t k = size * n;

  if (k > sizeof b->buf - 1 - b->len)
    return 0; /* too large: curl fails the transfer */
  memcpy (b->buf + b->len, p, k);
  b->len += k;
  return k;
}

/* GET ENDPOINT/json/version (ENDPOINT: http://ADDR:PORT/TOKEN); the
   browser's path (/TOKEN/devtools/browser/<id>) into out. */
static int
fetch_browser_path (const char *endpoint, char *out, size_t cap, struct err **err)
{
  cleanup_free struct body *b = calloc (1, sizeof *b);
  char url[192];
  long code = 0;
  CURLcode rc;
  CURL *h;

  if (b == NULL || (h = curl_easy_init ()) == NULL)
    return err_make (err, ENOMEM, "curl");
  snprintf (url, sizeof url, "%s/json/version", endpoint);
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, b);
  curl_easy_setopt (h, CURLOPT_TIMEOUT, (long) CDP_FETCH_S);
  curl_easy_setopt (h, CURLOPT_NOPROXY, "*");
  rc = curl_easy_perform (h);
  curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup (h);
  if (rc != CURLE_OK)
    return err_make (err, 0, "%s: %s", url, curl_easy_strerror (rc));
  if (code != 200)
    return err_make (err, 0, "%s: HTTP %ld: %.*s", url, code, (int) (b->len > 200 ? 200 : b->len),
                     b->buf);
  if (cdp_browser_path (b->buf, b->len, out, cap) < 0)
    return err_make (err, 0, "%s: no webSocketDebuggerUrl", url);
  return 0;
}

static int
usage_error (void)
{
  fprintf (stderr, "Usage: chvm cdp [--http] NAME\n");
  return 2;
}

struct cdp_opts
{
  bool http; /* --http: the endpoint's http://ADDR:PORT, not the browser's ws:// URL */
};

/* Options (before NAME) into *o; returns -1 with optind at NAME, or the
   exit status after printing usage. */
static int
parse_args (int argc, char **argv, struct cdp_opts *o)
{
  static const struct option longopts[] = { { "http", no_argument, NULL, 'H' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };
  int c;

  *o = (struct cdp_opts){ .http = false };
  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'H':
        o->http = true;
        break;
      case 'h':
        printf ("Usage: chvm cdp [--http] NAME [--json]\n\n"
                "Print the VM's CDP endpoint: ws://ADDR:PORT/TOKEN/devtools/browser/<id>, which\n"
                "playwright-core's connectOverCDP and puppeteer-core's connect take, or with\n"
                "--http its http://ADDR:PORT/TOKEN (playwright's connectOverCDP; puppeteer's\n"
                "browserURL drops the path: give it the ws:// URL as browserWSEndpoint).\n"
                "TOKEN is the VM's secret: whoever has the URL drives the\n"
                "browser.  Without a browser id the supervisor has seen, it asks\n"
                "/json/version through the endpoint, which wakes a VM in standby.\n");
        return 0;
      default:
        return usage_error ();
      }
  return optind + 1 == argc ? -1 : usage_error ();
}

/* The browser's ws:// URL: as the supervisor saw it, else through the
   endpoint's /json/version. */
static int
browser_url (const struct vmctl *c, char *url, size_t len, struct err **err)
{
  char line[SUPCTL_LINE_MAX], path[256] = "";
  cleanup_json struct json_object *o = NULL;
  struct json_object *ws;

  if (supervisor_query (c->dir, "status", line, sizeof line, 2000, err) == 0)
    o = json_tokener_parse (line);
  err_release (err);
  if (o != NULL && json_object_object_get_ex (o, "ws", &ws)
      && json_object_is_type (ws, json_type_string) && json_object_get_string_len (ws) > 0)
    {
      snprintf (url, len, "%s", json_object_get_string (ws));
      return 0;
    }
  char endpoint[128];

  vmrec_endpoint_url (&c->rec, endpoint, sizeof endpoint);
  if (fetch_browser_path (endpoint, path, sizeof path, err) < 0)
    return -1;
  snprintf (url, len, "ws://%s%s", c->rec.cdp_endpoint, path);
  return 0;
}

int
cmd_cdp (const struct global_opts *g, int argc, char **argv)
{
  cleanup_err struct err *err = NULL;
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  char url[384] = "", endpoint[128];
  struct cdp_opts o;
  int status = parse_args (argc, argv, &o);

  if (status >= 0)
    return status;
  if (c == NULL)
    return 1;
  if (vmctl_open (g->state_dir, argv[optind], false, c, &err) < 0)
    return cli_fail ("cdp", &err);
  if (c->rec.cdp_endpoint[0] == '\0')
    {
      err_make (&err, 0, "VM %s has no CDP endpoint (made before supervisors)", c->rec.name);
      return cli_fail ("cdp", &err);
    }
  if (supervisor_pid (c->dir) == 0)
    {
      err_make (&err, 0, "VM %s: no supervisor holds its endpoint %s (chvm supervise %s)",
                c->rec.name, c->rec.cdp_endpoint, c->rec.name);
      return cli_fail ("cdp", &err);
    }
  vmrec_endpoint_url (&c->rec, endpoint, sizeof endpoint);
  if (o.http)
    snprintf (url, sizeof url, "%s", endpoint);
  else if (browser_url (c, url, sizeof url, &err) < 0)
    return cli_fail ("cdp", &err);
  if (g->json)
    {
      cleanup_json struct json_object *j = json_object_new_object ();
      json_object_object_add (j, "name", json_object_new_string (c->rec.name));
      json_object_object_add (j, "endpoint", json_object_new_string (endpoint));
      json_object_object_add (j, "url", json_object_new_string (url));
      json_print (stdout, j);
    }
  else
    printf ("%s\n", url);
  return 0;
}
