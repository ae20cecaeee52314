/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/self.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"

extern char **environ;

#define SELF_ARGS_MAX 128

int
cli_self_start (const struct global_opts *g, const char *const args[], struct cli_self *s,
                struct err **err)
{
  const char *argv[SELF_ARGS_MAX + 5];
  posix_spawn_file_actions_t fa;
  size_t n = 0;
  int p[2], r;

  argv[n++] = "chvm";
  argv[n++] = "--json";
  if (g->state_dir != NULL)
    {
      argv[n++] = "--state-dir";
      argv[n++] = g->state_dir;
    }
  for (size_t i = 0; args[i] != NULL; i++)
    {
      if (n == SELF_ARGS_MAX)
        return err_make (err, E2BIG, "chvm %s: too many arguments", args[0]);
      argv[n++] = args[i];
    }
  argv[n] = NULL;
  if (pipe2 (p, O_CLOEXEC) < 0)
    return err_make (err, errno, "pipe");
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, p[1], 1);
  r = posix_spawn (&s->pid, "/proc/self/exe", &fa, NULL, (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (p[1]);
  if (r != 0)
    {
      close (p[0]);
      return err_make (err, r, "chvm %s", args[0]);
    }
  s->out_fd = p[0];
  return 0;
}

int
cli_self_finish (struct cli_self *s, char **out, struct err **err)
{
  cleanup_free char *buf = malloc (CLI_SELF_OUT_MAX + 1);
  size_t len = 0;
  int status = 0;
  ssize_t n;

  *out = NULL;
  if (buf == NULL)
    return err_make (err, ENOMEM, "chvm child output");
  for (;;)
    {
      char chunk[4096];
      n = read (s->out_fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      if (len + (size_t) n <= CLI_SELF_OUT_MAX)
        memcpy (buf + len, chunk, (size_t) n), len += (size_t) n;
    }
  close (s->out_fd);
  s->out_fd = -1;
  while (waitpid (s->pid, &status, 0) < 0)
    if (errno != EINTR)
      return err_make (err, errno, "wait for chvm (pid %d)", (int) s->pid);
  buf[len] = '\0';
  *out = steal_ptr (&buf);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

int
cli_self_json (const struct global_opts *g, const char *const args[], struct json_object **out,
               struct err **err)
{
  struct cli_self s;
  cleanup_free char *text = NULL;
  int status;

  *out = NULL;
  if (cli_self_start (g, args, &s, err) < 0)
    return -1;
  status = cli_self_finish (&s, &text, err);
  if (status < 0)
    return -1;
  *out = json_tokener_parse (text);
  if (status != 0)
    return err_make (err, 0, "chvm %s exited with status %d", args[0], status);
  return 0;
}
