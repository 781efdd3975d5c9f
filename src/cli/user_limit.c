/* user_limit.c - `postern user limit ADDRESS [--messages-per-hour N]
 * [--recipients-per-day N] [--clear]` (one account's own outbound limits, kept in the
 * directory; 0 = no limit, --clear = back to [limits]), `postern user admin ADDRESS
 * yes|no` (may the account use the web site's /admin/ pages), `postern user unblock
 * ADDRESS|IP` (lift the login throttle's blocks, through the running server's control
 * socket) and `postern user show ADDRESS`; the words `user list` prints for an
 * account's limits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "directory/directory.h"
#include "serve/control.h"
#include "util/parse.h"

/* "300 (default)", "1000 (own)", "none (own)", "none (default)" */
static void one_limit(int64_t own, uint64_t def, char *out, size_t outsz)
{
	if (own >= 0) {
		if (own == 0)
			snprintf(out, outsz, "none (own)");
		else
			snprintf(out, outsz, "%lld (own)", (long long)own);
	} else if (def) {
		snprintf(out, outsz, "%llu (default)", (unsigned long long)def);
	} else {
		snprintf(out, outsz, "none (default)");
	}
}

void cli_user_limits_words(const struct conf *c, const struct dir_user *u, char *out, size_t outsz)
{
	char m[48], r[48];
	one_limit(u->limit_messages_per_hour, c->limits_messages_per_hour, m, sizeof(m));
	one_limit(u->limit_recipients_per_day, c->limits_recipients_per_day, r, sizeof(r));
	snprintf(out, outsz, "messages/hour %s, recipients/day %s", m, r);
}

static bool lookup(struct directory *d, const char *address, struct dir_user *u)
{
	const char *at = strrchr(address, '@');
	char local[DIR_ADDRESS_MAX];
	if (!at || (size_t)(at - address) >= sizeof(local))
		return false;
	snprintf(local, sizeof(local), "%.*s", (int)(at - address), address);
	enum dir_result r = directory_user_lookup(d, local, at + 1, u);
	if (r == DIR_ERROR)
		fprintf(stderr, "postern: %s\n", directory_error(d));
	return r == DIR_OK;
}

int cli_user_show(const struct conf *c, struct directory *d, const char *address)
{
	struct dir_user u;
	if (!lookup(d, address, &u)) {
		fprintf(stderr, "postern: no user %s\n", address);
		return 1;
	}
	char limits[160];
	cli_user_limits_words(c, &u, limits, sizeof(limits));
	printf("user %s\n", u.address);
	if (u.quota)
		printf("quota: %llu bytes\n", (unsigned long long)u.quota);
	else
		printf("quota: none\n");
	printf("sending limits: %s\n", limits);
	printf("admin: %s\n", u.admin ? "yes (may use the /admin/ pages of the web site)" : "no");
	if (u.home_node[0])
		printf("home node: %s\n", u.home_node);
	return 0;
}

/* postern user admin ADDRESS yes|no */
int cli_user_admin(struct directory *d, const char *address, const char *yes_no)
{
	bool admin;
	if (strcmp(yes_no, "yes") == 0)
		admin = true;
	else if (strcmp(yes_no, "no") == 0)
		admin = false;
	else {
		fprintf(stderr, "postern: user admin: say yes or no (postern user admin ADDRESS yes|no)\n");
		return 2;
	}
	struct dir_user u;
	if (!lookup(d, address, &u)) {
		fprintf(stderr, "postern: no user %s\n", address);
		return 1;
	}
	if (directory_user_admin_set(d, u.address, admin) != DIR_OK) {
		fprintf(stderr, "postern: %s\n", directory_error(d));
		return 1;
	}
	if (admin)
		printf("%s is an administrator: after signing in to the web site (again) they see the queue, refusals and "
			"throttled logins under /admin/\n", u.address);
	else
		printf("%s is no longer an administrator (pages already open are refused from their next request)\n",
			u.address);
	return 0;
}

static bool count_arg(const char *s, int64_t *out)
{
	uint64_t v;
	if (!s || !parse_u64(s, strlen(s), &v) || v > 1000000000ull)
		return false;
	*out = (int64_t)v;
	return true;
}

