/* fuzz_milter_stage.c - the two parsers of the content-filter stage on any bytes: the
 * header block of a message (hostile: any client's mail) split into the fields a
 * filter is sent, and a filter's own reply (SMFIR_REPLYCODE) turned into Postern's
 * refusal.  The first byte chooses the split point.  Checks: every field has a
 * non-empty name without a colon or line end, no value holds CR LF, and a refusal has a
 * 4xx/5xx code, an enhanced code of the same class, and words without a line end or
 * a control octet. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/milter_stage.h"

static void check_fields(const struct milter_message *m)
{
	for (size_t i = 0; i < m->n_fields; i++) {
		const char *name = m->fields[i].name, *value = m->fields[i].value;
		if (!name[0] || strpbrk(name, ":\r\n"))
			__builtin_trap();
		if (strstr(value, "\r\n"))
			__builtin_trap();
	}
}

static void check_verdict(const struct verdict *v)
{
	if (v->code < 400 || v->code > 599 || !v->enh || v->enh[0] != '0' + v->code / 100)
		__builtin_trap();
	for (const char *p = v->reason; *p; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p >= 127)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = data[0] % size;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	struct milter_message m;
	memset(&m, 0, sizeof(m));
	m.fd = -1;
	if (milter_message_split(&m, p, split < n ? split : n))
		check_fields(&m);
	milter_message_close(&m);
	/* The reply as the codec hands it: NUL-terminated text. */
	char reply[1024];
	size_t rn = n < sizeof(reply) - 1 ? n : sizeof(reply) - 1;
	memcpy(reply, p, rn);
	reply[rn] = '\0';
	struct milter_peer peer;
	memset(&peer, 0, sizeof(peer));
	strcpy(peer.display, "fuzz");
	struct verdict v;
	memset(&v, 0, sizeof(v));
	milter_refusal_verdict(&peer, (data[0] & 1) ? POLICY_AT_RCPT : POLICY_AT_END_OF_DATA, MILTER_REPLYCODE, reply, &v);
	check_verdict(&v);
	return 0;
}
