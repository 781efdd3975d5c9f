/* import.c - `postern import dovecot-passwd FILE` and `postern import postfix-virtual
 * FILE`: moving from Postfix + Dovecot (docs/migrating.md).  Users keep their password
 * hashes (auth/credentials.h decides which libxcrypt can check); Postfix's virtual
 * alias map becomes Postern aliases where the directory can hold it (one address to
 * one local user), and every line it cannot hold is listed with the reason.  Each
 * line reports what became of it; nothing is imported half. */
#include "cli/cli.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/credentials.h"
#include "conf/conf.h"
#include "directory/directory.h"

#define IMPORT_LINE_MAX 8192

struct import_counts {
	unsigned done, kept, refused;
};

static bool domain_is_local(const struct conf *c, struct directory *d, const char *domain)
{
	return conf_is_local_domain(c, domain) || directory_domain_exists(d, domain) == DIR_OK;
}

/* One passwd-file line: user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields
 * (Dovecot's passwd-file, "Passwd-file" in its documentation). */
static void passwd_line(const struct conf *c, struct directory *d, const char *where, char *line, struct import_counts *n)
{
	char *colon = strchr(line, ':');
	if (!colon) {
		printf("%s: not imported: not user:password:... (a Dovecot passwd-file line)\n", where);
		n->refused++;
		return;
	}
	*colon = '\0';
	char *user = line, *field = colon + 1, *end = strchr(field, ':');
	if (end)
		*end = '\0';
	const char *at = strrchr(user, '@');
	if (!at || at == user || !at[1]) {
		printf("%s: %s not imported: no domain (Postern's users are user@domain): write it as %s@DOMAIN\n", where, user, user);
		n->refused++;
		return;
	}
	if (!domain_is_local(c, d, at + 1)) {
		printf("%s: %s not imported: %s is not a local domain: add it (postern domain add %s), then import again\n",
			where, user, at + 1, at + 1);
		n->refused++;
		return;
	}
	char why[600] = "";
	bool hashed;
	enum dir_result r = credentials_user_import(d, user, field, &hashed, why, sizeof(why));
	explicit_bzero(field, strlen(field));
	if (r == DIR_OK) {
		n->done++;
		if (hashed)
			printf("%s: %s imported; warning: its password was in clear text ({PLAIN}): it is stored hashed now; "
				"delete the old file\n", where, user);
		else
			printf("%s: %s imported with its hash\n", where, user);
	} else if (r == DIR_EXISTS) {
		n->kept++;
		printf("%s: %s already exists: kept as it is\n", where, user);
	} else {
		n->refused++;
		printf("%s: %s not imported: %s\n", where, user, why[0] ? why : directory_error(d));
	}
}

static void trim(char *s)
{
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* One virtual(5) entry: "pattern result, result ...".  Postern's aliases map one
 * address to one local user; everything else is listed as not imported. */
static void virtual_entry(const struct conf *c, struct directory *d, const char *where, char *entry,
	struct import_counts *n)
{
	char *p = entry + strspn(entry, " \t");
	char *key = p;
	p += strcspn(p, " \t");
	if (*p)
		*p++ = '\0';
	p += strspn(p, " \t,");
	trim(p);
	const char *why = NULL;
	if (!*p)
		why = "no result after the address";
	else if (key[0] == '@')
		why = "a catch-all (@domain): Postern has none; give each address an alias (postern alias add)";
	else if (!strchr(key, '@'))
		why = "a bare local part (virtual(5) matches it for $myorigin only): write it as user@domain";
	else if (strpbrk(p, ", \t"))
		why = "several results: a Postern alias goes to one user; choose one, or use a list on another server";
	else if (!strchr(p, '@'))
		why = "the result has no domain: write it as user@domain";
	else if (!domain_is_local(c, d, strrchr(key, '@') + 1))
		why = "the address's domain is not local: add it (postern domain add) and import again";
	if (why) {
		printf("%s: %s not imported: %s\n", where, key, why);
		n->refused++;
		return;
	}
	if (strcasecmp(key, p) == 0) {
		printf("%s: %s -> %s: the user's own address, nothing to do\n", where, key, p);
		n->kept++;
		return;
	}
	enum dir_result r = directory_alias_add(d, key, p);
	if (r == DIR_OK) {
		printf("%s: alias %s -> %s imported\n", where, key, p);
		n->done++;
	} else {
		printf("%s: %s not imported: %s%s\n", where, key, directory_error(d),
			r == DIR_INVALID ? " (a target must be a user here: forwarding elsewhere is not an alias)" : "");
		r == DIR_EXISTS ? n->kept++ : n->refused++;
	}
}

/* Read FILE's lines; comments (#) and empty lines skipped; with `continued`, a line
 * starting with white space continues the one before (postmap(1)). */
static int each_entry(const char *path, bool continued, const struct conf *c, struct directory *d,
	void (*fn)(const struct conf *, struct directory *, const char *, char *, struct import_counts *))
{
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return 1;
	}
	struct import_counts n = { 0 };
	char *line = malloc(IMPORT_LINE_MAX), *entry = malloc(IMPORT_LINE_MAX), where[1200];
	unsigned lineno = 0, entry_line = 0;
	bool have = false;
	while (line && entry) {
		bool more = fgets(line, IMPORT_LINE_MAX, f) != NULL;
		lineno += more;
		if (more && (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0'))
			continue;
		bool cont = more && continued && (line[0] == ' ' || line[0] == '\t');
		if (cont && have && strlen(entry) + strlen(line) + 2 < IMPORT_LINE_MAX) {
			trim(entry);
			strcat(entry, " ");
			strcat(entry, line + strspn(line, " \t"));
			continue;
		}
		if (have) {
			trim(entry);
			snprintf(where, sizeof(where), "%s:%u", path, entry_line);
			fn(c, d, where, entry, &n);
		}
		if (!more)
			break;
		snprintf(entry, IMPORT_LINE_MAX, "%s", line);
		trim(entry);
		entry_line = lineno;
		have = true;
	}
	fclose(f);
	if (entry)
		explicit_bzero(entry, IMPORT_LINE_MAX);
	if (line)
		explicit_bzero(line, IMPORT_LINE_MAX);
	free(line);
	free(entry);
	printf("%s: %u imported, %u already there, %u not imported\n", path, n.done, n.kept, n.refused);
	return n.refused ? 1 : 0;
}

int cli_import(int argc, char **argv, const struct conf *c, struct directory *d)
{
	if (argc == 2 && strcmp(argv[0], "dovecot-passwd") == 0)
		return each_entry(argv[1], false, c, d, passwd_line);
	if (argc == 2 && strcmp(argv[0], "postfix-virtual") == 0)
		return each_entry(argv[1], true, c, d, virtual_entry);
	fprintf(stderr, "postern: usage: postern import dovecot-passwd FILE | postfix-virtual FILE\n");
	return 2;
}
