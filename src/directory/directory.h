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

bool directory_open(struct directory **d, const char *data_dir, char *err, size_t errlen);
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

/* Is this a local part we will create a mailbox directory for?  ASCII letters,
 * digits and . _ + - only, not starting with '.' or '-', at most 64 octets. */
bool directory_local_part_valid(const char *local);
/* A domain name: LDH labels, dots between, at most 253 octets, lower-cased in place. */
bool directory_domain_valid(char *domain);

#endif
