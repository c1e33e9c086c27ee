/*
 * test_schema_suite.c — the official JSON Schema Test Suite (draft
 * 2020-12, vendored in tests/unit/json-schema-suite) run against schema.c.
 *
 * One TAP line per test case, "file: group / test". Groups that use what
 * the subset refuses on purpose ($id, $anchor, remote references,
 * unevaluated*, \p{...}) are listed in exclusions[] with the reason; for
 * them one line asserts that compilation refuses the schema. An exclusion
 * that matches nothing fails, so the table cannot go stale.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "schema.h"
#include "tap.h"

#define ID_REFS "$id changes the base URI of $ref; $id is refused at compile"
#define REMOTE_REFS "remote $ref: only local \"#...\" references are supported"
#define UNEVALUATED "unevaluatedProperties needs annotation collection; refused at compile"
#define PROPERTY_ESCAPES "\\p{...} has no POSIX ERE translation; refused at compile"

struct exclusion {
	const char *file;
	const char *group;
	const char *reason;
	int used;
};

/* Whole groups whose schema compilation must refuse. */
static struct exclusion exclusions[] = {
	{"defs.json", "validate definition against metaschema", REMOTE_REFS, 0},
	{"not.json", "collect annotations inside a 'not', even if collection is disabled",
	 UNEVALUATED, 0},
	{"pattern.json", "pattern with Unicode property escape requires unicode mode",
	 PROPERTY_ESCAPES, 0},
	{"patternProperties.json", "patternProperties with Unicode property escape",
	 PROPERTY_ESCAPES, 0},
	{"ref.json", "remote ref, containing refs itself", REMOTE_REFS, 0},
	{"ref.json", "Recursive references between schemas", ID_REFS, 0},
	{"ref.json", "ref creates new scope when adjacent to keywords", UNEVALUATED, 0},
	{"ref.json", "refs with relative uris and defs", ID_REFS, 0},
	{"ref.json", "relative refs with absolute uris and defs", ID_REFS, 0},
	{"ref.json", "$id must be resolved against nearest parent, not just immediate parent",
	 ID_REFS, 0},
	{"ref.json", "order of evaluation: $id and $ref", ID_REFS, 0},
	{"ref.json", "order of evaluation: $id and $anchor and $ref", ID_REFS, 0},
	{"ref.json", "order of evaluation: $id and $ref on nested schema", ID_REFS, 0},
	{"ref.json", "simple URN base URI with $ref via the URN", ID_REFS, 0},
	{"ref.json", "simple URN base URI with JSON pointer", ID_REFS, 0},
	{"ref.json", "URN base URI with NSS", ID_REFS, 0},
	{"ref.json", "URN base URI with r-component", ID_REFS, 0},
	{"ref.json", "URN base URI with q-component", ID_REFS, 0},
	{"ref.json", "URN base URI with URN and JSON pointer ref", ID_REFS, 0},
	{"ref.json", "URN base URI with URN and anchor ref", ID_REFS, 0},
	{"ref.json", "URN ref with nested pointer ref", ID_REFS, 0},
	{"ref.json", "ref to if", ID_REFS, 0},
	{"ref.json", "ref to then", ID_REFS, 0},
	{"ref.json", "ref to else", ID_REFS, 0},
	{"ref.json", "ref with absolute-path-reference", ID_REFS, 0},
	{"ref.json", "$id with file URI still resolves pointers - *nix", ID_REFS, 0},
	{"ref.json", "$id with file URI still resolves pointers - windows", ID_REFS, 0},
};

static int passed_cases;

static struct exclusion *find_exclusion(const char *file, const char *group)
{
	for (size_t i = 0; i < sizeof(exclusions) / sizeof(exclusions[0]); i++)
		if (strcmp(exclusions[i].file, file) == 0 && strcmp(exclusions[i].group, group) == 0)
			return &exclusions[i];
	return NULL;
}

static const char *member_string(struct json_object *o, const char *name)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return "?";
	return json_object_get_string(v);
}