/* argv: "limit", ADDRESS, then the options (the CLI passes them as words). */
int cli_user_limit(int argc, char **argv, const struct conf *c, struct directory *d)
{
	if (argc < 3) {
		fprintf(stderr, "usage: postern user limit ADDRESS [--messages-per-hour N] [--recipients-per-day N] [--clear]\n");
		return 2;
	}
	const char *address = argv[1];
	struct dir_user u;
	if (!lookup(d, address, &u)) {
		fprintf(stderr, "postern: no user %s\n", address);
		return 1;
	}
	int64_t mph = u.limit_messages_per_hour, rpd = u.limit_recipients_per_day;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--clear") == 0) {
			mph = rpd = -1;
		} else if (strcmp(argv[i], "--messages-per-hour") == 0 && i + 1 < argc) {
			if (!count_arg(argv[++i], &mph))
				goto bad_number;
		} else if (strcmp(argv[i], "--recipients-per-day") == 0 && i + 1 < argc) {
			if (!count_arg(argv[++i], &rpd))
				goto bad_number;
		} else {
			fprintf(stderr, "postern: user limit: unknown option \"%s\" (--messages-per-hour N, --recipients-per-day N, "
				"--clear)\n", argv[i]);
			return 2;
		}
	}
	if (directory_user_limits_set(d, u.address, mph, rpd) != DIR_OK) {
		fprintf(stderr, "postern: %s\n", directory_error(d));
		return 1;
	}
	u.limit_messages_per_hour = mph;
	u.limit_recipients_per_day = rpd;
	char limits[160];
	cli_user_limits_words(c, &u, limits, sizeof(limits));
	printf("%s: sending limits %s\n(a running server applies them from the next MAIL FROM)\n", u.address, limits);
	return 0;
bad_number:
	fprintf(stderr, "postern: user limit: a limit is a whole number of messages or recipients (0: no limit)\n");
	return 2;
}

/* postern user unblock ADDRESS|IP: the throttle lives in the running server. */
int cli_user_unblock(const struct conf *c, const char *key)
{
	if (!key[0] || strlen(key) > 200 || strpbrk(key, " \t\r\n")) {
		fprintf(stderr, "postern: user unblock: give one address (user@domain as the device typed it) or one IP\n");
		return 2;
	}
	char cmd[256], reply[600];
	snprintf(cmd, sizeof(cmd), "unblock %s", key);
	int rc = control_send(c->data_dir, cmd, reply, sizeof(reply));
	if (rc < 0) {
		fprintf(stderr, "postern: %s; blocks of the login throttle live in the running server and end with it\n", reply);
		return 1;
	}
	fprintf(rc ? stderr : stdout, "%s%s\n", rc ? "postern: " : "", reply);
	return rc;
}

/* The home node a new user gets: --home NODE, else this node ([cluster] node), else
 * none (a single server). */
int cli_user_add_home(const struct conf *c, struct directory *d, const char *address, const char *home)
{
	const char *node = home ? home : c->cluster_node;
	if (!node[0])
		return 0;
	if (directory_user_home_set(d, address, node) != DIR_OK) {
		fprintf(stderr, "postern: %s was added, but its home node was not recorded: %s (run postern user home %s "
			"NODE)\n", address, directory_error(d), address);
		return 1;
	}
	printf("home node of %s: %s\n", address, node);
	return 0;
}

/* `postern user home ADDRESS NODE`: where the account's mailbox lives from now on. */
int cli_user_home(struct directory *d, const char *address, const char *node)
{
	enum dir_result r = directory_user_home_set(d, address, strcmp(node, "none") == 0 ? "" : node);
	if (r == DIR_OK) {
		printf("home node of %s: %s (the mailbox is not moved: copy its Maildir to that node yourself)\n", address,
			node);
		return 0;
	}
	fprintf(stderr, "postern: %s: %s\n", address, directory_error(d));
	return 1;
}

/* postern user blocked: the blocks running in the server (on this node). */
int cli_user_blocked(const struct conf *c)
{
	char reply[16384];
	int rc = control_send(c->data_dir, "blocked", reply, sizeof(reply));
	if (rc < 0) {
		fprintf(stderr, "postern: %s; blocks of the login throttle live in the running server and end with it\n", reply);
		return 1;
	}
	fprintf(rc ? stderr : stdout, "%s%s\n", rc ? "postern: " : "", reply);
	return rc;
}
