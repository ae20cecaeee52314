/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the files of image/ share with each other and nobody else:
 *   oci.c     OCI index, manifest and config parsing (the pure parsers)
 *   source.c  finding the image: SOURCE specs, the layout umoci unpacks
 *   meta.c    image.json <-> struct image
 *   rootfs.c  unpacking the layers, making the ext4 or erofs
 *   cache.c   the cache entries and image_import's steps
 *   util.c    bounded reads, paths, progress, running a tool
 */
#ifndef CHVM_IMAGE_INTERNAL_H
#define CHVM_IMAGE_INTERNAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "image/image.h"

/* ---- oci.c: JSON as the OCI documents and image.json hold it ---- */

/* Parses one JSON object of at most OCI_JSON_MAX bytes (strict, UTF-8
   checked, bounded nesting, nothing but space after it); what names the
   document in errors. */
int oci_json_parse (const char *json, size_t len, const char *what, struct json_object **out,
                    struct err **err);

/* Optional member: absent and null both give NULL. */
struct json_object *oci_member (struct json_object *o, const char *key);

/* A string we can hand on as a C string and a config disk line: bounded,
   no NUL, no newline. */
int oci_check_string (struct json_object *v, const char *what, const char **s, struct err **err);

/* oci_check_string, then a copy of it into *out. */
int oci_dup_string (struct json_object *v, const char *what, char **out, struct err **err);

/* The exec fields of an OCI config object (the image config's "config", or
   image.json's top level). */
int oci_exec_fields_parse (struct json_object *o, struct oci_config **out, struct err **err);

/* A descriptor's org.opencontainers.image.ref.name annotation, or NULL. */
const char *oci_ref_name (struct json_object *d);

/* ---- source.c ---- */

/* The layout dir and ref umoci should unpack, after converting what umoci
   cannot read (docker archives, multi-platform indexes) with skopeo into
   tmp/oci:latest (skopeo's output goes to log).  Sets hex to the manifest
   digest. */
int image_layout_prepare (const struct image_source *src, const char *tmp, const char *log,
                          image_progress_fn progress, void *ctx, char **layout, char **ref,
                          char hex[IMAGE_ID_LEN + 1], struct err **err);

/* The source as image.json records it: kind prefix, absolute path, tag. */
int image_source_canonical (const struct image_source *src, char **out, struct err **err);

/* Reads the manifest hex names from layout, and the config blob it names:
   the number of layers and the parsed config. */
int image_layout_config (const char *layout, const char *hex, struct oci_config **config,
                         size_t *n_layers, struct err **err);

/* ---- rootfs.c ---- */

/* Unpacks layout:ref into the directory tree (made by umoci; rootless when
   we are not root, which loses file owners), umoci's output to log. */
int image_unpack (const char *layout, const char *ref, const char *tree, const char *log,
                  image_progress_fn progress, void *ctx, struct err **err);

/* Makes the read-only file system out (labelled chvm-root where the format
   can carry a label) of tree, the tool's output to log. */
int image_rootfs_make (enum image_format fmt, const char *tree, const char *out, const char *log,
                       struct err **err);

/* ---- util.c ---- */

/* Reads a whole file of at most max bytes, NUL-terminated. */
int image_read_bounded (const char *path, size_t max, char **out, size_t *len, struct err **err);

/* *out = "a/b". */
int image_path_join (char **out, const char *a, const char *b, struct err **err);

/* Formats a progress message for fn (which may be NULL: nothing). */
void image_progress (image_progress_fn fn, void *ctx, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Runs a tool (searched in PATH) to completion with its output appended
   to log; a failure names the tool and gives the log's last line. */
int image_run_tool (const char *const argv[], const char *log, struct err **err);

#endif
