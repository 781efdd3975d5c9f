/* fuzz_spf.c - SPF (RFC 7208): the record parser, the macro expander (domain-specs
 * and explanation text), and check_host() itself over a fake DNS whose every TXT
 * answer is the input (so include/redirect/exp recurse into hostile records).  The
 * first octet picks the part.  Everything must stay inside its buffers and the
 * outcome must hold together: terminated strings, a known result. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/spf.h"

static const char *fake_ptr(void *ctx, const char *domain)
{
	(void)ctx;
	return domain;
}

static const uint8_t *input;
static size_t input_len;

/* TXT: the input (and a second record when the input holds a '|'); A/AAAA: one
 * address; MX/PTR: one name; names beginning with "t" time out. */
static void fake_lookup(void *ctx, enum dns_type type, const char *name, unsigned timeout_ms, struct dns_result *res)
{
	(void)ctx;
	(void)timeout_ms;
	memset(res, 0, sizeof(*res));
	res->type = type;
	if (name[0] == 't') {
		res->rcode = DNS_TIMEOUT;
		return;
	}
	if (name[0] == 'n') {
		res->rcode = DNS_NXDOMAIN;
		return;
	}
	res->rr = calloc(2, sizeof(*res->rr));
	if (!res->rr)
		return;
	if (type == DNS_TXT) {
		const uint8_t *bar = memchr(input, '|', input_len);
		size_t first = bar ? (size_t)(bar - input) : input_len;
		for (int i = 0; i < (bar ? 2 : 1); i++) {
			const uint8_t *p = i ? bar + 1 : input;
			size_t n = i ? input_len - first - 1 : first;
			char *t = malloc(n + 1);
			if (!t)
				return;
			memcpy(t, p, n);
			t[n] = '\0';
			res->rr[res->n].u.txt.text = t;
			res->rr[res->n++].u.txt.len = n;
		}
	} else if (type == DNS_A || type == DNS_AAAA) {
		res->rr[0].u.addr.family = type == DNS_A ? 2 : 10;
		res->rr[0].u.addr.bytes[0] = 192;
		res->n = 1;
	} else if (type == DNS_MX) {
		strcpy(res->rr[0].u.mx.exchange, "mx.example.com");
		res->n = 1;
	} else {
		strcpy(res->rr[0].u.name, "ptr.example.com");
		res->n = 1;
	}
}

static void check_terminated(const char *s, size_t size)
{
	if (strnlen(s, size) >= size)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0] % 4;
	input = data + 1;
	input_len = size - 1;
	const char *s = (const char *)input;
	char out[512], err[300];
	if (mode == 0) {
		static struct spf_record rec;
		if (spf_record_parse(s, input_len, &rec, err, sizeof(err))) {
			if (rec.n > SPF_TERMS_MAX)
				__builtin_trap();
			for (size_t i = 0; i < rec.n; i++)
				if (rec.terms[i].text < s || rec.terms[i].text + rec.terms[i].text_len > s + input_len)
					__builtin_trap();
		} else
			check_terminated(err, sizeof(err));
	} else if (mode == 1 || mode == 2) {
		struct spf_macro_vars v = { .sender = "strong-bad@email.example.com", .local = "strong-bad",
			.sender_domain = "email.example.com", .domain = "email.example.com", .ip_dotted = "192.0.2.3",
			.ip_text = "192.0.2.3", .helo = "mx.example.org", .receiver = "r.example", .now = 1,
			.validated_name = fake_ptr };
		if (spf_macro_expand(&v, s, input_len, mode == 2, out, sizeof(out), err, sizeof(err))) {
			check_terminated(out, sizeof(out));
			if (mode == 1 && strlen(out) > 253)
				__builtin_trap();
		}
	} else {
		struct spf_dns dns = { .lookup = fake_lookup };
		struct spf_request rq = { .client_ip = input_len % 2 ? "192.0.2.3" : "2001:db8::3", .sender = "a@example.com",
			.helo = "helo.example.org", .check_helo = true, .timeout_ms = 1000 };
		struct spf_outcome o;
		spf_check(&rq, &dns, &o);
		if (o.result > SPF_PERMERROR)
			__builtin_trap();
		check_terminated(o.words, sizeof(o.words));
		check_terminated(o.mechanism, sizeof(o.mechanism));
		check_terminated(o.explanation, sizeof(o.explanation));
	}
	return 0;
}