static struct json_object *member(struct json_object *o, const char *name)
{
	struct json_object *v = NULL;
	json_object_object_get_ex(o, name, &v);
	return v;
}

static void run_tests(const char *file, const char *group, const struct schema *s,
                      struct json_object *tests)
{
	for (size_t i = 0; i < json_object_array_length(tests); i++) {
		struct json_object *t = json_object_array_get_idx(tests, i);
		struct schema_error e;
		bool expected = json_object_get_boolean(member(t, "valid"));
		bool got = schema_validate(s, member(t, "data"), &e);
		if (ok(got == expected, "%s: %s / %s", file, group, member_string(t, "description"))) {
			passed_cases++;
		} else if (!got) {
			tap_diag_value("path", e.path);
			tap_diag_value("keyword", e.keyword);
			tap_diag_value("message", e.message);
		}
	}
}

static void run_group(const char *file, struct json_object *g)
{
	const char *group = member_string(g, "description");
	const char *text = json_object_to_json_string_ext(member(g, "schema"), JSON_C_TO_STRING_PLAIN);
	struct exclusion *x = find_exclusion(file, group);
	char err[256];
	struct schema *s = schema_compile(text, strlen(text), err, sizeof(err));

	if (x != NULL) {
		x->used++;
		ok(s == NULL, "%s: %s: compile refuses it", file, group);
		tap_diag_value("excluded", x->reason);
		tap_diag_value("refusal", s == NULL ? err : "(compiled)");
	} else if (s == NULL) {
		ok(0, "%s: %s: compiles", file, group);
		tap_diag_value("error", err);
	} else {
		run_tests(file, group, s, member(g, "tests"));
	}
	schema_free(s);
}

static struct json_object *load(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0, cap = 0, n;
	struct json_object *doc = NULL;

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			text = realloc(text, cap);
			if (text == NULL)
				abort();
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	struct json_tokener *tok = json_tokener_new_ex(128);
	doc = json_tokener_parse_ex(tok, text, (int)len);
	json_tokener_free(tok);
	free(text);
	return doc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json names in dir, sorted so the TAP output is stable. */
static size_t list_files(const char *dir, char ***names)
{
	DIR *d = opendir(dir);
	struct dirent *ent;
	size_t n = 0;

	*names = NULL;
	if (d == NULL)
		return 0;
	while ((ent = readdir(d)) != NULL) {
		size_t len = strlen(ent->d_name);
		if (len < 6 || strcmp(ent->d_name + len - 5, ".json") != 0)
			continue;
		*names = realloc(*names, (n + 1) * sizeof(**names));
		if (*names == NULL)
			abort();
		(*names)[n++] = strdup(ent->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(*names, n, sizeof(**names), name_cmp);
	return n;
}

int main(void)
{
	const char *srcdir = getenv("HERALD_SRCDIR");
	char dir[4096], path[4200];
	char **names;
	int groups = 0;

	snprintf(dir, sizeof(dir), "%s/tests/unit/json-schema-suite/draft2020-12",
	         srcdir != NULL ? srcdir : ".");
	size_t n = list_files(dir, &names);
	ok(n > 0, "suite files found in %s", dir);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		struct json_object *doc = load(path);
		if (ok(json_object_is_type(doc, json_type_array), "%s parses", names[i]))
			for (size_t g = 0; g < json_object_array_length(doc); g++, groups++)
				run_group(names[i], json_object_array_get_idx(doc, g));
		json_object_put(doc);
		free(names[i]);
	}
	free(names);
	for (size_t i = 0; i < sizeof(exclusions) / sizeof(exclusions[0]); i++)
		ok(exclusions[i].used == 1, "exclusion %s: %s matches one group", exclusions[i].file,
		   exclusions[i].group);
	printf("# %d groups; %d test cases passed; %zu groups refused as excluded\n", groups,
	       passed_cases, sizeof(exclusions) / sizeof(exclusions[0]));
	return done_testing();
}
