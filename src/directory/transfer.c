/* transfer.c - `postern directory export` and `import`: a whole directory as text, to
 * move it from SQLite to PostgreSQL (or back) through the public interface alone, so
 * any backend reads and writes it.
 *
 *   POSTERN-DIRECTORY 1
 *   domain  NAME
 *   user    ADDRESS  QUOTA  MESSAGES_PER_HOUR|-  RECIPIENTS_PER_DAY|-  ADMIN(0|1)  HASH
 *   alias   ALIAS  TARGET
 *   grant   USER  ADDRESS
 *   app     USER  NAME  SELECTOR|-  HASH
 *   home    USER  NODE          the user's home node ([cluster]), when one is set
 *   end     RECORDS
 *
 * Fields are separated by one tab; in a field, every octet that is a control
 * character, a space, '%' or DEL is written %XX (an app password's name may hold
 * spaces).  The end line counts the records, so a file cut short is refused. */
#include "directory/directory.h"
#include "util/parse.h"

#include <stdlib.h>
#include <string.h>

#define TRANSFER_MAGIC "POSTERN-DIRECTORY 1"
#define TRANSFER_LINE_MAX 4096
#define TRANSFER_FIELDS 7

struct export_state {
	struct directory *d;
	FILE *out;
	struct dir_transfer_counts *n;
	unsigned records;
	bool failed;
	char err[DIR_ADDRESS_MAX + DIR_ERROR_MAX + 16];
};

static void put_field(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= 0x20 || *p == '%' || *p == 0x7f)
			fprintf(out, "%%%02X", *p);
		else
			fputc(*p, out);
	}
}

/* One record: its kind and up to TRANSFER_FIELDS fields, tab-separated. */
static void put_record(struct export_state *x, const char *kind, const char *const *fields, int nf)
{
	fputs(kind, x->out);
	for (int i = 0; i < nf; i++) {
		fputc('\t', x->out);
		put_field(x->out, fields[i]);
	}
	fputc('\n', x->out);
	x->records++;
}

static void export_domain(void *arg, const char *domain)
{
	put_record(arg, "domain", (const char *const[]){ domain }, 1);
	((struct export_state *)arg)->n->domains++;
}

static void export_user(void *arg, const struct dir_user *u)
{
	struct export_state *x = arg;
	struct dir_login_hash h;
	if (directory_login_hash(x->d, u->address, NULL, &h) != DIR_OK) {
		x->failed = true;
		snprintf(x->err, sizeof(x->err), "reading %s: %s", u->address, directory_error(x->d));
		return;
	}
	char quota[24], lm[24], lr[24];
	snprintf(quota, sizeof(quota), "%llu", (unsigned long long)u->quota);
	snprintf(lm, sizeof(lm), u->limit_messages_per_hour < 0 ? "-" : "%lld", (long long)u->limit_messages_per_hour);
	snprintf(lr, sizeof(lr), u->limit_recipients_per_day < 0 ? "-" : "%lld", (long long)u->limit_recipients_per_day);
	put_record(x, "user", (const char *const[]){ u->address, quota, lm, lr, u->admin ? "1" : "0", h.hash }, 6);
	if (u->home_node[0])
		put_record(x, "home", (const char *const[]){ u->address, u->home_node }, 2);
	x->n->users++;
}

static void export_alias(void *arg, const char *alias, const char *target)
{
	put_record(arg, "alias", (const char *const[]){ alias, target }, 2);
	((struct export_state *)arg)->n->aliases++;
}

static void export_grant(void *arg, const char *user, const char *address)
{
	put_record(arg, "grant", (const char *const[]){ user, address }, 2);
	((struct export_state *)arg)->n->grants++;
}

static void export_app(void *arg, const char *user, const char *name, const char *selector, const char *hash)
{
	put_record(arg, "app", (const char *const[]){ user, name, selector ? selector : "-", hash }, 4);
	((struct export_state *)arg)->n->app_passwords++;
}

bool directory_export(struct directory *d, FILE *out, struct dir_transfer_counts *n, char *err, size_t errlen)
{
	memset(n, 0, sizeof(*n));
	struct export_state x = { .d = d, .out = out, .n = n };
	fprintf(out, "%s\n", TRANSFER_MAGIC);
	bool ok = directory_domain_list(d, export_domain, &x) == DIR_OK
		&& directory_user_list(d, export_user, &x) == DIR_OK && !x.failed
		&& directory_alias_list(d, export_alias, &x) == DIR_OK
		&& directory_grant_dump(d, export_grant, &x) == DIR_OK
		&& directory_app_password_dump(d, export_app, &x) == DIR_OK;
	if (!ok) {
		snprintf(err, errlen, "%s", x.failed ? x.err : directory_error(d));
		return false;
	}
	fprintf(out, "end\t%u\n", x.records);
	if (fflush(out) != 0 || ferror(out)) {
		snprintf(err, errlen, "cannot write the export");
		return false;
	}
	return true;
}

/* --- import ----------------------------------------------------------------------- */

