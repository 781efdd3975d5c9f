/* fuzz_mta_sts.c - the MTA-STS parsers (RFC 8461), all fed from the network: the first
 * octet picks one, the rest is its input.
 *   0: the TXT record at _mta-sts.DOMAIN (§3.1)
 *   1: the policy file (§3.2), then MX matching against a name taken from the input
 *   2: the HTTP response the policy comes in (§3.3), then the policy in its body
 * What a parser returns must hold together: bounded, terminated strings, patterns
 * that are valid names. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/mta_sts.h"

static void check_policy(const struct sts_policy *p)
{
	if (p->n_mx > STS_MAX_MX || p->max_age > STS_MAX_AGE_MAX || p->mode > STS_MODE_ENFORCE)
		__builtin_trap();
	for (size_t i = 0; i < p->n_mx; i++) {
		size_t n = strnlen(p->mx[i], sizeof(p->mx[i]));
		if (n == 0 || n >= sizeof(p->mx[i]))
			__builtin_trap();
		/* a pattern matches itself (without its wildcard: one label in its place) */
		char host[300];
		if (strncmp(p->mx[i], "*.", 2) == 0)
			snprintf(host, sizeof(host), "x%s", p->mx[i] + 1);
		else
			snprintf(host, sizeof(host), "%s", p->mx[i]);
		if (!sts_mx_matches(p, host))
			__builtin_trap();
	}
}

static void policy(const char *text, size_t len)
{
	struct sts_policy p;
	char err[300];
	if (sts_parse_policy(text, len, &p, err, sizeof(err))) {
		check_policy(&p);
		/* the last line of the input as a host name to match */
		const char *nl = memrchr(text, '\n', len);
		size_t off = nl ? (size_t)(nl - text) + 1 : 0;
		char host[300];
		size_t hl = len - off < sizeof(host) - 1 ? len - off : sizeof(host) - 1;
		memcpy(host, text + off, hl);
		host[hl] = '\0';
		(void)sts_mx_matches(&p, host);
	} else if (strnlen(err, sizeof(err)) >= sizeof(err)) {
		__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t len = size - 1;
	char *in = malloc(len ? len : 1);   /* exactly the input: a read past it is caught */
	if (!in)
		return 0;
	memcpy(in, data + 1, len);
	char err[300], id[STS_ID_MAX];
	switch (data[0] % 3) {
	case 0:
		if (sts_parse_txt(in, len, id, sizeof(id), err, sizeof(err))) {
			size_t n = strnlen(id, sizeof(id));
			if (n == 0 || n > 32)
				__builtin_trap();
		}
		break;
	case 1:
		policy(in, len);
		break;
	default: {
		const char *body;
		size_t blen;
		if (sts_http_response(in, len, &body, &blen, err, sizeof(err))) {
			if (body < in || body + blen > in + len)
				__builtin_trap();
			policy(body, blen);
		}
		break;
	}
	}
	free(in);
	return 0;
}
