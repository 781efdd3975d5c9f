/* directory.h - domains and users, kept in SQLite (data_dir/directory.db).
 * One handle per thread.  The server reads; the admin commands write; WAL mode lets
 * both happen at once. */
#ifndef POSTERN_DIRECTORY_DIRECTORY_H
#define POSTERN_DIRECTORY_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIR_ADDRESS_MAX 320

enum dir_result { DIR_OK, DIR_NOT_FOUND, DIR_EXISTS, DIR_INVALID, DIR_ERROR };

struct directory;

struct dir_user {
	char address[DIR_ADDRESS_MAX];   /* lower case local@domain */
	char local[DIR_ADDRESS_MAX];
	char domain[DIR_ADDRESS_MAX];
	uint64_t quota;                  /* bytes, 0 = none */
};

/* Creates data_dir (0750) and directory.db if missing; the database and its -wal
 * and -shm files are made mode 0600 (they hold password hashes). */
bool directory_open(struct directory **d, const char *data_dir, char *err, size_t errlen);
/* Can users other than the owner and group enter or list data_dir?  Then `warn`
 * says so and how to fix it. */
bool directory_data_dir_exposed(const char *data_dir, char *warn, size_t warnsz);
void directory_close(struct directory **d);
const char *directory_error(const struct directory *d);   /* last error, for messages */

enum dir_result directory_domain_add(struct directory *d, const char *domain);
enum dir_result directory_domain_del(struct directory *d, const char *domain);
enum dir_result directory_domain_exists(struct directory *d, const char *domain);
enum dir_result directory_domain_list(struct directory *d,
	void (*cb)(void *arg, const char *domain), void *arg);

/* address must be local@domain with an existing domain; the hash comes from auth/. */
enum dir_result directory_user_add(struct directory *d, const char *address, const char *hash);
enum dir_result directory_user_del(struct directory *d, const char *address);
/* Case-insensitive lookup. */
enum dir_result directory_user_lookup(struct directory *d, const char *local,
	const char *domain, struct dir_user *out);
enum dir_result directory_user_list(struct directory *d,
	void (*cb)(void *arg, const struct dir_user *u), void *arg);

/* Aliases: alias address -> a user's address.  Recipients and sender ownership
 * both follow them. */
enum dir_result directory_alias_add(struct directory *d, const char *alias, const char *target);
enum dir_result directory_alias_del(struct directory *d, const char *alias);
/* The user an alias points to (lower case), written into target. */
enum dir_result directory_alias_lookup(struct directory *d, const char *local, const char *domain,
	char *target, size_t targetsz);
enum dir_result directory_alias_list(struct directory *d,
	void (*cb)(void *arg, const char *alias, const char *target), void *arg);

/* Sender grants: `user` may use `address` as MAIL FROM / From: (postern sender allow). */
enum dir_result directory_sender_allow(struct directory *d, const char *user, const char *address);
enum dir_result directory_sender_deny(struct directory *d, const char *user, const char *address);
enum dir_result directory_sender_list(struct directory *d, const char *user,
	void (*cb)(void *arg, const char *address), void *arg);
/* Does `user` own `address`: the same address, an alias pointing to the user, or a
 * grant?  DIR_OK yes, DIR_NOT_FOUND no, DIR_ERROR unknown. */
enum dir_result directory_sender_owned(struct directory *d, const char *user, const char *address);

/* App passwords: extra passwords for one user, each with a name. */
enum dir_result directory_app_password_add(struct directory *d, const char *user, const char *name,
	const char *hash);
enum dir_result directory_app_password_revoke(struct directory *d, const char *user, const char *name);
enum dir_result directory_app_password_list(struct directory *d, const char *user,
	void (*cb)(void *arg, const char *name, long long created, long long last_used), void *arg);
enum dir_result directory_app_password_used(struct directory *d, const char *user, const char *name);

/* Every password hash that may log in as `user`: the main one (name NULL) and the
 * app passwords (by name).  The callback returns true to stop (a match).  The user
 * address is matched case-insensitively; canonical receives the stored form. */
enum dir_result directory_user_hashes(struct directory *d, const char *user, char *canonical,
	size_t canonicalsz, bool (*cb)(void *arg, const char *name, const char *hash), void *arg);

/* Is this a local part we will create a mailbox directory for?  ASCII letters,
 * digits and . _ + - only, not starting with '.' or '-', at most 64 octets. */
bool directory_local_part_valid(const char *local);
/* A domain name: LDH labels, dots between, at most 253 octets, lower-cased in place. */
bool directory_domain_valid(char *domain);

#endif
