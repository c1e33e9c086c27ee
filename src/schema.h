/*
 * schema.h — JSON Schema (draft 2020-12 subset) validation (pure).
 *
 * Compiles a schema once and validates json-c values against it. The
 * subset: boolean schemas, type, enum, const, the numeric, string, array
 * and object assertions, properties / patternProperties /
 * additionalProperties / propertyNames, prefixItems / items / contains,
 * allOf / anyOf / oneOf / not, if / then / else, dependentRequired /
 * dependentSchemas, $defs and local $ref (JSON Pointer fragments only).
 * $schema (2020-12 only), $comment, title, description, default,
 * examples, deprecated, readOnly and writeOnly are accepted and ignored.
 * Every other keyword is refused at compile time, never skipped.
 *
 * Patterns are ECMA-262 regexes (unanchored, code points as with the u
 * flag) run by glibc's POSIX regex after translation; lookaround,
 * backreferences, \b, \B and \p{...} are refused. Instance strings must
 * be valid UTF-8 (publish's jsoncheck guarantees it): lengths count code
 * points.
 *
 * Limits: schema documents nest at most 128 levels and pass jsoncheck (no
 * duplicate member names); validation nests at most 256 subschemas,
 * beyond which it fails with keyword "$ref" (only a recursive $ref gets
 * there). A compiled schema is immutable and may be used by any number of
 * threads at once without locking; compiling uses no global state either.
 */
#ifndef HERALD_SCHEMA_H
#define HERALD_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include "compiler.h"

struct json_object;
struct schema;

struct schema_error {
	char path[192];    /* JSON Pointer (RFC 6901) of the failing instance location, "" for the root */
	char keyword[32];  /* the failing keyword, e.g. "minimum", "required", "additionalProperties" */
	char message[192]; /* short human text, e.g. "must be >= 0", "missing member \"name\"" */
};

/*
 * schema_compile - compile the schema in json (len bytes of JSON text).
 *
 * Returns a new schema owned by the caller (schema_free), or NULL with a
 * one-line reason in err (errlen bytes, may be 0) that starts with the
 * JSON Pointer of the offending schema location ("(root)" for the root),
 * e.g. "/properties/a: unsupported keyword \"format\"".
 */
struct schema *schema_compile(const char *json, size_t len, char *err,
                              size_t errlen) HERALD_MUSTCHECK;

/*
 * schema_validate - check instance (borrowed; NULL is JSON null) against s.
 *
 * true when valid (*e then cleared). Otherwise false and, when e is not
 * NULL, *e describes the first failure found, as deep as it goes:
 * properties, items, $ref, allOf and then/else report the failure inside
 * them; anyOf, oneOf, not and propertyNames report themselves, and the
 * schema false reports the keyword that led to it. Strings in e are
 * NUL-terminated and cut at a UTF-8 character boundary when too long.
 */
bool schema_validate(const struct schema *s, struct json_object *instance,
                     struct schema_error *e) HERALD_MUSTCHECK;

/* Frees s and everything it owns; NULL is allowed. */
void schema_free(struct schema *s);

#endif
