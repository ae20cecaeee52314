/* SPDX-License-Identifier: Apache-2.0 */
#include "sysconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "io.h"

/* Writes the lines of sv, each followed by prefix/suffix, to path. */
static int
write_lines (const char *path, const char *prefix, const struct strv *sv, mode_t mode,
             struct err **err)
{
  cleanup_free char *text = NULL;
  size_t size = 0;
  FILE *f = open_memstream (&text, &size);

  if (f == NULL)
    return err_make (err, errno, "%s", path);
  for (size_t i = 0; i < sv->n; i++)
    fprintf (f, "%s%s\n", prefix, sv->v[i]);
  if (fclose (f) != 0)
    return err_make (err, ENOMEM, "%s", path);
  return write_file (path, text ? text : "", size, mode, err);
}

int
sysconf_write (const struct chvm_config *cfg, struct err **err)
{
  const char *host = cfg->hostname ? cfg->hostname : DEFAULT_HOSTNAME;
  char text[512], self[32] = "127.0.1.1";
  int n, r;

  if (sethostname (host, strlen (host)) < 0)
    return err_make (err, errno, "sethostname %s", host);
  n = snprintf (text, sizeof text, "%s\n", host);
  if ((r = write_file ("/etc/hostname", text, (size_t) n, 0644, err)) < 0)
    return r;

  if (cfg->has_address)
    snprintf (self, sizeof self, "%u.%u.%u.%u", cfg->address[0], cfg->address[1], cfg->address[2],
              cfg->address[3]);
  n = snprintf (text, sizeof text,
                "127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                "%s\t%s\n",
                self, host);
  if (n < 0 || (size_t) n >= sizeof text)
    return err_make (err, EOVERFLOW, "/etc/hosts");
  if ((r = write_file ("/etc/hosts", text, (size_t) n, 0644, err)) < 0)
    return r;

  /* Without net.dns the image's own resolv.conf is left alone. */
  if (cfg->dns.n > 0
      && (r = write_lines ("/etc/resolv.conf", "nameserver ", &cfg->dns, 0644, err)) < 0)
    return r;

  if (cfg->authorized_keys.n > 0)
    {
      if ((r = mkdir_p ("/root/.ssh", 0700, err)) < 0
          || (r = write_lines ("/root/.ssh/authorized_keys", "", &cfg->authorized_keys, 0600, err))
                 < 0)
        return r;
    }
  return 0;
}
