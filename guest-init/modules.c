/* SPDX-License-Identifier: Apache-2.0 */
#include "modules.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "io.h"
#include "log.h"

int
modules_load (struct err **err)
{
  cleanup_free char *list = NULL;
  int loaded = 0;

  list = read_file (MODULES_LOAD_LIST, 64 * 1024, NULL, err);
  if (list == NULL)
    {
      /* A kernel with everything built in needs no list. */
      if ((*err)->status == ENOENT)
        {
          err_release (err);
          return 0;
        }
      return err_wrap (err, "module list");
    }
  for (char *line = list, *save = NULL; (line = strtok_r (line, "\n", &save)) != NULL; line = NULL)
    {
      cleanup_close int fd = -1;

      if (line[0] == '#')
        continue;
      fd = open (line, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        {
          log_warn ("module %s: %m", line);
          continue;
        }
      /* musl has no finit_module() wrapper. */
      if (syscall (SYS_finit_module, fd, "", 0) < 0)
        {
          if (errno != EEXIST)
            log_warn ("finit_module %s: %m", line);
          continue;
        }
      loaded++;
    }
  return loaded;
}
