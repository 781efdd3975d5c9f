/* node_token.h - how the nodes of a cluster prove themselves to each other: a token
 * signed with the secret every node shares ([cluster] secret_file).
 *
 * Token text: "<node>.<unix seconds>.<base64url(HMAC-SHA256(secret, purpose '|' node
 * '|' seconds))>", no spaces, so it fits one command argument.  The purpose binds a
 * token to one use ("lmtp", "control", "pop3|<client ip>|<login>", ...): a token made
 * for one is worth nothing for another.  A token is valid 120 s either side of its
 * time (the nodes' clocks are kept by NTP; a captured token is soon stale).  OpenSSL
 * computes the MAC; checks compare with CRYPTO_memcmp (no early exit). */
#ifndef POSTERN_AUTH_NODE_TOKEN_H
#define POSTERN_AUTH_NODE_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "directory/directory.h"

#define NODE_SECRET_MAX 256
#define NODE_SECRET_MIN 32
#define NODE_TOKEN_MAX 160
#define NODE_TOKEN_SKEW 120   /* seconds a token is valid either side of its time */

/* Read the shared secret: a regular file, not readable or writable by others, holding
 * NODE_SECRET_MIN..NODE_SECRET_MAX bytes (trailing white space is not part of it).
 * false: err says what is wrong and what to do. */
bool node_secret_load(const char *path, unsigned char *secret, size_t *len, char *err, size_t errlen);
/* The token of `node` for `purpose` at `now`. */
void node_token_make(const unsigned char *secret, size_t len, const char *purpose, const char *node, time_t now,
	char out[NODE_TOKEN_MAX]);
/* True when token is valid for purpose within +-NODE_TOKEN_SKEW s of now; node_out
 * gets the signing node's name (also when false, if the token named one: for the
 * words of a refusal). */
bool node_token_check(const unsigned char *secret, size_t len, const char *purpose, const char *token, time_t now,
	char node_out[DIR_NODE_NAME_MAX]);
/* Is this a node name: [a-z0-9-]{1,32}? */
bool node_name_valid(const char *name);

#endif