/* Undo put_field in place; false on a malformed escape or an escaped NUL. */
static bool decode_field(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		if (*r != '%') {
			*w++ = *r;
			continue;
		}
		int hi = parse_hex_digit(r[1]), lo = hi < 0 ? -1 : parse_hex_digit(r[2]);
		if (lo < 0 || (hi == 0 && lo == 0))
			return false;
		*w++ = (char)(hi * 16 + lo);
		r += 2;
	}
	*w = '\0';
	return true;
}

/* Split a line into tab-separated fields, each then decoded once; the count, or -1
 * when a field is malformed or there are more than max. */
static int split_fields(char *line, char **f, int max)
{
	int n = 0;
	for (char *p = line; p; n++) {
		if (n == max)
			return -1;
		f[n] = p;
		char *tab = strchr(p, '\t');
		if (tab)
			*tab = '\0';
		if (!decode_field(f[n]))
			return -1;
		p = tab ? tab + 1 : NULL;
	}
	return n;
}

/* A result of adding one record: DIR_EXISTS counts as already there. */
static bool added(enum dir_result r, unsigned *count, struct dir_transfer_counts *n)
{
	if (r == DIR_EXISTS) {
		n->existing++;
		return true;
	}
	if (r == DIR_OK)
		(*count)++;
	return r == DIR_OK;
}

static bool parse_limit(const char *s, int64_t *out)
{
	char *end;
	if (strcmp(s, "-") == 0) {
		*out = -1;
		return true;
	}
	long long v = strtoll(s, &end, 10);
	*out = v;
	return *s && !*end && v >= 0;
}

/* A user record: added with its hash; quota, limits and admin flag set only when it is new. */
static bool import_user(struct directory *d, char **f, struct dir_transfer_counts *n)
{
	char *end;
	unsigned long long quota = strtoull(f[1], &end, 10);
	int64_t lm, lr;
	if (*end || !parse_limit(f[2], &lm) || !parse_limit(f[3], &lr) || (strcmp(f[4], "0") && strcmp(f[4], "1")))
		return false;
	enum dir_result r = directory_user_add(d, f[0], f[5]);
	if (r != DIR_OK)
		return added(r, &n->users, n);
	n->users++;
	return (quota == 0 || directory_user_quota_set(d, f[0], quota) == DIR_OK)
		&& ((lm < 0 && lr < 0) || directory_user_limits_set(d, f[0], lm, lr) == DIR_OK)
		&& (f[4][0] == '0' || directory_user_admin_set(d, f[0], true) == DIR_OK);
}

/* One record line; false when it is malformed or the directory refused it. */
static bool import_record(struct directory *d, char **f, int nf, struct dir_transfer_counts *n)
{
	const char *kind = f[0];
	if (strcmp(kind, "domain") == 0 && nf == 2)
		return added(directory_domain_add(d, f[1]), &n->domains, n);
	if (strcmp(kind, "user") == 0 && nf == 7)
		return import_user(d, f + 1, n);
	if (strcmp(kind, "home") == 0 && nf == 3)
		return directory_user_home_set(d, f[1], f[2]) == DIR_OK;
	if (strcmp(kind, "alias") == 0 && nf == 3)
		return added(directory_alias_add(d, f[1], f[2]), &n->aliases, n);
	if (strcmp(kind, "grant") == 0 && nf == 3)
		return added(directory_sender_allow(d, f[1], f[2]), &n->grants, n);
	if (strcmp(kind, "app") == 0 && nf == 5)
		return added(directory_app_password_add(d, f[1], f[2], strcmp(f[3], "-") ? f[3] : NULL, f[4]),
			&n->app_passwords, n);
	return false;
}

bool directory_import(struct directory *d, FILE *in, struct dir_transfer_counts *n, char *err, size_t errlen)
{
	memset(n, 0, sizeof(*n));
	char line[TRANSFER_LINE_MAX];
	unsigned lineno = 0, records = 0;
	bool ended = false;
	while (fgets(line, sizeof(line), in)) {
		lineno++;
		size_t len = strlen(line);
		if (len == 0 || line[len - 1] != '\n') {
			snprintf(err, errlen, "line %u: too long or not ended by a newline (a file cut short?)", lineno);
			return false;
		}
		line[len - 1] = '\0';
		if (lineno == 1) {
			if (strcmp(line, TRANSFER_MAGIC) != 0) {
				snprintf(err, errlen, "line 1: not a Postern directory export (it starts with \"%s\")", TRANSFER_MAGIC);
				return false;
			}
			continue;
		}
		char *f[TRANSFER_FIELDS + 1];
		int nf = split_fields(line, f, TRANSFER_FIELDS + 1);
		if (nf == 2 && strcmp(f[0], "end") == 0) {
			ended = (unsigned)strtoul(f[1], NULL, 10) == records;
			if (!ended) {
				snprintf(err, errlen, "line %u: the export says %s records, the file holds %u", lineno, f[1], records);
				return false;
			}
			break;
		}
		if (ended || nf < 2 || !import_record(d, f, nf, n)) {
			const char *why = directory_error(d);
			snprintf(err, errlen, "line %u: %s record: %s", lineno, nf < 2 ? "a" : f[0],
				*why ? why : "malformed (wrong number of fields or a bad value)");
			return false;
		}
		records++;
	}
	if (!ended) {
		snprintf(err, errlen, "the file ends before its end line: cut short? (%u records read)", records);
		return false;
	}
	return true;
}
