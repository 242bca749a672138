/*
 * The embedded defaults: what sluiced and the sluice CLI use when no
 * configuration file is given.  State lives in ./var; listeners are on
 * loopback only; a demo tenant is made on first start.
 */
#ifndef SLUICE_DEFAULTS_H
#define SLUICE_DEFAULTS_H

#include "store/store.h"
#include "util/config.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

#define DEFAULTS_STATE_DIR "var"

/* Fill cfg (after config_defaults) with the embedded defaults. */
int defaults_embedded(struct sluice_config *cfg, char **err_r);
/* Make the demo tenant when the store has no tenant yet, and print its
 * credentials on stdout.  0 ok (made or not needed), -1 error. */
int defaults_demo_tenant(struct store *st, char **err_r);
/* Load -c FILE, or the embedded defaults when path is NULL. */
int defaults_load(const char *path, struct sluice_config *cfg, char **err_r);

#endif
