/* SPDX-License-Identifier: Apache-2.0 */
/* A command in a guest through its agent (exec.h): the output as it comes,
   or as one JSON object; the exit status as ours. */
#include "cli/exec.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli/report.h"
#include "frame.h"
#include "sys/json.h"

#define STDIN_MAX (FRAME_MAX - 4096)

struct exec_out
{
  bool json;
  json_object *out, *err_;
  char *buf[2];
  size_t len[2];
};

static void
exec_output (void *arg, int stream, const uint8_t *data, size_t len)
{
  struct exec_out *x = arg;
  int i = stream == CHVM__AGENT__STREAM__STREAM_STDERR;

  if (!x->json)
    {
      size_t off = 0;
      while (off < len)
        {
          ssize_t n = write (i ? 2 : 1, data + off, len - off);
          if (n <= 0)
            return;
          off += (size_t) n;
        }
      return;
    }
  char *nb = realloc (x->buf[i], x->len[i] + len + 1);
  if (nb == NULL)
    return;
  memcpy (nb + x->len[i], data, len);
  x->buf[i] = nb;
  x->len[i] += len;
}

static int
read_stdin (char **buf, size_t *len)
{
  size_t cap = 65536;

  *len = 0;
  *buf = malloc (cap);
  if (*buf == NULL)
    return -1;
  for (;;)
    {
      ssize_t n;
      if (*len == cap)
        {
          char *nb;
          if (cap >= STDIN_MAX)
            return -1;
          cap *= 2;
          nb = realloc (*buf, cap);
          if (nb == NULL)
            return -1;
          *buf = nb;
        }
      n = read (0, *buf + *len, cap - *len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -1;
      if (n == 0)
        return *len <= STDIN_MAX ? 0 : -1;
      *len += (size_t) n;
    }
}

int
cli_exec (bool json, struct agent_client *a, char **cmd, char **env, const char *cwd,
          bool has_input, unsigned exec_timeout_ms, int connect_ms, const char *what)
{
  cleanup_err struct err *e = NULL;
  cleanup_free char *input = NULL;
  size_t input_len = 0;
  struct exec_out x = { .json = json };
  int code = 0, sig = 0;
  unsigned long budget
      = exec_timeout_ms ? exec_timeout_ms + (unsigned long) connect_ms : 86400000UL;

  if (has_input && read_stdin (&input, &input_len) < 0)
    {
      fprintf (stderr, "chvm %s: cannot read stdin (at most %u bytes)\n", what, STDIN_MAX);
      return 1;
    }
  struct agent_exec_req rq = { .argv = cmd,
                               .env = env,
                               .cwd = cwd,
                               .input = input,
                               .input_len = input_len,
                               .has_input = has_input,
                               .timeout_ms = exec_timeout_ms };
  if (agent_exec (a, &rq, (int) budget, exec_output, &x, &code, &sig, &e) < 0)
    {
      free (x.buf[0]);
      free (x.buf[1]);
      return cli_fail (what, &e);
    }
  if (json)
    {
      cleanup_json json_object *o = json_object_new_object ();
      json_object_object_add (o, "code", json_object_new_int (code));
      json_object_object_add (o, "signal", json_object_new_int (sig));
      json_object_object_add (
          o, "stdout", json_object_new_string_len (x.buf[0] ? x.buf[0] : "", (int) x.len[0]));
      json_object_object_add (
          o, "stderr", json_object_new_string_len (x.buf[1] ? x.buf[1] : "", (int) x.len[1]));
      json_print (stdout, o);
      free (x.buf[0]);
      free (x.buf[1]);
      return 0;
    }
  return code;
}
