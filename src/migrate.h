/*
 * migrate.h — installing and upgrading the herald schema (herald --migrate).
 */
#ifndef HERALD_MIGRATE_H
#define HERALD_MIGRATE_H

#include <stdbool.h>
#include "compiler.h"

/* Applies every embedded sql/NNNN_*.sql not yet recorded in
 * herald.schema_migrations, each in its own transaction, under an advisory
 * lock so that concurrent runs are safe. */
bool migrate_run(const char *conninfo) HERALD_MUSTCHECK;

#endif
