/* fuzz_tlsa.c - TLSA handling for DANE (RFC 6698, RFC 7672): records as they come from
 * the DNS (dns_parse_tlsa on one record's rdata; the input is split into records at
 * each 0xFF 0x00 pair), kept or dropped by dane_take_usable, described in the words a
 * deferral uses, and handed to OpenSSL's SSL_dane_tlsa_add as delivery hands them. */
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/dane.h"
#include "dns/dns.h"

static SSL_CTX *ctx;

static void use(const struct dane_host *d)
{
	char words[1200];
	dane_mismatch_words("mx.example.test", d, words, sizeof(words));
	if (strnlen(words, sizeof(words)) >= sizeof(words))
		__builtin_trap();
	if (!ctx) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (!ctx || SSL_CTX_dane_enable(ctx) <= 0)
			__builtin_trap();
	}
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_dane_enable(ssl, "mx.example.test") <= 0)
		__builtin_trap();
	for (size_t i = 0; i < d->n; i++) {
		const struct net_tlsa *t = &d->tlsa[i];
		if (!dane_usable(t->usage, t->selector, t->matching) || t->len == 0 || t->len > DANE_DATA_MAX)
			__builtin_trap();
		(void)SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->matching, t->data, t->len);
	}
	SSL_free(ssl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_rr rr[DANE_MAX_TLSA];
	struct net_tlsa in[DANE_MAX_TLSA];
	size_t n = 0, start = 0;
	for (size_t i = 0; i <= size && n < DANE_MAX_TLSA; i++) {
		if (i < size && !(i + 1 < size && data[i] == 0xff && data[i + 1] == 0x00))
			continue;
		size_t len = i - start;
		unsigned char *rd = malloc(len ? len : 1);
		if (!rd)
			break;
		memcpy(rd, data + start, len);
		if (dns_parse_tlsa(rd, len, &rr[n].u.tlsa)) {
			const struct dns_tlsa *t = &rr[n].u.tlsa;
			if (t->len + 3 != len)
				__builtin_trap();
			in[n] = (struct net_tlsa){ .usage = t->usage, .selector = t->selector, .matching = t->matching,
				.data = t->data, .len = t->len };
			n++;
		}
		free(rd);
		start = i + 2;
		i++;
	}
	static struct dane_host d;
	size_t kept = dane_take_usable(in, n, &d);
	if (kept > n || kept != d.n)
		__builtin_trap();
	for (size_t i = 0; i < kept; i++) {
		char one[80];
		dane_describe(&d.tlsa[i], one, sizeof(one));
	}
	use(&d);
	for (size_t i = 0; i < n; i++)
		dns_rr_clear(DNS_TLSA, &rr[i]);
	return 0;
}
