/* directory.c - the front of the directory (see directory.h): validates and
 * normalises addresses, keeps the last error, and hands the rest to the backend
 * (backend.h; SQLite today). */
#include "directory/directory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "directory/backend.h"
#include "directory/postgres_int.h"
#include "util/parse.h"

struct directory {
	const struct directory_backend_ops *ops;
	struct dir_backend *b;
};

/* Like errno: the reason of this thread's last failed call, so that a handle shared
 * by worker threads never mixes their messages. */
static _Thread_local char last_error[DIR_ERROR_MAX];

#define OPS(d) ((d)->ops)
#define ERR last_error

bool directory_data_dir_exposed(const char *data_dir, char *warn, size_t warnsz)
{
	struct stat st;
	if (stat(data_dir, &st) != 0 || (st.st_mode & 007) == 0)
		return false;
	snprintf(warn, warnsz, "the data directory %s has mode %04o: other users can %s it; it holds the password "
		"hashes, the queue and the mailboxes; run: chmod o-rwx %s", data_dir, (unsigned)(st.st_mode & 07777),
		(st.st_mode & 004) ? "list" : "enter", data_dir);
	return true;
}

static struct directory_config process_config = { .backend = DIRECTORY_SQLITE, .pool = 1, .timeout_ms = 5000 };

void directory_configure(const struct directory_config *c)
{
	process_config = *c;
	if (process_config.pool < 1)
		process_config.pool = 1;
	if (process_config.timeout_ms < 100)
		process_config.timeout_ms = 100;
}

long long directory_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static _Thread_local long long thread_deadline_ms;

long long directory_request_deadline(void)
{
	return process_config.backend == DIRECTORY_POSTGRESQL ? directory_clock_ms() + process_config.timeout_ms : 0;
}

void directory_thread_deadline(long long deadline_ms)
{
	thread_deadline_ms = deadline_ms;
}

long long directory_thread_deadline_get(void)
{
	return thread_deadline_ms;
}

const char *directory_backend_name(void)
{
	return process_config.backend == DIRECTORY_POSTGRESQL ? "postgresql" : "sqlite";
}

bool directory_migrate(struct directory *d, int *from, int *to, char *err, size_t errlen)
{
	*from = *to = 0;
	return !d->ops->migrate || d->ops->migrate(d->b, from, to, err, errlen);
}

