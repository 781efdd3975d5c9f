/* client_session.c - TLS sessions kept for resumption by the outbound client (see
 * client.h).  A session is only as good as the authentication of the handshake
 * that made it: OpenSSL does not verify the peer's chain, names or TLSA records
 * again when a session is resumed (the verify result is the one stored in the
 * session), so a session is offered only to a handshake that runs under the same
 * parameters (a SHA-256 over names, CA file, TLSA records and whether verification
 * was required), and a resumed connection takes over the first handshake's
 * verdict: verified, its note, the DANE record that matched. */
#include "net/client_int.h"

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct net_tls_session {
	atomic_uint refs;
	SSL_SESSION *sess;
	unsigned char digest[32];   /* of the parameters it was authenticated under */
	bool verified;
	int dane_matched;
	char note[160];
};

static void feed(EVP_MD_CTX *md, const void *p, size_t n)
{
	/* the length first, so that ("ab","c") and ("a","bc") differ */
	uint64_t len = n;
	EVP_DigestUpdate(md, &len, sizeof(len));
	if (n)
		EVP_DigestUpdate(md, p, n);
}

static void feed_str(EVP_MD_CTX *md, const char *s)
{
	feed(md, s ? s : "", s ? strlen(s) : 0);
}

static void params_digest(const struct net_tls_params *p, unsigned char out[32])
{
	memset(out, 0, 32);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return;   /* all zero: matches no session (sessions are made with a digest) */
	}
	feed_str(md, p->name);
	for (size_t i = 0; i < p->n_more_names; i++)
		feed_str(md, p->more_names[i]);
	unsigned char flags[2] = { p->require_verified, (unsigned char)p->n_more_names };
	feed(md, flags, sizeof(flags));
	feed_str(md, p->ca_file);
	for (size_t i = 0; i < p->n_tlsa; i++) {
		const struct net_tlsa *t = &p->tlsa[i];
		unsigned char usm[3] = { t->usage, t->selector, t->matching };
		feed(md, usm, sizeof(usm));
		feed(md, t->data, t->len);
	}
	unsigned len = 32;
	EVP_DigestFinal_ex(md, out, &len);
	EVP_MD_CTX_free(md);
}

static bool digest_set(const unsigned char d[32])
{
	for (int i = 0; i < 32; i++)
		if (d[i])
			return true;
	return false;
}

void client_session_offer(struct net_client *c, const struct net_tls_params *p)
{
	c->resumed = false;
	params_digest(p, c->params_digest);
	struct net_tls_session *s = c->offer;
	if (s && digest_set(c->params_digest) && memcmp(s->digest, c->params_digest, 32) == 0
		&& SSL_SESSION_is_resumable(s->sess))
		SSL_set_session(c->ssl, s->sess);
}

bool client_session_resumed(struct net_client *c, struct net_tls_params *p)
{
	if (!c->offer || !SSL_session_reused(c->ssl))
		return false;
	c->resumed = true;
	/* The stored verify result must agree with the stored verdict, or nothing is
	 * trusted: a session that did not verify was never offered as verified. */
	c->verified = c->offer->verified && SSL_get_verify_result(c->ssl) == X509_V_OK;
	snprintf(c->verify_note, sizeof(c->verify_note), "%s", c->offer->note);
	p->dane_matched = c->dane_matched = c->verified ? c->offer->dane_matched : -1;
	p->auth_failed = !c->verified;
	if (p->auth_failed)
		snprintf(p->auth_error, sizeof(p->auth_error), "%s", c->verify_note[0] ? c->verify_note : "not verified");
	return true;
}

struct net_tls_session *net_client_tls_session(const struct net_client *c)
{
	if (!c->ssl || !digest_set(c->params_digest))
		return NULL;
	SSL_SESSION *sess = SSL_get1_session(c->ssl);
	if (!sess || !SSL_SESSION_is_resumable(sess)) {
		SSL_SESSION_free(sess);
		return NULL;
	}
	struct net_tls_session *s = calloc(1, sizeof(*s));
	if (!s) {
		SSL_SESSION_free(sess);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->sess = sess;
	memcpy(s->digest, c->params_digest, 32);
	s->verified = c->verified;
	snprintf(s->note, sizeof(s->note), "%s", c->verify_note);
	s->dane_matched = c->dane_matched;
	return s;
}

struct net_tls_session *net_tls_session_ref(struct net_tls_session *s)
{
	if (s)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

void net_tls_session_free(struct net_tls_session **sp)
{
	struct net_tls_session *s = *sp;
	*sp = NULL;
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	SSL_SESSION_free(s->sess);
	free(s);
}

void net_client_offer_session(struct net_client *c, struct net_tls_session *s)
{
	net_tls_session_free(&c->offer);
	c->offer = net_tls_session_ref(s);
}

bool net_client_tls_resumed(const struct net_client *c)
{
	return c->resumed;
}
