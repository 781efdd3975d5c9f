/* fuzz_dns.c - the DNS room's wire-format parsers: the first octet picks the record
 * type, the rest is one record's rdata (as libunbound hands it over).  Every parser
 * must stay inside the rdata, and what it returns must hold together. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"

static const enum dns_type types[] = { DNS_A, DNS_AAAA, DNS_MX, DNS_TXT, DNS_TLSA, DNS_PTR, DNS_SRV, DNS_CNAME, DNS_DNSKEY };

static void check(enum dns_type t, const struct dns_rr *rr, size_t len)
{
	switch (t) {
	case DNS_MX:
		if (strlen(rr->u.mx.exchange) >= sizeof(rr->u.mx.exchange) || rr->u.mx.preference > 65535)
			__builtin_trap();
		break;
	case DNS_TXT:
		if (rr->u.txt.len >= len || rr->u.txt.text[rr->u.txt.len] != '\0')
			__builtin_trap();
		break;
	case DNS_TLSA:
		if (rr->u.tlsa.len + 3 != len)
			__builtin_trap();
		break;
	case DNS_PTR:
	case DNS_CNAME:
		if (strlen(rr->u.name) >= sizeof(rr->u.name))
			__builtin_trap();
		break;
	case DNS_SRV:
		if (strlen(rr->u.srv.target) >= sizeof(rr->u.srv.target) || rr->u.srv.port > 65535 || len < 7)
			__builtin_trap();
		break;
	case DNS_DNSKEY:
		if (rr->u.dnskey.protocol != 3 || len < 5)
			__builtin_trap();
		break;
	case DNS_A:
	case DNS_AAAA:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum dns_type t = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	/* a copy of exactly the rdata, so that a read past it is caught */
	size_t len = size - 1;
	unsigned char *rd = malloc(len ? len : 1);
	if (!rd)
		return 0;
	memcpy(rd, data + 1, len);
	struct dns_rr rr;
	if (dns_parse_rr(t, rd, len, &rr)) {
		check(t, &rr, len);
		dns_rr_clear(t, &rr);
	}
	char name[DNS_NAME_MAX];
	size_t used = dns_wire_name(rd, len, name, sizeof(name));
	if (used > len || (used && strlen(name) >= sizeof(name)))
		__builtin_trap();
	free(rd);
	return 0;
}