bool directory_open(struct directory **dp, const char *data_dir, char *err, size_t errlen)
{
	if (mkdir(data_dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", data_dir, strerror(errno));
		return false;
	}
	struct directory *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	d->ops = process_config.backend == DIRECTORY_POSTGRESQL ? &directory_postgres_backend : &directory_sqlite_backend;
	if (!d->ops->open(&d->b, data_dir, &process_config, err, errlen)) {
		free(d);
		return false;
	}
	*dp = d;
	return true;
}

void directory_close(struct directory **dp)
{
	struct directory *d = *dp;
	if (!d)
		return;
	d->ops->close(&d->b);
	free(d);
	*dp = NULL;
}

const char *directory_error(const struct directory *d)
{
	(void)d;
	return last_error;
}

bool directory_local_part_valid(const char *local)
{
	size_t n = strlen(local);
	if (n == 0 || n > 64 || local[0] == '.' || local[0] == '-' || local[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = local[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '.' || c == '_' || c == '+' || c == '-'))
			return false;
		if (c == '.' && local[i + 1] == '.')
			return false;
	}
	return true;
}

bool directory_domain_valid(char *domain)
{
	size_t n = strlen(domain);
	if (n == 0 || n > 253)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		char c = domain[i];
		if (c == '.') {
			if (label == 0 || domain[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
		if ((c == '-' && label == 0) || ++label > 63)
			return false;
	}
	if (label == 0 || domain[n - 1] == '-')
		return false;
	ascii_lower(domain);
	return true;
}

/* in, lower-cased into out; false when it does not fit (then it names nobody: every
 * stored address is shorter). */
static bool lowered(const char *in, char *out, size_t outsz)
{
	if (snprintf(out, outsz, "%s", in) >= (int)outsz)
		return false;
	ascii_lower(out);
	return true;
}

/* Split and normalise "local@domain". */
static bool split_address(const char *address, char *local, size_t lsz, char *domain, size_t dsz)
{
	const char *at = strrchr(address, '@');
	if (!at || at == address)
		return false;
	size_t ln = (size_t)(at - address);
	if (ln >= lsz || snprintf(domain, dsz, "%s", at + 1) >= (int)dsz)
		return false;
	memcpy(local, address, ln);
	local[ln] = '\0';
	ascii_lower(local);
	return directory_local_part_valid(local) && directory_domain_valid(domain);
}

/* "local@domain" normalised to lower case, or false. */
static bool normalise(const char *address, char *out, size_t outsz, char *local, size_t lsz, char *domain, size_t dsz)
{
	if (!split_address(address, local, lsz, domain, dsz))
		return false;
	return snprintf(out, outsz, "%s@%s", local, domain) < (int)outsz;
}

/* --- domains ------------------------------------------------------------------ */

enum dir_result directory_domain_add(struct directory *d, const char *domain)
{
	char dom[256];
	if (snprintf(dom, sizeof(dom), "%s", domain) >= (int)sizeof(dom) || !directory_domain_valid(dom))
		return DIR_INVALID;
	return OPS(d)->domain_add(d->b, dom, ERR);
}

enum dir_result directory_domain_del(struct directory *d, const char *domain)
{
	char dom[256];
	if (snprintf(dom, sizeof(dom), "%s", domain) >= (int)sizeof(dom) || !directory_domain_valid(dom))
		return DIR_INVALID;
	return OPS(d)->domain_del(d->b, dom, ERR);
}

enum dir_result directory_domain_exists(struct directory *d, const char *domain)
{
	char dom[DIR_ADDRESS_MAX];
	if (!lowered(domain, dom, sizeof(dom)))
		return DIR_NOT_FOUND;
	return OPS(d)->domain_lookup(d->b, dom, ERR);
}

enum dir_result directory_domain_list(struct directory *d, void (*cb)(void *, const char *), void *arg)
{
	return OPS(d)->domain_list(d->b, cb, arg, ERR);
}

/* --- users -------------------------------------------------------------------- */

enum dir_result directory_user_add(struct directory *d, const char *address, const char *hash)
{
	char local[DIR_ADDRESS_MAX], domain[DIR_ADDRESS_MAX], addr[DIR_ADDRESS_MAX * 2];
	if (!split_address(address, local, sizeof(local), domain, sizeof(domain))) {
		snprintf(ERR, DIR_ERROR_MAX, "not a valid address for a mailbox (letters, digits, . _ + - before the @)");
		return DIR_INVALID;
	}
	snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	return OPS(d)->user_add(d->b, addr, local, domain, hash, ERR);
}

enum dir_result directory_user_del(struct directory *d, const char *address)
{
	char local[DIR_ADDRESS_MAX], domain[DIR_ADDRESS_MAX], addr[DIR_ADDRESS_MAX * 2];
	if (!normalise(address, addr, sizeof(addr), local, sizeof(local), domain, sizeof(domain)))
		return DIR_INVALID;
	return OPS(d)->user_del(d->b, addr, ERR);
}

enum dir_result directory_user_lookup(struct directory *d, const char *local, const char *domain,
	struct dir_user *out)
{
	char l[DIR_ADDRESS_MAX], dm[DIR_ADDRESS_MAX];
	if (!lowered(local, l, sizeof(l)) || !lowered(domain, dm, sizeof(dm)))
		return DIR_NOT_FOUND;
	return OPS(d)->user_lookup(d->b, l, dm, out, ERR);
}

enum dir_result directory_user_list(struct directory *d, void (*cb)(void *, const struct dir_user *), void *arg)
{
	return OPS(d)->user_list(d->b, cb, arg, ERR);
}

/* The stored form of an existing user's address, or an error. */
static enum dir_result existing_user(struct directory *d, const char *user, char *out, size_t outsz)
{
	char l[DIR_ADDRESS_MAX], dm[DIR_ADDRESS_MAX];
	if (!normalise(user, out, outsz, l, sizeof(l), dm, sizeof(dm))) {
		snprintf(ERR, DIR_ERROR_MAX, "not a valid address");
		return DIR_INVALID;
	}
	enum dir_result r = OPS(d)->user_lookup(d->b, l, dm, NULL, ERR);
	if (r == DIR_NOT_FOUND)
		snprintf(ERR, DIR_ERROR_MAX, "no user %s", out);
	return r;
}

enum dir_result directory_user_quota_set(struct directory *d, const char *address, uint64_t bytes)
{
	char u[DIR_ADDRESS_MAX * 2];
	enum dir_result r = existing_user(d, address, u, sizeof(u));
	return r == DIR_OK ? OPS(d)->user_quota_set(d->b, u, bytes, ERR) : r;
}

enum dir_result directory_user_limits_set(struct directory *d, const char *address, int64_t messages_per_hour,
	int64_t recipients_per_day)
{
	char u[DIR_ADDRESS_MAX * 2];
	if (messages_per_hour < -1 || recipients_per_day < -1) {
		snprintf(ERR, DIR_ERROR_MAX, "a limit is a count (0: none)");
		return DIR_INVALID;
	}
	enum dir_result r = existing_user(d, address, u, sizeof(u));
	return r == DIR_OK ? OPS(d)->user_limits_set(d->b, u, messages_per_hour, recipients_per_day, ERR) : r;
}

enum dir_result directory_user_admin_set(struct directory *d, const char *address, bool admin)
{
	char u[DIR_ADDRESS_MAX * 2];
	enum dir_result r = existing_user(d, address, u, sizeof(u));
	return r == DIR_OK ? OPS(d)->user_admin_set(d->b, u, admin, ERR) : r;
}

enum dir_result directory_user_home_set(struct directory *d, const char *address, const char *node)
{
	char u[DIR_ADDRESS_MAX * 2];
	size_t n = strlen(node);
	bool ok = n < DIR_NODE_NAME_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = (node[i] >= 'a' && node[i] <= 'z') || (node[i] >= '0' && node[i] <= '9') || node[i] == '-';
	if (!ok) {
		snprintf(ERR, DIR_ERROR_MAX, "\"%s\" is not a node name: lower-case letters, digits and '-', at most 32", node);
		return DIR_INVALID;
	}
	enum dir_result r = existing_user(d, address, u, sizeof(u));
	return r == DIR_OK ? OPS(d)->user_home_set(d->b, u, node, ERR) : r;
}

/* --- the node registry --------------------------------------------------------- */

static enum dir_result no_registry(char *err)
{
	snprintf(err, DIR_ERROR_MAX, "the node registry exists only with the postgresql directory backend "
		"([directory] backend = postgresql)");
	return DIR_ERROR;
}

enum dir_result directory_node_heartbeat(struct directory *d, const struct dir_node *self, char *err)
{
	return OPS(d)->node_heartbeat ? OPS(d)->node_heartbeat(d->b, self, err) : no_registry(err);
}

enum dir_result directory_node_get(struct directory *d, const char *name, struct dir_node *out, char *err)
{
	return OPS(d)->node_get ? OPS(d)->node_get(d->b, name, out, err) : no_registry(err);
}

enum dir_result directory_node_list(struct directory *d, void (*cb)(void *, const struct dir_node *), void *arg,
	char *err)
{
	return OPS(d)->node_list ? OPS(d)->node_list(d->b, cb, arg, err) : no_registry(err);
}

/* --- aliases ------------------------------------------------------------------ */

enum dir_result directory_alias_add(struct directory *d, const char *alias, const char *target)
{
	char a[DIR_ADDRESS_MAX * 2], al[DIR_ADDRESS_MAX], ad[DIR_ADDRESS_MAX];
	char t[DIR_ADDRESS_MAX * 2], tl[DIR_ADDRESS_MAX], td[DIR_ADDRESS_MAX];
	if (!normalise(alias, a, sizeof(a), al, sizeof(al), ad, sizeof(ad)) ||
		!normalise(target, t, sizeof(t), tl, sizeof(tl), td, sizeof(td))) {
		snprintf(ERR, DIR_ERROR_MAX, "not a valid address");
		return DIR_INVALID;
	}
	enum dir_result r = OPS(d)->user_lookup(d->b, tl, td, NULL, ERR);
	if (r != DIR_OK) {
		snprintf(ERR, DIR_ERROR_MAX, "the target %.200s is not a user here", t);
		return r == DIR_ERROR ? DIR_ERROR : DIR_INVALID;
	}
	if (OPS(d)->user_lookup(d->b, al, ad, NULL, ERR) == DIR_OK) {
		snprintf(ERR, DIR_ERROR_MAX, "%.200s is a user; an alias cannot have the same address", a);
		return DIR_EXISTS;
	}
	r = OPS(d)->alias_add(d->b, a, al, ad, t, ERR);
	if (r == DIR_EXISTS)
		snprintf(ERR, DIR_ERROR_MAX, "the alias %.200s already exists", a);
	return r;
}

enum dir_result directory_alias_del(struct directory *d, const char *alias)
{
	char a[DIR_ADDRESS_MAX * 2], al[DIR_ADDRESS_MAX], ad[DIR_ADDRESS_MAX];
	if (!normalise(alias, a, sizeof(a), al, sizeof(al), ad, sizeof(ad)))
		return DIR_INVALID;
	return OPS(d)->alias_del(d->b, a, ERR);
}

enum dir_result directory_alias_lookup(struct directory *d, const char *local, const char *domain,
	char *target, size_t targetsz)
{
	char l[DIR_ADDRESS_MAX], dm[DIR_ADDRESS_MAX];
	if (!lowered(local, l, sizeof(l)) || !lowered(domain, dm, sizeof(dm)))
		return DIR_NOT_FOUND;
	return OPS(d)->alias_lookup(d->b, l, dm, target, targetsz, ERR);
}

enum dir_result directory_alias_list(struct directory *d, void (*cb)(void *, const char *, const char *), void *arg)
{
	return OPS(d)->alias_list(d->b, cb, arg, ERR);
}

/* --- sender grants ------------------------------------------------------------ */

enum dir_result directory_sender_allow(struct directory *d, const char *user, const char *address)
{
	char u[DIR_ADDRESS_MAX * 2], a[DIR_ADDRESS_MAX * 2], l[DIR_ADDRESS_MAX], dm[DIR_ADDRESS_MAX];
	enum dir_result r = existing_user(d, user, u, sizeof(u));
	if (r != DIR_OK)
		return r;
	/* A grant may name a whole domain as "@domain". */
	if (address[0] == '@') {
		snprintf(dm, sizeof(dm), "%s", address + 1);
		if (!directory_domain_valid(dm))
			return DIR_INVALID;
		snprintf(a, sizeof(a), "@%s", dm);
	} else if (!normalise(address, a, sizeof(a), l, sizeof(l), dm, sizeof(dm))) {
		snprintf(ERR, DIR_ERROR_MAX, "not a valid address");
		return DIR_INVALID;
	}
	return OPS(d)->sender_allow(d->b, u, a, ERR);
}

enum dir_result directory_sender_deny(struct directory *d, const char *user, const char *address)
{
	char u[DIR_ADDRESS_MAX * 2], a[DIR_ADDRESS_MAX * 2];
	if (!lowered(user, u, sizeof(u)) || !lowered(address, a, sizeof(a)))
		return DIR_NOT_FOUND;
	return OPS(d)->sender_deny(d->b, u, a, ERR);
}

enum dir_result directory_sender_list(struct directory *d, const char *user, void (*cb)(void *, const char *), void *arg)
{
	char u[DIR_ADDRESS_MAX * 2];
	if (!lowered(user, u, sizeof(u)))
		return DIR_OK;   /* nobody has grants */
	return OPS(d)->sender_list(d->b, u, cb, arg, ERR);
}

enum dir_result directory_sender_owned(struct directory *d, const char *user, const char *address)
{
	char u[DIR_ADDRESS_MAX * 2], a[DIR_ADDRESS_MAX * 2];
	if (!lowered(user, u, sizeof(u)) || !lowered(address, a, sizeof(a)))
		return DIR_NOT_FOUND;
	if (strcmp(u, a) == 0)
		return DIR_OK;
	const char *at = strrchr(a, '@');
	char dom[DIR_ADDRESS_MAX * 2 + 1];
	snprintf(dom, sizeof(dom), "%s", at ? at : "@");
	return OPS(d)->sender_owned(d->b, u, a, dom, ERR);
}

/* --- app passwords and login hashes ------------------------------------------- */

enum dir_result directory_app_password_add(struct directory *d, const char *user, const char *name,
	const char *selector, const char *hash)
{
	char u[DIR_ADDRESS_MAX * 2];
	enum dir_result r = existing_user(d, user, u, sizeof(u));
	if (r != DIR_OK)
		return r;
	size_t n = strlen(name);
	if (n == 0 || n > 64) {
		snprintf(ERR, DIR_ERROR_MAX, "the name must be 1 to 64 characters");
		return DIR_INVALID;
	}
	r = OPS(d)->app_password_add(d->b, u, name, selector, hash, ERR);
	if (r != DIR_EXISTS)
		return r;
	if (selector && OPS(d)->app_password_selector_free(d->b, u, selector, ERR) != DIR_OK)
		snprintf(ERR, DIR_ERROR_MAX, "another app password of %.120s has the selector %.16s", u, selector);
	else
		snprintf(ERR, DIR_ERROR_MAX, "%.120s already has an app password named \"%.64s\"", u, name);
	return DIR_EXISTS;
}

enum dir_result directory_app_password_revoke(struct directory *d, const char *user, const char *name)
{
	char u[DIR_ADDRESS_MAX * 2];
	if (!lowered(user, u, sizeof(u)))
		return DIR_NOT_FOUND;
	return OPS(d)->app_password_revoke(d->b, u, name, ERR);
}

enum dir_result directory_app_password_selector_free(struct directory *d, const char *user, const char *selector)
{
	char u[DIR_ADDRESS_MAX * 2];
	if (!lowered(user, u, sizeof(u)))
		return DIR_OK;
	return OPS(d)->app_password_selector_free(d->b, u, selector, ERR);
}

enum dir_result directory_app_password_list(struct directory *d, const char *user,
	void (*cb)(void *, const char *, long long, long long, bool), void *arg)
{
	char u[DIR_ADDRESS_MAX * 2];
	if (!lowered(user, u, sizeof(u)))
		return DIR_OK;
	return OPS(d)->app_password_list(d->b, u, cb, arg, ERR);
}

enum dir_result directory_app_password_used(struct directory *d, const char *user, const char *name)
{
	char u[DIR_ADDRESS_MAX * 2];
	if (!lowered(user, u, sizeof(u)))
		return DIR_OK;
	return OPS(d)->app_password_used(d->b, u, name, ERR);
}

enum dir_result directory_login_hash(struct directory *d, const char *user, const char *selector,
	struct dir_login_hash *out)
{
	char u[DIR_ADDRESS_MAX * 2];
	if (!lowered(user, u, sizeof(u)))
		return DIR_NOT_FOUND;
	return OPS(d)->login_hash(d->b, u, selector, out, ERR);
}

enum dir_result directory_legacy_app_hashes(struct directory *d, const char *user,
	bool (*cb)(void *arg, const char *name, const char *hash), void *arg)
{
	char u[DIR_ADDRESS_MAX * 2];
	if (!lowered(user, u, sizeof(u)))
		return DIR_OK;
	return OPS(d)->legacy_app_hashes(d->b, u, cb, arg, ERR);
}

long long directory_legacy_app_password_count(struct directory *d)
{
	return OPS(d)->legacy_app_password_count(d->b);
}

enum dir_result directory_grant_dump(struct directory *d,
	void (*cb)(void *arg, const char *user, const char *address), void *arg)
{
	return OPS(d)->grant_dump(d->b, cb, arg, ERR);
}

enum dir_result directory_app_password_dump(struct directory *d,
	void (*cb)(void *arg, const char *user, const char *name, const char *selector, const char *hash), void *arg)
{
	return OPS(d)->app_password_dump(d->b, cb, arg, ERR);
}

/* --- DKIM keys (PostgreSQL only) ------------------------------------------------------ */

static enum dir_result no_dkim_keys(void)
{
	snprintf(ERR, sizeof(ERR), "DKIM keys are kept in the directory only with the postgresql directory backend "
		"(with sqlite they are files in data_dir/dkim)");
	return DIR_ERROR;
}

enum dir_result directory_dkim_key_add(struct directory *d, const struct dir_dkim_key *k)
{
	return OPS(d)->dkim_key_add ? OPS(d)->dkim_key_add(d->b, k, ERR) : no_dkim_keys();
}

enum dir_result directory_dkim_key_retire(struct directory *d, const char *domain, const char *selector)
{
	return OPS(d)->dkim_key_retire ? OPS(d)->dkim_key_retire(d->b, domain, selector, ERR) : no_dkim_keys();
}

enum dir_result directory_dkim_key_list(struct directory *d, const char *domain,
	void (*cb)(void *arg, const struct dir_dkim_key *k), void *arg)
{
	return OPS(d)->dkim_key_list ? OPS(d)->dkim_key_list(d->b, domain, cb, arg, ERR) : no_dkim_keys();
}

enum dir_result directory_dkim_keys_version(struct directory *d, char *version, size_t versionsz)
{
	return OPS(d)->dkim_keys_version ? OPS(d)->dkim_keys_version(d->b, version, versionsz, ERR) : no_dkim_keys();
}

/* --- the state feed (postgres_state.c) ------------------------------------------- */

static bool state_backend(struct directory *d)
{
	if (d->ops == &directory_postgres_backend)
		return true;
	snprintf(ERR, DIR_ERROR_MAX, "the state feed works only with the postgresql directory backend");
	return false;
}

enum dir_result directory_state_publish(struct directory *d, const char *node, const char *run,
	const struct dir_state_row *rows, size_t n)
{
	if (!state_backend(d))
		return DIR_ERROR;
	return n ? pg_state_publish(d->b, node, run, rows, n, ERR) : DIR_OK;
}

enum dir_result directory_state_read(struct directory *d, long long after_id, long long since, const char *skip_run,
	unsigned max, void (*cb)(void *arg, const struct dir_state_row *r), void *arg, unsigned *count)
{
	*count = 0;
	if (!state_backend(d))
		return DIR_ERROR;
	return pg_state_read(d->b, after_id, since, skip_run, max, cb, arg, count, ERR);
}

enum dir_result directory_state_expire(struct directory *d, long long before)
{
	if (!state_backend(d))
		return DIR_ERROR;
	return pg_state_expire(d->b, before, ERR);
}
