/* rdata.c - wire-format record data parsers (see dns.h).  The bytes come from the
 * network through libunbound: every length is checked against the rdata length, a
 * record must use its rdata exactly, and anything malformed is refused, not cut. */
#include "dns/dns.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t dns_wire_name(const unsigned char *p, size_t len, char *out, size_t outsz)
{
	size_t i = 0, o = 0;
	if (outsz == 0)
		return 0;
	while (i < len) {
		unsigned lab = p[i++];
		if (lab == 0) {
			if (o == 0 && outsz > 1)
				out[o++] = '.';   /* the root: "." */
			else if (o > 0)
				o--;              /* drop the trailing dot */
			out[o] = '\0';
			return i;
		}
		/* RFC 1035 §4.1.4: 0xC0 marks a pointer, 0x40/0x80 are reserved; rdata from
		 * libunbound is uncompressed, so any of them here is malformed. */
		if (lab > 63 || i + lab > len || o + lab + 2 > outsz)
			return 0;
		for (unsigned k = 0; k < lab; k++) {
			unsigned char ch = p[i + k];
			/* A NUL or a dot inside a label cannot be told apart in dotted text. */
			if (ch == '\0' || ch == '.')
				return 0;
			out[o++] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
		}
		out[o++] = '.';
		i += lab;
	}
	return 0;
}

/* RFC 1035 §3.3.9: PREFERENCE (16 bits), EXCHANGE (a name). */
bool dns_parse_mx(const unsigned char *rd, size_t len, struct dns_mx *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 3)
		return false;
	out->preference = (unsigned)(rd[0] << 8 | rd[1]);
	if (dns_wire_name(rd + 2, len - 2, out->exchange, sizeof(out->exchange)) == len - 2)
		return true;
	memset(out, 0, sizeof(*out));
	return false;
}

/* RFC 1035 §3.4.1 (A: 4 octets), RFC 3596 §2.2 (AAAA: 16 octets). */
bool dns_parse_addr(enum dns_type type, const unsigned char *rd, size_t len, struct dns_addr *out)
{
	memset(out, 0, sizeof(*out));
	size_t want = type == DNS_AAAA ? 16 : type == DNS_A ? 4 : 0;
	if (want == 0 || len != want)
		return false;
	out->family = type == DNS_AAAA ? AF_INET6 : AF_INET;
	memcpy(out->bytes, rd, len);
	return inet_ntop(out->family, out->bytes, out->text, sizeof(out->text)) != NULL;
}

/* RFC 1035 §3.3.12: PTRDNAME. */
bool dns_parse_ptr(const unsigned char *rd, size_t len, char *out, size_t outsz)
{
	if (len > 0 && dns_wire_name(rd, len, out, outsz) == len)
		return true;
	if (outsz)
		out[0] = '\0';
	return false;
}

/* RFC 2782: PRIORITY, WEIGHT, PORT (16 bits each), TARGET (a name, not compressed). */
bool dns_parse_srv(const unsigned char *rd, size_t len, struct dns_srv *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 7)
		return false;
	out->priority = (unsigned)(rd[0] << 8 | rd[1]);
	out->weight = (unsigned)(rd[2] << 8 | rd[3]);
	out->port = (unsigned)(rd[4] << 8 | rd[5]);
	if (dns_wire_name(rd + 6, len - 6, out->target, sizeof(out->target)) == len - 6)
		return true;
	memset(out, 0, sizeof(*out));
	return false;
}

/* RFC 1035 §3.3.14: one or more <character-string>s, each a length octet and that
 * many octets.  Joined without separator, as SPF, DKIM and DMARC read them. */
bool dns_parse_txt(const unsigned char *rd, size_t len, struct dns_txt *out)
{
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return false;
	size_t total = 0;
	for (size_t i = 0; i < len; i += 1 + rd[i]) {
		if (i + 1 + rd[i] > len)
			return false;
		total += rd[i];
	}
	char *text = malloc(total + 1);
	if (!text)
		return false;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 1 + rd[i]) {
		memcpy(text + o, rd + i + 1, rd[i]);
		o += rd[i];
	}
	text[o] = '\0';
	out->text = text;
	out->len = o;
	return true;
}

/* RFC 6698 §2.1: usage, selector, matching type (one octet each), then the
 * association data; §2.1.3: SHA2-256 data is 32 octets, SHA2-512 data 64. */
bool dns_parse_tlsa(const unsigned char *rd, size_t len, struct dns_tlsa *out)
{
	memset(out, 0, sizeof(*out));
	if (len < 4)
		return false;
	size_t dlen = len - 3;
	if ((rd[2] == 1 && dlen != 32) || (rd[2] == 2 && dlen != 64))
		return false;
	out->data = malloc(dlen);
	if (!out->data)
		return false;
	out->usage = rd[0];
	out->selector = rd[1];
	out->matching = rd[2];
	memcpy(out->data, rd + 3, dlen);
	out->len = dlen;
	return true;
}

/* RFC 4034 §2.1: flags (2), protocol (1, always 3), algorithm (1), public key (>= 1). */
bool dns_parse_dnskey(const unsigned char *rd, size_t len, struct dns_dnskey *out)
{
	if (len < 5 || rd[2] != 3)
		return false;
	out->flags = (uint16_t)(rd[0] << 8 | rd[1]);
	out->protocol = rd[2];
	out->algorithm = rd[3];
	return true;
}

bool dns_parse_rr(enum dns_type type, const unsigned char *rd, size_t len, struct dns_rr *out)
{
	memset(out, 0, sizeof(*out));
	switch (type) {
	case DNS_A:
	case DNS_AAAA:
		return dns_parse_addr(type, rd, len, &out->u.addr);
	case DNS_MX:
		return dns_parse_mx(rd, len, &out->u.mx);
	case DNS_PTR:
	case DNS_CNAME:   /* RFC 1035 §3.3.1: CNAME, a name like PTRDNAME */
		return dns_parse_ptr(rd, len, out->u.name, sizeof(out->u.name));
	case DNS_SRV:
		return dns_parse_srv(rd, len, &out->u.srv);
	case DNS_TXT:
		return dns_parse_txt(rd, len, &out->u.txt);
	case DNS_TLSA:
		return dns_parse_tlsa(rd, len, &out->u.tlsa);
	case DNS_DNSKEY:
		return dns_parse_dnskey(rd, len, &out->u.dnskey);
	}
	return false;
}

void dns_rr_clear(enum dns_type type, struct dns_rr *rr)
{
	if (type == DNS_TXT)
		free(rr->u.txt.text);
	else if (type == DNS_TLSA)
		free(rr->u.tlsa.data);
	memset(rr, 0, sizeof(*rr));
}
