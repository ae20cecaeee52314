/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI images as VM root filesystems: parse an OCI image layout (index.json,
 * manifest, config), unpack it with umoci (docker archives are first turned
 * into an OCI layout by skopeo; no container engine), and make a read-only
 * ext4 or erofs image labelled chvm-root.  Results are cached under
 * $STATE/images/<manifest sha256 hex>/ (rootfs.ext4|rootfs.erofs,
 * image.json), built in a hidden temp dir and renamed into place only when
 * complete.  Nothing here prints: progress goes through a callback, errors
 * through struct err.
 */
#ifndef CHVM_IMAGE_H
#define CHVM_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Limits on what an image may hand us.  Strings must also fit one config
   disk line (DESIGN.md: 4096 bytes including the key). */
#define OCI_JSON_MAX (4u << 20)
#define OCI_LIST_MAX 4096
#define OCI_STR_MAX 4000
#define IMAGE_ID_LEN 64 /* sha256 hex */

/* The parts of an OCI image config ("config" object) a VM needs. */
struct oci_config
{
  char **env; /* "NAME=value" */
  size_t n_env;
  char **entrypoint;
  size_t n_entrypoint;
  char **cmd;
  size_t n_cmd;
  char *workdir; /* "" when absent */
  char *user;    /* "" when absent */
};

enum image_format
{
  IMAGE_EXT4,
  IMAGE_EROFS,
};

enum image_source_kind
{
  IMAGE_SRC_OCI,
  IMAGE_SRC_DOCKER_ARCHIVE,
};

struct image_source
{
  enum image_source_kind kind;
  char *path;
  char *tag; /* OCI only; NULL: the only manifest, else "latest" */
};

/* Root images are made a multiple of this long: a virtio-pmem device's
   size must be (CH refuses others; QEMU maps whole 2 MiB pages). */
#define IMAGE_ROOTFS_ALIGN (2 << 20)

/* A cached image. */
struct image
{
  char id[IMAGE_ID_LEN + 1];
  char *dir;    /* $STATE/images/<id> */
  char *rootfs; /* dir/rootfs.ext4 or dir/rootfs.erofs */
  enum image_format format;
  uint64_t rootfs_size; /* bytes */
  char *source;         /* what it was imported from */
  int64_t imported;     /* unix seconds */
  struct oci_config *config;
};

typedef void (*image_progress_fn) (void *ctx, const char *msg);

/* ---- pure parsers (no I/O; fuzzed and unit-tested) ---- */

/* Parses an OCI image config blob; takes its "config" object (absent: an
   empty config).  Rejects non-UTF-8-safe strings with NUL, and newlines,
   which the config disk cannot carry. */
int oci_config_parse (const char *json, size_t len, struct oci_config **out, struct err **err);
void oci_config_free (struct oci_config *c);

/* "sha256:<64 lowercase hex>" -> the hex.  Anything else (other algorithms,
   path characters) is refused: the hex names files and directories. */
int oci_digest_hex (const char *digest, char hex[IMAGE_ID_LEN + 1], struct err **err);

/* From an OCI index (index.json), picks the manifest descriptor: the one
   whose org.opencontainers.image.ref.name is tag; with tag NULL the only
   one.  *is_index tells that it names a nested image index (multi-platform),
   which the importer hands to skopeo to pick linux/amd64. */
int oci_index_pick (const char *json, size_t len, const char *tag, char hex[IMAGE_ID_LEN + 1],
                    bool *is_index, struct err **err);

/* From a manifest, the config blob's digest hex and the number of layers. */
int oci_manifest_parse (const char *json, size_t len, char config_hex[IMAGE_ID_LEN + 1],
                        size_t *n_layers, struct err **err);

/* SOURCE as the CLI takes it: "oci:DIR[:TAG]", "docker-archive:FILE", or a
   plain path (a directory is an OCI layout, a file a docker archive). */
int image_source_parse (const char *spec, struct image_source *out, struct err **err);
void image_source_clear (struct image_source *s);

/* image.json <-> struct image (dir and rootfs are filled by the loader). */
int image_meta_to_json (const struct image *img, char **out, struct err **err);
int image_meta_parse (const char *json, size_t len, struct image *img, struct err **err);

/* ---- the cache ---- */

/* Imports source into root/images (root: the state dir, see vmstate_root).
 *hit tells whether the image was already there.  progress may be NULL. */
int image_import (const char *root, const char *source, enum image_format fmt,
                  image_progress_fn progress, void *ctx, struct image **out, bool *hit,
                  struct err **err);

/* Loads a cached image by full id or unique id prefix (>= 4 hex digits). */
int image_lookup (const char *root, const char *id, struct image **out, struct err **err);

/* What `chvm run` needs: ref is a cached id (or prefix), else a SOURCE,
   imported (as ext4) on a miss.  *out has the rootfs path and the config. */
int image_resolve (const char *root, const char *ref, image_progress_fn progress, void *ctx,
                   struct image **out, struct err **err);

/* Pads the root image at path with a hole to a multiple of
   IMAGE_ROOTFS_ALIGN, for virtio-pmem (images made before were not);
   nothing to do when it is one. */
int image_rootfs_pad (const char *path, struct err **err);

/* The entry id (64 hex digits) made from a directory tree (a container's
   root filesystem as containerd's snapshotter gives it: host-tool/image/
   tree.c) as an ext4 root disk, with config as its exec fields and source
   as what it records; *hit when it was already there. */
int image_import_tree (const char *root, const char *id, const char *tree, const char *source,
                       const struct oci_config *config, image_progress_fn progress, void *ctx,
                       struct image **out, bool *hit, struct err **err);

/* The entry id sharing base's root disk (a hard link: no copy) with config
   as its exec fields; replaces an entry id left behind. */
int image_alias (const char *root, const struct image *base, const char *id, const char *source,
                 const struct oci_config *config, struct image **out, struct err **err);

/* Every cached image, sorted by import time (newest first). */
int image_list (const char *root, struct image ***out, size_t *n, struct err **err);
void image_list_free (struct image **imgs, size_t n);

/* The full id of a cached image (full id, or unique prefix of >= 4 hex
   digits), whether or not its files are intact. */
int image_find_id (const char *root, const char *id, char out[IMAGE_ID_LEN + 1], struct err **err);

/* Removes a cached image (full id or unique prefix); *removed gets the id. */
int image_remove (const char *root, const char *id, char removed[IMAGE_ID_LEN + 1],
                  struct err **err);

void image_free (struct image *img);
/* For cleanup_image: frees *img (NULL is fine). */
void image_freep (struct image **img);
#define cleanup_image __attribute__ ((cleanup (image_freep)))
const char *image_format_name (enum image_format f);
int image_format_parse (const char *s, enum image_format *out);

#endif
