/* backend.h - what a directory backend provides: storage of domains, users,
 * aliases, sender grants, app passwords and quotas, and nothing else.
 *
 * Private to directory/.  The front (directory.c) validates and normalises every
 * address before it reaches a backend, so a backend receives lower-case, valid
 * local parts, domains and "local@domain" addresses (app-password names and
 * selectors are passed as given) and compares them as they are.  A backend keeps no
 * error state of its own: each operation that can fail writes its reason into err
 * (DIR_ERROR_MAX bytes), so one handle may serve several threads.  SQLite
 * (sqlite.c) is the embedded default; PostgreSQL (postgres.c) the shared one. */
#ifndef POSTERN_DIRECTORY_BACKEND_H
#define POSTERN_DIRECTORY_BACKEND_H

#include "directory/directory.h"

struct dir_backend;   /* one backend's connection */

struct directory_backend_ops {
	const char *name;
	bool (*open)(struct dir_backend **b, const char *data_dir, const struct directory_config *cfg, char *err,
		size_t errlen);
	/* NULL: the schema is made current by open. */
	bool (*migrate)(struct dir_backend *b, int *from, int *to, char *err, size_t errlen);
	void (*close)(struct dir_backend **b);

	enum dir_result (*domain_add)(struct dir_backend *b, const char *domain, char *err);
	/* DIR_EXISTS (with the reason in err) while the domain still has users. */
	enum dir_result (*domain_del)(struct dir_backend *b, const char *domain, char *err);
	enum dir_result (*domain_lookup)(struct dir_backend *b, const char *domain, char *err);
	enum dir_result (*domain_list)(struct dir_backend *b, void (*cb)(void *arg, const char *domain), void *arg,
		char *err);

	/* DIR_EXISTS when the address is taken. */
	enum dir_result (*user_add)(struct dir_backend *b, const char *address, const char *local, const char *domain,
		const char *hash, char *err);
	enum dir_result (*user_del)(struct dir_backend *b, const char *address, char *err);
	/* out may be NULL (does the user exist?). */
	enum dir_result (*user_lookup)(struct dir_backend *b, const char *local, const char *domain,
		struct dir_user *out, char *err);
	enum dir_result (*user_list)(struct dir_backend *b, void (*cb)(void *arg, const struct dir_user *u), void *arg,
		char *err);

	enum dir_result (*alias_add)(struct dir_backend *b, const char *alias, const char *local, const char *domain,
		const char *target, char *err);
	enum dir_result (*alias_del)(struct dir_backend *b, const char *alias, char *err);
	/* target may be NULL. */
	enum dir_result (*alias_lookup)(struct dir_backend *b, const char *local, const char *domain, char *target,
		size_t targetsz, char *err);
	enum dir_result (*alias_list)(struct dir_backend *b, void (*cb)(void *arg, const char *alias, const char *target),
		void *arg, char *err);

	/* address is "local@domain" or a whole domain "@domain". */
	enum dir_result (*sender_allow)(struct dir_backend *b, const char *user, const char *address, char *err);
	enum dir_result (*sender_deny)(struct dir_backend *b, const char *user, const char *address, char *err);
	/* The grants of user and the aliases pointing to it. */
	enum dir_result (*sender_list)(struct dir_backend *b, const char *user, void (*cb)(void *arg, const char *address),
		void *arg, char *err);
	/* An alias address -> user, or a grant of address or of "@domain" (at_domain). */
	enum dir_result (*sender_owned)(struct dir_backend *b, const char *user, const char *address,
		const char *at_domain, char *err);

	/* DIR_EXISTS when the name or the selector is taken. */
	enum dir_result (*app_password_add)(struct dir_backend *b, const char *user, const char *name,
		const char *selector, const char *hash, char *err);
	enum dir_result (*app_password_selector_free)(struct dir_backend *b, const char *user, const char *selector,
		char *err);
	enum dir_result (*app_password_revoke)(struct dir_backend *b, const char *user, const char *name, char *err);
	enum dir_result (*app_password_list)(struct dir_backend *b, const char *user,
		void (*cb)(void *arg, const char *name, long long created, long long last_used, bool legacy), void *arg,
		char *err);
	enum dir_result (*app_password_used)(struct dir_backend *b, const char *user, const char *name, char *err);
	/* See directory_login_hash: one lookup whatever the case, so it costs the same. */
	enum dir_result (*login_hash)(struct dir_backend *b, const char *user, const char *selector,
		struct dir_login_hash *out, char *err);
	enum dir_result (*legacy_app_hashes)(struct dir_backend *b, const char *user,
		bool (*cb)(void *arg, const char *name, const char *hash), void *arg, char *err);
	long long (*legacy_app_password_count)(struct dir_backend *b);

	/* Every sender grant, and every app password with its hash (selector NULL: legacy):
	 * for `postern directory export`. */
	enum dir_result (*grant_dump)(struct dir_backend *b, void (*cb)(void *arg, const char *user, const char *address),
		void *arg, char *err);
	enum dir_result (*app_password_dump)(struct dir_backend *b, void (*cb)(void *arg, const char *user,
		const char *name, const char *selector, const char *hash), void *arg, char *err);

	/* The quota recorded for the user (bytes, 0 = none). */
	enum dir_result (*user_quota_set)(struct dir_backend *b, const char *address, uint64_t bytes, char *err);
	/* The user's outbound limits (-1: the default, stored as NULL). */
	enum dir_result (*user_limits_set)(struct dir_backend *b, const char *address, int64_t messages_per_hour,
		int64_t recipients_per_day, char *err);
	/* Is the user an administrator (the web site's /admin/ pages)? */
	enum dir_result (*user_admin_set)(struct dir_backend *b, const char *address, bool admin, char *err);
	/* The user's home node ("": none, stored as NULL). */
	enum dir_result (*user_home_set)(struct dir_backend *b, const char *address, const char *node, char *err);
	/* The node registry (directory.h); NULL in a backend without one (SQLite). */
	enum dir_result (*node_heartbeat)(struct dir_backend *b, const struct dir_node *self, char *err);
	enum dir_result (*node_get)(struct dir_backend *b, const char *name, struct dir_node *out, char *err);
	enum dir_result (*node_list)(struct dir_backend *b, void (*cb)(void *arg, const struct dir_node *n), void *arg,
		char *err);

	/* DKIM keys (directory.h; NULL: not kept by this backend, the files are). */
	enum dir_result (*dkim_key_add)(struct dir_backend *b, const struct dir_dkim_key *k, char *err);
	enum dir_result (*dkim_key_retire)(struct dir_backend *b, const char *domain, const char *selector, char *err);
	enum dir_result (*dkim_key_list)(struct dir_backend *b, const char *domain,
		void (*cb)(void *arg, const struct dir_dkim_key *k), void *arg, char *err);
	enum dir_result (*dkim_keys_version)(struct dir_backend *b, char *version, size_t versionsz, char *err);
};

extern const struct directory_backend_ops directory_sqlite_backend;
extern const struct directory_backend_ops directory_postgres_backend;

#endif
