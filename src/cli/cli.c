/* cli.c - the `postern` subcommands: serve, check-config, domain, user, version.
 * Each subcommand is a row in one table; usage text comes from the same rows. */
#include "cli/cli.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth/credentials.h"
#include "auth/password.h"
#include "conf/conf.h"
#include "diag/diag.h"
#include "directory/directory.h"
#include "store/layout.h"
#include "store/maildir.h"
#include "store/quota.h"
#include "serve/server.h"
#include "serve/startup.h"
#include "util/parse.h"

#define DEFAULT_CONF "/etc/postern/postern.conf"

struct cli_args {
	const char *conf_path;
	bool embedded;     /* --default-config: ignore /etc/postern/postern.conf */
	const char *name;  /* --name NAME */
	const char *sender; /* --sender ADDRESS */
	bool json;         /* --json */
	bool bounce;       /* --bounce */
	bool all;          /* --all */
	bool no_bind;      /* --no-bind */
	const char *home;  /* --home NODE (user add) */
	int argc;          /* positional arguments after the subcommand */
	char **argv;
};

static int usage(void);

/* Configuration: -c FILE, else /etc/postern/postern.conf, else the embedded default. */
static bool load_conf(const struct cli_args *a, struct conf *c, bool quiet)
{
	char err[1024];
	bool ok;
	if (a->embedded)
		ok = conf_load_string(c, conf_embedded_default, "(embedded default)", err, sizeof(err));
	else if (a->conf_path)
		ok = conf_load_file(c, a->conf_path, err, sizeof(err));
	else if (access(DEFAULT_CONF, F_OK) == 0)
		ok = conf_load_file(c, DEFAULT_CONF, err, sizeof(err));
	else {
		ok = conf_load_string(c, conf_embedded_default, "(embedded default)", err, sizeof(err));
		if (ok && !quiet)
			fprintf(stderr, "postern: no -c FILE and no %s: using the embedded default configuration\n", DEFAULT_CONF);
	}
	if (!ok)
		fprintf(stderr, "postern: %s\n", err);
	return ok;
}

/* Admin commands run by root act as the owner of the data directory, so the files
 * they create stay readable and writable by the server. */
static void become_data_owner(const struct conf *c)
{
	struct stat st;
	if (geteuid() != 0 || stat(c->data_dir, &st) != 0 || st.st_uid == 0)
		return;
	if (setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0) {
		fprintf(stderr, "postern: cannot switch to the owner of %s: %s\n", c->data_dir, strerror(errno));
		exit(1);
	}
}

