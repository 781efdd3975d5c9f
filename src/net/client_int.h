/* client_int.h - the outbound connection's record, shared by the files of the
 * outbound client only (client.c: connect, lines, TLS; client_session.c: TLS
 * sessions kept for resumption; bridge.c: a connection handed to the event loop).
 * Everyone else uses net/client.h. */
#ifndef POSTERN_NET_CLIENT_INT_H
#define POSTERN_NET_CLIENT_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "net/client.h"

#define READ_BUF 8192

struct net_client {
	int fd;
	unsigned io_timeout;        /* seconds, for the words */
	unsigned io_ms;             /* the limit itself */
	const struct net_cancel *cancel;
	net_transcript_fn *transcript;
	void *transcript_arg;
	enum net_status status;     /* of the last failed read */
	char local[64];
	SSL_CTX *ctx;
	SSL *ssl;
	bool verified;
	char verify_note[160];
	char peer[64];
	struct net_tls_session *offer;   /* to resume at the next handshake (client_session.c) */
	unsigned char params_digest[32];   /* of the net_tls_params the handshake ran under */
	bool resumed;
	int dane_matched;                  /* of the handshake (or the resumed session's), -1: none */
	char rbuf[READ_BUF];
	size_t rlen, rpos;
};

/* client_session.c: before the handshake, offer c->offer when it was authenticated
 * under the same parameters as p (computes c->params_digest); after it, true when
 * the session was resumed, with c->verified and p's outcome taken from the session's
 * first handshake (OpenSSL does not verify the peer again on resumption). */
void client_session_offer(struct net_client *c, const struct net_tls_params *p);
bool client_session_resumed(struct net_client *c, struct net_tls_params *p);

#endif
