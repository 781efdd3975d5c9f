/* fuzz_milter.c - the milter reply reader and the negotiation over any byte stream
 * from a filter: the stream is fed in pieces whose sizes the first octet chooses;
 * every event's strings end inside the packet (the sanitizer reads them), a REPLBODY
 * stays inside the packet, an 'y' reply is 4xx/5xx with a matching enhanced code, and
 * a negotiation never grants what was not offered. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "milter/codec.h"

static void check_event(const struct milter_event *ev, uint32_t offered_actions)
{
	if (ev->name && strlen(ev->name) > MILTER_PACKET_MAX)
		__builtin_trap();
	if (ev->value && strlen(ev->value) > MILTER_PACKET_MAX)
		__builtin_trap();
	if (ev->kind == MILTER_EV_REPLBODY && ev->len >= MILTER_PACKET_MAX)
		__builtin_trap();
	if (ev->kind == MILTER_EV_REPLYCODE) {
		if (ev->code < 400 || ev->code > 599 || strlen(ev->reply) >= MILTER_REPLY_MAX)
			__builtin_trap();
		if (ev->enh[0] && ev->enh[0] != '0' + ev->code / 100)
			__builtin_trap();
	}
	if (ev->kind == MILTER_EV_OPTNEG) {
		struct milter_nego n;
		char err[256];
		uint32_t offered_protocol = MILTER_P_OFFERED & ~(offered_actions << 8);
		if (milter_negotiate(ev, offered_actions, offered_protocol, &n, err, sizeof(err))) {
			if ((n.actions & ~offered_actions) || (n.protocol & ~offered_protocol) || n.version > MILTER_VERSION ||
				n.version < MILTER_VERSION_MIN)
				__builtin_trap();
			static const char cmds[] = "CHMRTLNBE";
			for (size_t i = 0; cmds[i]; i++) {
				(void)milter_nego_sends(&n, cmds[i]);
				(void)milter_nego_awaits(&n, cmds[i]);
				(void)milter_nego_wants_macro(&n, cmds[i], "{auth_authen}");
				(void)milter_nego_wants_macro(&n, cmds[i], "j");
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t piece = (size_t)data[0] * 7 + 1;
	uint32_t offered_actions = data[1] | (uint32_t)(data[0] & 1) << 8;
	const uint8_t *p = data + 2;
	size_t n = size - 2;
	struct milter_reader r;
	if (!milter_reader_init(&r))
		return 0;
	size_t pos = 0;
	unsigned events = 0;
	while (pos < n) {
		size_t chunk = n - pos < piece ? n - pos : piece, used = 0;
		struct milter_event ev;
		char err[256];
		enum milter_rd rd = milter_reader_feed(&r, p + pos, chunk, &used, &ev, err, sizeof(err));
		if (used > chunk || (rd == MILTER_RD_MORE && used != chunk))
			__builtin_trap();
		pos += used;
		if (rd == MILTER_RD_ERROR) {
			if (!err[0])
				__builtin_trap();
			break;
		}
		if (rd == MILTER_RD_EVENT) {
			check_event(&ev, offered_actions);
			events++;
		}
	}
	milter_reader_free(&r);
	/* The 'y' checker alone, over the raw input as a string. */
	char s[2048];
	size_t k = n < sizeof(s) - 1 ? n : sizeof(s) - 1;
	memcpy(s, p, k);
	s[k] = '\0';
	int code;
	char enh[16], joined[MILTER_REPLY_MAX], err[256];
	if (milter_reply_check(s, &code, enh, sizeof(enh), joined, sizeof(joined), err, sizeof(err)) &&
		(code < 400 || code > 599))
		__builtin_trap();
	return (int)(events & 0);
}