static bool open_directory(const struct conf *c, struct directory **d)
{
	char err[512];
	become_data_owner(c);
	startup_directory(c);
	if (!directory_open(d, c->data_dir, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return false;
	}
	return true;
}

typedef int (*dir_command)(const struct cli_args *a, const struct conf *c, struct directory *d);

/* The frame of every directory command: arguments, configuration, directory. */
static int run_with_directory(const struct cli_args *a, int min_args, dir_command fn)
{
	if (a->argc < min_args)
		return usage();
	struct conf *c = malloc(sizeof(*c));   /* large: keep it off the stack */
	struct directory *d = NULL;
	int rc = 1;
	if (c && load_conf(a, c, true) && open_directory(c, &d))
		rc = fn(a, c, d);
	directory_close(&d);
	free(c);
	return rc;
}

static int cmd_serve(const struct cli_args *a)
{
	struct conf *c = malloc(sizeof(*c));
	if (!c || !load_conf(a, c, false)) {
		free(c);
		return 1;
	}
	int r = server_run(c);
	free(c);
	return r;
}

/* The file with every error it has (conf_load_file_every_error), then the steps serve
 * takes before serving (config_cmd.c). */
static int cmd_check_config(const struct cli_args *a)
{
	struct conf *c = malloc(sizeof(*c));
	char *err = malloc(8192);
	int rc = 1;
	if (c && err && a->conf_path && !a->embedded)
		rc = cli_check_config(c, conf_load_file_every_error(c, a->conf_path, err, 8192) ? NULL : err, !a->no_bind);
	else if (c && err)
		rc = load_conf(a, c, true) ? cli_check_config(c, NULL, !a->no_bind) : 1;
	free(err);
	free(c);
	return rc;
}

static int cmd_config(const struct cli_args *a)
{
	if (a->argc < 1)
		return usage();
	struct conf *c = malloc(sizeof(*c));
	bool man = strcmp(a->argv[0], "man") == 0;
	int rc = !c ? 1 : man ? cli_config(a->argc, a->argv, NULL, false)
		: load_conf(a, c, true) ? cli_config(a->argc, a->argv, c, a->all) : 1;
	free(c);
	return rc == 2 ? usage() : rc;
}

static void print_line(void *arg, const char *s)
{
	(void)arg;
	printf("%s\n", s);
}

static int domain_op(const struct cli_args *a, const struct conf *c, struct directory *d)
{
	const char *op = a->argv[0];
	int rc = 0;
	if (strcmp(op, "list") == 0) {
		for (size_t i = 0; i < c->n_local_domains; i++)
			printf("%s (from %s)\n", c->local_domains[i], c->path);
		rc = directory_domain_list(d, print_line, NULL) == DIR_OK ? 0 : 1;
	} else if ((strcmp(op, "add") == 0 || strcmp(op, "del") == 0) && a->argc == 2) {
		const char *name = a->argv[1];
		enum dir_result r = op[0] == 'a' ? directory_domain_add(d, name) : directory_domain_del(d, name);
		switch (r) {
		case DIR_OK:
			printf("domain %s %s\n", name, op[0] == 'a' ? "added" : "deleted");
			break;
		case DIR_EXISTS:
			fprintf(stderr, "postern: domain %s: %s\n", name, op[0] == 'a' ? "already exists" : directory_error(d));
			rc = 1;
			break;
		case DIR_NOT_FOUND:
			fprintf(stderr, "postern: domain %s does not exist\n", name);
			rc = 1;
			break;
		case DIR_INVALID:
			fprintf(stderr, "postern: \"%s\" is not a valid domain name\n", name);
			rc = 1;
			break;
		case DIR_ERROR:
			fprintf(stderr, "postern: %s\n", directory_error(d));
			rc = 1;
			break;
		}
	} else {
		rc = usage();
	}
	return rc;
}

/* First line of standard input, without echo when it is a terminal. */
static bool read_password(char *out, size_t outsz)
{
	bool tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	if (tty) {
		fprintf(stderr, "Password: ");
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	bool ok = fgets(out, (int)outsz, stdin) != NULL;
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fprintf(stderr, "\n");
	}
	if (!ok)
		return false;
	out[strcspn(out, "\r\n")] = '\0';
	return true;
}

struct user_list_ctx {
	const struct conf *c;
	struct directory *d;
};

/* The Maildir mail to address goes to (aliases followed), if it is local; dr says
 * whose it is. */
static bool resolved_path(const struct conf *c, struct directory *d, const char *address, struct dir_recipient *dr,
	char *path, size_t pathsz)
{
	directory_resolve_recipient(d, c, address, dr);
	return directory_recipient_has_mailbox(dr) &&
		store_mailbox_path(c->data_dir, dr->mailbox.domain, dr->mailbox.local, path, pathsz);
}

static bool mailbox_path(const struct conf *c, struct directory *d, const char *address, char *path, size_t pathsz)
{
	struct dir_recipient dr;
	return resolved_path(c, d, address, &dr, path, pathsz);
}

/* The directory keeps the account's quota too (the Maildir's maildirsize is what is
 * enforced), so that another node or a later backend knows it. */
static int record_quota(struct directory *d, const struct dir_recipient *dr, uint64_t bytes)
{
	if (!dr->user[0] || directory_user_quota_set(d, dr->user, bytes) == DIR_OK)
		return 0;
	fprintf(stderr, "postern: %s\n", directory_error(d));
	return 1;
}

/* One user a line: address, then usage and quota when a quota is set, then the
 * sending limits when the account has its own (postern user limit), then "admin"
 * for an administrator (postern user admin). */
static void print_user(void *arg, const struct dir_user *u)
{
	struct user_list_ctx *ul = arg;
	char path[1400], err[256], limits[180] = "";
	if (ul && (u->limit_messages_per_hour >= 0 || u->limit_recipients_per_day >= 0)) {
		limits[0] = ' ';
		limits[1] = ' ';
		cli_user_limits_words(ul->c, u, limits + 2, sizeof(limits) - 10);
	}
	if (u->admin) {
		size_t n = strlen(limits);
		snprintf(limits + n, sizeof(limits) - n, "  admin");
	}
	if (u->home_node[0]) {
		size_t n = strlen(limits);
		snprintf(limits + n, sizeof(limits) - n, "  home %s", u->home_node);
	}
	struct quota_state st;
	if (ul && mailbox_path(ul->c, ul->d, u->address, path, sizeof(path)) &&
		quota_read(path, &st, err, sizeof(err)) && st.defined) {
		char used[32], limit[32];
		if (st.limit_bytes)
			printf("%s  %s of %s (%u%%)%s\n", u->address, format_size(st.used_bytes, used, sizeof(used)),
				format_size(st.limit_bytes, limit, sizeof(limit)), quota_percent(&st), limits);
		else
			printf("%s  %s, no limit%s\n", u->address, format_size(st.used_bytes, used, sizeof(used)), limits);
		return;
	}
	printf("%s%s\n", u->address, limits);
}

/* postern user quota ADDRESS SIZE|none */
static int user_quota(const struct conf *c, struct directory *d, const char *address, const char *size)
{
	char path[1400], err[512];
	struct dir_recipient dr;
	if (!resolved_path(c, d, address, &dr, path, sizeof(path)) || !strchr(address, '@')) {
		fprintf(stderr, "postern: no user %s\n", address);
		return 1;
	}
	if (strcmp(size, "none") == 0 || strcmp(size, "0") == 0) {
		if (!quota_remove(path, err, sizeof(err))) {
			fprintf(stderr, "postern: %s\n", err);
			return 1;
		}
		if (record_quota(d, &dr, 0))
			return 1;
		printf("%s: no quota\n", address);
		return 0;
	}
	uint64_t bytes;
	if (!parse_size(size, &bytes) || bytes < 1024) {
		fprintf(stderr, "postern: \"%s\" is not a size (e.g. 500M, 2G; or none)\n", size);
		return 2;
	}
	if (!maildir_create(path, err, sizeof(err)) || !quota_set(path, bytes, 0, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return 1;
	}
	if (record_quota(d, &dr, bytes))
		return 1;
	struct quota_state st;
	if (quota_read(path, &st, err, sizeof(err)))
	{
		char q[32], used[32];
		printf("%s: quota %s, %s used (%u%%)\n", address, format_size(bytes, q, sizeof(q)),
			format_size(st.used_bytes, used, sizeof(used)), quota_percent(&st));
	}
	return 0;
}

static int user_add(const struct conf *c, struct directory *d, const char *address, const char *home)
{
	if (home && !home[0]) {
		fprintf(stderr, "postern: --home needs a node name\n");
		return 1;
	}
	const char *at = strrchr(address, '@');
	if (!at) {
		fprintf(stderr, "postern: \"%s\" is not an address (user@domain)\n", address);
		return 1;
	}
	char domain[256];
	snprintf(domain, sizeof(domain), "%s", at + 1);
	ascii_lower(domain);
	if (!conf_is_local_domain(c, domain) && directory_domain_exists(d, domain) != DIR_OK) {
		fprintf(stderr, "postern: %s is not a local domain: add it first with `postern domain add %s` "
			"(or list it in local_domains in %s)\n", domain, domain, c->path);
		return 1;
	}
	char pw[1024];
	if (!read_password(pw, sizeof(pw)) || !pw[0]) {
		fprintf(stderr, "postern: no password given (write it on standard input)\n");
		return 1;
	}
	bool no_hash;
	enum dir_result r = credentials_user_add(d, address, pw, &no_hash);
	explicit_bzero(pw, sizeof(pw));
	if (no_hash) {
		fprintf(stderr, "postern: cannot hash the password\n");
		return 1;
	}
	switch (r) {
	case DIR_OK:
		printf("user %s added\n", address);
		return cli_user_add_home(c, d, address, home);
	case DIR_EXISTS:
		fprintf(stderr, "postern: user %s already exists\n", address);
		return 1;
	case DIR_INVALID:
		fprintf(stderr, "postern: %s: %s\n", address, directory_error(d));
		return 1;
	default:
		fprintf(stderr, "postern: %s\n", directory_error(d));
		return 1;
	}
}

static int user_op(const struct cli_args *a, const struct conf *c, struct directory *d)
{
	const char *op = a->argv[0];
	int rc;
	if (strcmp(op, "list") == 0 && a->argc == 1) {
		struct user_list_ctx ul = { c, d };
		rc = directory_user_list(d, print_user, &ul) == DIR_OK ? 0 : 1;
	} else if (strcmp(op, "add") == 0 && a->argc == 2) {
		rc = user_add(c, d, a->argv[1], a->home);
	} else if (strcmp(op, "home") == 0 && a->argc == 3) {
		rc = cli_user_home(d, a->argv[1], a->argv[2]);
	} else if (strcmp(op, "quota") == 0 && a->argc == 3) {
		rc = user_quota(c, d, a->argv[1], a->argv[2]);
	} else if (strcmp(op, "limit") == 0 && a->argc >= 3) {
		rc = cli_user_limit(a->argc, a->argv, c, d);
	} else if (strcmp(op, "show") == 0 && a->argc == 2) {
		rc = cli_user_show(c, d, a->argv[1]);
	} else if (strcmp(op, "admin") == 0 && a->argc == 3) {
		rc = cli_user_admin(d, a->argv[1], a->argv[2]);
	} else if (strcmp(op, "unblock") == 0 && a->argc == 2) {
		rc = cli_user_unblock(c, a->argv[1]);
	} else if (strcmp(op, "blocked") == 0 && a->argc == 1) {
		rc = cli_user_blocked(c);
	} else if (strcmp(op, "del") == 0 && a->argc == 2) {
		enum dir_result r = directory_user_del(d, a->argv[1]);
		rc = r == DIR_OK ? 0 : 1;
		if (r == DIR_OK)
			printf("user %s deleted (the mailbox files are kept)\n", a->argv[1]);
		else if (r == DIR_NOT_FOUND || r == DIR_INVALID)
			fprintf(stderr, "postern: no user %s\n", a->argv[1]);
		else
			fprintf(stderr, "postern: %s\n", directory_error(d));
	} else {
		rc = usage();
	}
	return rc;
}

/* Report a directory result for an admin command; returns the exit status. */
static int report(struct directory *d, enum dir_result r, const char *what, const char *done)
{
	switch (r) {
	case DIR_OK:
		printf("%s %s\n", what, done);
		return 0;
	case DIR_NOT_FOUND:
		fprintf(stderr, "postern: %s: not found\n", what);
		return 1;
	case DIR_EXISTS:
		fprintf(stderr, "postern: %s: %s\n", what, directory_error(d)[0] ? directory_error(d) : "already exists");
		return 1;
	case DIR_INVALID:
		fprintf(stderr, "postern: %s: %s\n", what, directory_error(d)[0] ? directory_error(d) : "invalid");
		return 1;
	case DIR_ERROR:
		break;
	}
	fprintf(stderr, "postern: %s\n", directory_error(d));
	return 1;
}

static void print_alias(void *arg, const char *alias, const char *target)
{
	(void)arg;
	printf("%s -> %s\n", alias, target);
}

static int alias_op(const struct cli_args *a, const struct conf *c, struct directory *d)
{
	(void)c;
	const char *op = a->argv[0];
	int rc;
	char what[700];
	if (strcmp(op, "list") == 0 && a->argc == 1) {
		rc = directory_alias_list(d, print_alias, NULL) == DIR_OK ? 0 : 1;
	} else if (strcmp(op, "add") == 0 && a->argc == 3) {
		snprintf(what, sizeof(what), "alias %s -> %s", a->argv[1], a->argv[2]);
		rc = report(d, directory_alias_add(d, a->argv[1], a->argv[2]), what, "added");
	} else if (strcmp(op, "del") == 0 && a->argc == 2) {
		snprintf(what, sizeof(what), "alias %s", a->argv[1]);
		rc = report(d, directory_alias_del(d, a->argv[1]), what, "deleted");
	} else {
		rc = usage();
	}
	return rc;
}

static int sender_op(const struct cli_args *a, const struct conf *c, struct directory *d)
{
	(void)c;
	const char *op = a->argv[0];
	int rc;
	char what[700];
	if (strcmp(op, "list") == 0 && a->argc == 2) {
		rc = directory_sender_list(d, a->argv[1], print_line, NULL) == DIR_OK ? 0 : 1;
	} else if ((strcmp(op, "allow") == 0 || strcmp(op, "deny") == 0) && a->argc == 3) {
		snprintf(what, sizeof(what), "%s may %ssend as %s", a->argv[1], op[0] == 'a' ? "" : "no longer ", a->argv[2]);
		rc = report(d, op[0] == 'a' ? directory_sender_allow(d, a->argv[1], a->argv[2])
			: directory_sender_deny(d, a->argv[1], a->argv[2]), what, "(saved)");
	} else {
		rc = usage();
	}
	return rc;
}

static void print_app_password(void *arg, const char *name, long long created, long long last_used, bool legacy)
{
	(void)arg;
	char c[32], u[32];
	time_t tc = (time_t)created, tu = (time_t)last_used;
	struct tm tm;
	strftime(c, sizeof(c), "%Y-%m-%d %H:%M", gmtime_r(&tc, &tm));
	if (last_used)
		strftime(u, sizeof(u), "%Y-%m-%d %H:%M", gmtime_r(&tu, &tm));
	else
		snprintf(u, sizeof(u), "never");
	printf("%-24s created %s UTC  last used %s%s%s\n", name, c, u, last_used ? " UTC" : "",
		legacy ? "  (old format: reissue it, see docs/operations.md)" : "");
}

/* A new app password whose selector no other app password of the user has. */
static enum dir_result new_app_password(struct directory *d, const char *user, const char *name, char *pw, size_t pwsz)
{
	bool no_password;
	enum dir_result r = credentials_app_password_new(d, user, name, pw, pwsz, &no_password);
	if (no_password)
		fprintf(stderr, "postern: cannot make a password\n");
	return r;
}

static int app_password_op(const struct cli_args *a, const struct conf *c, struct directory *d)
{
	(void)c;
	const char *op = a->argv[0], *user = a->argv[1];
	int rc;
	char what[700];
	if (strcmp(op, "list") == 0 && a->argc == 2) {
		rc = directory_app_password_list(d, user, print_app_password, NULL) == DIR_OK ? 0 : 1;
	} else if (strcmp(op, "add") == 0 && a->argc == 2 && a->name) {
		char pw[APP_PASSWORD_LEN + 1];
		enum dir_result r = new_app_password(d, user, a->name, pw, sizeof(pw));
		if (r == DIR_OK) {
			printf("app password \"%s\" for %s:\n\n    %s\n\n"
				"Type it into the device's mail settings as the password, with %s as the user name.\n"
				"It is shown only now; revoke it with: postern app-password revoke %s %s\n",
				a->name, user, pw, user, user, a->name);
			rc = 0;
		} else {
			snprintf(what, sizeof(what), "app password for %s", user);
			rc = report(d, r, what, "");
		}
		explicit_bzero(pw, sizeof(pw));
	} else if (strcmp(op, "revoke") == 0 && a->argc == 3) {
		snprintf(what, sizeof(what), "app password \"%s\" of %s", a->argv[2], user);
		rc = report(d, directory_app_password_revoke(d, user, a->argv[2]), what, "revoked");
	} else {
		rc = usage();
	}
	return rc;
}

static int cmd_queue(const struct cli_args *a)
{
	struct conf *c = malloc(sizeof(*c));
	/* --cluster: the shared secret is read as whoever runs the command (root's file) */
	bool cluster = a->argc == 2 && strcmp(a->argv[0], "list") == 0 && strcmp(a->argv[1], "--cluster") == 0;
	int rc = !c || !load_conf(a, c, true) ? 1 : cluster ? cli_queue_cluster(c)
		: (become_data_owner(c), cli_queue(a->argc, a->argv, c, a->json, a->sender, a->bounce));
	free(c);
	return rc;
}

static int cmd_cluster(const struct cli_args *a)
{
	struct conf *c = malloc(sizeof(*c));
	int rc = c && load_conf(a, c, true) ? cli_cluster(a->argc, a->argv, c) : 1;
	free(c);
	return rc == 2 ? usage() : rc;
}

static int cmd_events(const struct cli_args *a)
{
	struct conf *c = malloc(sizeof(*c));
	int rc = c && load_conf(a, c, true) ? (become_data_owner(c), cli_events(a->argc, a->argv, c, a->sender, a->json)) : 1;
	free(c);
	return rc;
}

static int cmd_spf(const struct cli_args *a)
{
	struct conf *c = malloc(sizeof(*c));
	int rc = c && load_conf(a, c, true) ? cli_spf(a->argc, a->argv, c) : 1;
	free(c);
	return rc;
}

static int dkim_op(const struct cli_args *a, const struct conf *c, struct directory *d)
{
	return cli_dkim(a->argc, a->argv, c, d);
}

static int directory_op(const struct cli_args *a, const struct conf *c, struct directory *d)
{
	return cli_directory(a->argc, a->argv, c, d);
}

static int dns_op(const struct cli_args *a, const struct conf *c, struct directory *d)
{
	return cli_dns(a->argc, a->argv, c, d, a->json);
}

static int import_op(const struct cli_args *a, const struct conf *c, struct directory *d)
{
	return cli_import(a->argc, a->argv, c, d);
}

static int cmd_explain(const struct cli_args *a)
{
	(void)a;
	return -2;   /* handled before option parsing: see cli_main */
}

static int cmd_version(const struct cli_args *a)
{
	(void)a;
	printf("postern %s\n", POSTERN_VERSION);
	return 0;
}

/* A command runs by itself (run), or with the configuration and the directory opened
 * for it (dir_run, given at least min_args arguments: run_with_directory). */
struct subcommand {
	const char *name;
	int (*run)(const struct cli_args *);
	const char *usage;
	dir_command dir_run;
	int min_args;
};

static const struct subcommand subcommands[] = {
	{ "serve", cmd_serve, "serve [-c FILE | --default-config]  run the server in the foreground", NULL, 0 },
	{ "check-config", cmd_check_config, "check-config [-c FILE] [--no-bind]  validate the configuration: every error in the file, then what serve would refuse (exit 1), else exit 0; --no-bind: do not try the ports (socket activation holds them)", NULL, 0 },
	{ "config", cmd_config, "config show [--all] [-c FILE] | man 5|8  the settings that differ from the defaults (--all: every setting) as INI; the manual pages postern.conf(5), postern(8) in roff", NULL, 0 },
	{ "domain", NULL, "domain add|del DOMAIN [-c FILE] | list  manage local domains", domain_op, 1 },
	{ "user", NULL, "user add|del ADDRESS | show ADDRESS | home ADDRESS NODE|none | quota ADDRESS SIZE|none | limit ADDRESS [--messages-per-hour N] [--recipients-per-day N] [--clear] | admin ADDRESS yes|no | unblock ADDRESS|IP | blocked | list   manage mailboxes (add reads the password from stdin; limit: the account's own sending limits, 0 none; admin: may use the web site's /admin/ pages; unblock: lift the login throttle's blocks, on every node of a cluster; blocked: list those running on this node; home: the cluster node that keeps the mailbox; add records this node, or add --home NODE)", user_op, 1 },
	{ "directory", NULL, "directory migrate | status | export FILE | import FILE   the directory's backend: create or update the PostgreSQL schema; does it answer; move every record to another backend", directory_op, 1 },
	{ "alias", NULL, "alias add ALIAS USER | del ALIAS | list  mail to ALIAS goes to USER, who may send as it", alias_op, 1 },
	{ "sender", NULL, "sender allow|deny USER ADDRESS | list USER  let USER send as ADDRESS (or @domain)", sender_op, 2 },
	{ "app-password", NULL, "app-password add USER --name NAME | list USER | revoke USER NAME", app_password_op, 2 },
	{ "queue", cmd_queue, "queue list [--json] [--sender ADDRESS] [--failed | --held] | list --cluster | show ID | flush | retry|hold|release ID | delete ID [--bounce] | requeue ID", NULL, 0 },
	{ "cluster", cmd_cluster, "cluster status [-c FILE]  every node of the cluster, asked over its control listener: up or down and since when, its queue, the oldest message (exit 1 when one is down)", NULL, 0 },
	{ "events", cmd_events, "events list --account ADDRESS [--sender ADDRESS] [--qid ID] [--limit N] [--json]  what became of an account's mail: refusals, queued, delivered, deferred, bounced (newest first)", NULL, 0 },
	{ "dkim", NULL, "dkim keygen DOMAIN [--selector S] [--type rsa|ed25519] [--force] | list [DOMAIN] | retire DOMAIN SELECTOR | verify FILE | sign FILE   DKIM keys and signatures", dkim_op, 1 },
	{ "dns", NULL, "dns DOMAIN [--address ADDR] | check DOMAIN [--resolver ADDR@PORT] [--address ADDR] [--json]  the DNS records DOMAIN needs, and whether they are published", dns_op, 1 },
	{ "import", NULL, "import dovecot-passwd FILE | postfix-virtual FILE  users with their password hashes, and aliases, from Dovecot and Postfix (docs/migrating.md)", import_op, 2 },
	{ "explain", cmd_explain, "explain \"REPLY TEXT\" [--json] | --ref REF --log FILE   what a server reply means, how to fix it", NULL, 0 },
	{ "doctor", cmd_explain, "doctor --server HOST [--user ADDRESS --password-stdin] [--send] [--pop3] [--json]   test a client's settings", NULL, 0 },
	{ "spf", cmd_spf, "spf check IP SENDER [HELO] [-c FILE]   the SPF result (RFC 7208) for mail from SENDER sent by IP, and why", NULL, 0 },
	{ "version", cmd_version, "version                          print the version", NULL, 0 },
};

#define N_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

size_t cli_subcommand_count(void)
{
	return N_SUBCOMMANDS;
}

const char *cli_subcommand_usage(size_t i)
{
	return i < N_SUBCOMMANDS ? subcommands[i].usage : "";
}

static void print_usage(FILE *out)
{
	fprintf(out, "usage: postern COMMAND [ARGS]   (postern COMMAND --help: that command alone)\n");
	for (size_t i = 0; i < N_SUBCOMMANDS; i++)
		fprintf(out, "  postern %s\n", subcommands[i].usage);
}

/* A usage error: the whole usage on stderr, exit status 2. */
static int usage(void)
{
	print_usage(stderr);
	return 2;
}

static const struct subcommand *find_subcommand(const char *name)
{
	for (size_t i = 0; i < N_SUBCOMMANDS; i++)
		if (strcmp(name, subcommands[i].name) == 0)
			return &subcommands[i];
	return NULL;
}

/* Does VERB name one of the '|'-separated words that start ALT ("retry|hold|release ID")? */
static bool alternative_has_verb(const char *alt, size_t len, const char *verb)
{
	size_t vlen = strlen(verb), i = 0;
	while (i < len && alt[i] != ' ') {
		size_t w = i;
		while (i < len && alt[i] != ' ' && alt[i] != '|')
			i++;
		if (i - w == vlen && strncmp(alt + w, verb, vlen) == 0)
			return true;
		if (i < len && alt[i] == '|')
			i++;
	}
	return false;
}

/* `postern COMMAND [VERB] --help`: the command's row of the table, on stdout, exit 0. A row
 * reads "NAME ALT | ALT ...  description"; with a VERB, only the alternative it starts is
 * shown, and a VERB that starts none is a usage error (stderr, exit 2). */
static int command_help(const struct subcommand *s, const char *verb)
{
	const char *u = s->usage, *desc = strstr(u, "  ");
	size_t syntax_len = desc ? (size_t)(desc - u) : strlen(u);
	if (desc)
		desc += strspn(desc, " ");
	size_t name_len = strlen(s->name);
	const char *alt = u + name_len + (u[name_len] == ' ');
	const char *end = u + syntax_len;
	while (verb && alt < end) {
		const char *bar = strstr(alt, " | ");
		size_t len = bar && bar < end ? (size_t)(bar - alt) : (size_t)(end - alt);
		if (alternative_has_verb(alt, len, verb)) {
			printf("usage: postern %s %.*s\n", s->name, (int)len, alt);
			if (desc && *desc)
				printf("  %s\n", desc);
			printf("  (every form: postern %s --help)\n", s->name);
			return 0;
		}
		alt += len + 3;
	}
	/* `postern user frobnicate --help` is still a usage error */
	FILE *out = verb ? stderr : stdout;
	if (verb)
		fprintf(stderr, "postern: %s has no \"%s\"\n", s->name, verb);
	fprintf(out, "usage: postern %.*s\n", (int)syntax_len, u);
	if (desc && *desc)
		fprintf(out, "  %s\n", desc);
	return verb ? 2 : 0;
}

/* -h or --help after COMMAND (explain and doctor parse their own options, so look before). */
static bool asks_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return true;
	return false;
}

/* `postern`, `postern --help | -h | help [COMMAND]`. */
static int top_level_help(int argc, char **argv)
{
	if (argc >= 2) {
		const struct subcommand *s = find_subcommand(argv[1]);
		if (s)
			return command_help(s, argc >= 3 ? argv[2] : NULL);
		fprintf(stderr, "postern: unknown command \"%s\"\n", argv[1]);
		return usage();
	}
	print_usage(stdout);
	return 0;
}

int cli_main(int argc, char **argv)
{
	if (argc < 1)
		return usage();
	if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "help") == 0)
		return top_level_help(argc, argv);
	const struct subcommand *sub = find_subcommand(argv[0]);
	if (!sub) {
		fprintf(stderr, "postern: unknown command \"%s\"\n", argv[0]);
		return usage();
	}
	/* The diagnostics parse their own options. */
	if (sub->run == cmd_explain) {
		if (asks_help(argc, argv))
			return command_help(sub, NULL);
		return strcmp(argv[0], "explain") == 0 ? diag_explain_main(argc, argv) : diag_doctor_main(argc, argv);
	}
	struct cli_args a = { 0 };
	char **pos = calloc((size_t)argc + 1, sizeof(char *));
	if (!pos)
		return 1;
	bool help = false;
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			a.conf_path = argv[++i];
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			a.name = argv[++i];
		else if (strcmp(argv[i], "--sender") == 0 && i + 1 < argc)
			a.sender = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			a.json = true;
		else if (strcmp(argv[i], "--bounce") == 0)
			a.bounce = true;
		else if (strcmp(argv[i], "--all") == 0)
			a.all = true;
		else if (strcmp(argv[i], "--no-bind") == 0)
			a.no_bind = true;
		else if (strcmp(argv[i], "--home") == 0 && i + 1 < argc)
			a.home = argv[++i];
		else if (strcmp(argv[i], "--default-config") == 0)
			a.embedded = true;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			help = true;
		else
			pos[a.argc++] = argv[i];
	}
	a.argv = pos;
	int rc = help ? command_help(sub, a.argc ? a.argv[0] : NULL)
		: sub->dir_run ? run_with_directory(&a, sub->min_args, sub->dir_run) : sub->run(&a);
	free(pos);
	return rc;
}
