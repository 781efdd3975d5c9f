/* tls.h - server TLS contexts (OpenSSL 3): the default certificate, more chosen by
 * SNI, TLS 1.2 and 1.3 only.  When no certificate is configured, a self-signed one
 * is generated once into data_dir/tls/ and the server logs that it did. */
#ifndef POSTERN_NET_TLS_H
#define POSTERN_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct conf;
struct tls;

/* owner_uid/gid: when not (uid_t)-1, generated files are given to that user.
 * check_only (check-config): load and check everything, generate nothing; *t may
 * stay NULL.  Errors name FILE:LINE and the setting, and say what to change. */
bool tls_init(struct tls **t, const struct conf *c, uid_t owner_uid, gid_t owner_gid, bool check_only, char *err, size_t errlen);
void tls_free(struct tls **t);
/* A reload: t (in use) takes the contexts of *fresh (a tls_init of the new
 * configuration) and *fresh, with t's old contexts, is freed.  New connections and
 * handshakes use the new certificates at once; connections made before keep theirs.
 * Thread-safe against tls_new_ssl and the SNI callback. */
void tls_replace(struct tls *t, struct tls **fresh);
SSL *tls_new_ssl(struct tls *t);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for Received: and logs. */
void tls_describe(SSL *ssl, char *out, size_t outsz);
/* The most recent OpenSSL error as text (thread-local queue), "" if none. */
void tls_last_error(unsigned long code, char *out, size_t outsz);

#endif
