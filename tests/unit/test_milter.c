/* test_milter.c - milter/codec: each command's bytes, each reply decoded, and the
 * packets a broken or hostile filter sends (truncated, oversized, garbage). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "milter/codec.h"
#include "milter/milter.h"

/* Bytes written as a C string literal with explicit length (NULs inside). */
struct bytes {
	const char *p;
	size_t n;
};
#define B(s) { s, sizeof(s) - 1 }

static unsigned char outbuf[70000];

static struct milter_out out_new(size_t cap)
{
	struct milter_out o = { .p = outbuf, .len = 0, .cap = cap };
	return o;
}

static void assert_bytes(const struct milter_out *o, struct bytes want)
{
	if (o->len != want.n || memcmp(o->p, want.p, want.n) != 0) {
		fprintf(stderr, "got %zu octets:", o->len);
		for (size_t i = 0; i < o->len && i < 80; i++)
			fprintf(stderr, " %02x", o->p[i]);
		fprintf(stderr, "\n");
		fail_msg("encoding differs (want %zu octets)", want.n);
	}
}

static const char *const mail_argv[] = { "<alice@example.org>", "SIZE=100", "BODY=8BITMIME" };
static const char *const rcpt_argv[] = { "<bob@example.net>" };
static const char *const mac_names[] = { "j", "{daemon_name}", "{auth_authen}" };
static const char *const mac_values[] = { "mx.example.org", "postern", NULL };

static void test_encoders(void **state)
{
	(void)state;
	struct milter_out o;
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_optneg(&o, 6, MILTER_F_ALL, MILTER_P_OFFERED));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff"));
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_macro(&o, 'C', mac_names, mac_values, 3));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x38" "DC" "j\0mx.example.org\0{daemon_name}\0postern\0{auth_authen}\0\0"));
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_connect(&o, "client.example", '4', 25, "192.0.2.1"));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x1d" "Cclient.example\0" "4\x00\x19" "192.0.2.1\0"));
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_connect(&o, "h", '6', 0xabcd, "2001:db8::1"));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x12" "Ch\0" "6\xab\xcd" "2001:db8::1\0"));
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_connect(&o, "localhost", 'L', 99, "/run/sock"));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x18" "Clocalhost\0" "L\0\0" "/run/sock\0"));
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_connect(&o, "unknown", 'U', 0, NULL));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x0a" "Cunknown\0U"));
	o = out_new(sizeof(outbuf));
	assert_false(milter_enc_connect(&o, "x", 'X', 1, "a"));
	assert_false(milter_enc_connect(&o, "x", '4', 70000, "a"));
	assert_int_equal(o.len, 0);
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_helo(&o, "client.example"));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x10" "Hclient.example\0"));
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_mail(&o, mail_argv, 3));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x2c" "M<alice@example.org>\0SIZE=100\0BODY=8BITMIME\0"));
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_rcpt(&o, rcpt_argv, 1));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x13" "R<bob@example.net>\0"));
	assert_false(milter_enc_rcpt(&o, rcpt_argv, 0));
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_header(&o, "Subject", " hello\n\tworld"));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x17" "LSubject\0 hello\n\tworld\0"));
	assert_false(milter_enc_header(&o, "", "x"));
	o = out_new(sizeof(outbuf));
	assert_true(milter_enc_body(&o, "line\r\n", 6));
	assert_bytes(&o, (struct bytes)B("\0\0\0\x07" "Bline\r\n"));
}

static void test_bare_commands(void **state)
{
	(void)state;
	static const char ok[] = { 'T', 'N', 'E', 'A', 'Q', 'K' };
	for (size_t i = 0; i < sizeof(ok); i++) {
		struct milter_out o = out_new(sizeof(outbuf));
		assert_true(milter_enc_bare(&o, ok[i]));
		char want[5] = { 0, 0, 0, 1, ok[i] };
		assert_bytes(&o, (struct bytes){ want, 5 });
	}
	struct milter_out o = out_new(sizeof(outbuf));
	assert_false(milter_enc_bare(&o, 'M'));
	assert_false(milter_enc_bare(&o, 'z'));
}

static void test_encoder_bounds(void **state)
{
	(void)state;
	static unsigned char big[65536];
	struct milter_out o = out_new(sizeof(outbuf));
	assert_true(milter_enc_body(&o, big, 65535));
	assert_int_equal(o.len, 65540);
	assert_int_equal(outbuf[1], 0x01);   /* length 65536 */
	o = out_new(sizeof(outbuf));
	assert_false(milter_enc_body(&o, big, 65536));
	assert_int_equal(o.len, 0);
	/* out of room: nothing written, and what was there stays */
	o = out_new(10);
	assert_true(milter_enc_bare(&o, 'T'));
	assert_false(milter_enc_helo(&o, "longer than it fits"));
	assert_int_equal(o.len, 5);
	assert_true(milter_enc_bare(&o, 'N'));
	assert_int_equal(o.len, 10);
	assert_false(milter_enc_bare(&o, 'E'));
	/* a header over the packet limit */
	char *huge = malloc(70000);
	memset(huge, 'a', 69999);
	huge[69999] = '\0';
	o = out_new(sizeof(outbuf));
	assert_false(milter_enc_header(&o, "X", huge));
	assert_int_equal(o.len, 0);
	free(huge);
}

/* --- replies ------------------------------------------------------------------------- */

struct reply_case {
	struct bytes data;             /* command byte first */
	enum milter_ev_kind kind;
	const char *name, *value;      /* expected, NULL: not set */
	uint32_t index;
};

static const struct reply_case good[] = {
	{ B("a"), MILTER_EV_ACCEPT, NULL, NULL, 0 },
	{ B("c"), MILTER_EV_CONTINUE, NULL, NULL, 0 },
	{ B("d"), MILTER_EV_DISCARD, NULL, NULL, 0 },
	{ B("r"), MILTER_EV_REJECT, NULL, NULL, 0 },
	{ B("t"), MILTER_EV_TEMPFAIL, NULL, NULL, 0 },
	{ B("p"), MILTER_EV_PROGRESS, NULL, NULL, 0 },
	{ B("s"), MILTER_EV_SKIP, NULL, NULL, 0 },
	{ B("4"), MILTER_EV_SHUTDOWN, NULL, NULL, 0 },
	{ B("f"), MILTER_EV_CONN_FAIL, NULL, NULL, 0 },
	{ B("qlooks like spam\0"), MILTER_EV_QUARANTINE, "looks like spam", NULL, 0 },
	{ B("hX-Spam\0yes\0"), MILTER_EV_ADDHEADER, "X-Spam", "yes", 0 },
	{ B("h" "X-Empty\0\0"), MILTER_EV_ADDHEADER, "X-Empty", "", 0 },
	{ B("i\0\0\0\0X-First\0 v\n\tfolded\0"), MILTER_EV_INSHEADER, "X-First", " v\n\tfolded", 0 },
	{ B("m\0\0\0\x02Subject\0\0"), MILTER_EV_CHGHEADER, "Subject", "", 2 },
	{ B("+<new@example.org>\0"), MILTER_EV_ADDRCPT, "<new@example.org>", NULL, 0 },
	{ B("2<new@example.org>\0NOTIFY=NEVER\0"), MILTER_EV_ADDRCPT_PAR, "<new@example.org>", "NOTIFY=NEVER", 0 },
	{ B("2<new@example.org>\0"), MILTER_EV_ADDRCPT_PAR, "<new@example.org>", NULL, 0 },
	{ B("-<old@example.org>\0"), MILTER_EV_DELRCPT, "<old@example.org>", NULL, 0 },
	{ B("e<from@example.org>\0"), MILTER_EV_CHGFROM, "<from@example.org>", NULL, 0 },
	{ B("e<from@example.org>\0SIZE=1\0"), MILTER_EV_CHGFROM, "<from@example.org>", "SIZE=1", 0 },
};

static void test_replies_decoded(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct reply_case *t = &good[i];
		struct milter_event ev;
		char err[256] = "";
		bool ok = milter_decode(t->data.p[0], (const unsigned char *)t->data.p + 1, t->data.n - 1, &ev, err,
			sizeof(err));
		if (!ok)
			fail_msg("case %zu ('%c'): %s", i, t->data.p[0], err);
		assert_int_equal(ev.kind, t->kind);
		assert_int_equal(ev.cmd, t->data.p[0]);
		if (t->name)
			assert_string_equal(ev.name, t->name);
		if (t->value)
			assert_string_equal(ev.value, t->value);
		else if (t->kind != MILTER_EV_ADDHEADER && t->kind != MILTER_EV_CHGHEADER)
			assert_null(ev.value);
		assert_int_equal(ev.index, t->index);
	}
}

static void test_replbody(void **state)
{
	(void)state;
	struct milter_event ev;
	char err[256];
	static const unsigned char body[] = "new body\r\n\0with a NUL";
	assert_true(milter_decode('b', body, sizeof(body), &ev, err, sizeof(err)));
	assert_int_equal(ev.kind, MILTER_EV_REPLBODY);
	assert_int_equal(ev.len, sizeof(body));
	assert_ptr_equal(ev.data, body);
	assert_true(milter_decode('b', body, 0, &ev, err, sizeof(err)));
	assert_int_equal(ev.len, 0);
}

struct bad_case {
	struct bytes data;
	const char *words;     /* a part of the error */
};

static const struct bad_case bad[] = {
	{ B("Z"), "unknown reply 'Z'" },
	{ B("\x01"), "unknown reply 0x01" },
	{ B("C"), "unknown reply 'C'" },
	{ B("ax"), "1 octets after the end of accept" },
	{ B("cjunk"), "after the end of continue" },
	{ B("qno NUL"), "quarantine reason not NUL-terminated" },
	{ B("q"), "quarantine reason not NUL-terminated" },
	{ B("hX-Spam\0yes"), "header value not NUL-terminated" },
	{ B("hX-Spam"), "header name not NUL-terminated" },
	{ B("h\0yes\0"), "header name that is empty" },
	{ B("hBad:Name\0v\0"), "header name that is empty" },
	{ B("hBad Name\0v\0"), "not printable ASCII" },
	{ B("hX\0v\0extra"), "after the end of the header" },
	{ B("i\0\0\0"), "header index cut short (3 of 4 octets)" },
	{ B("m"), "header index cut short (0 of 4 octets)" },
	{ B("m\0\0\0\x01Subject"), "header name not NUL-terminated" },
	{ B("+"), "address not NUL-terminated" },
	{ B("+\0"), "an empty address" },
	{ B("-x\0y\0"), "after the end of the address" },
	{ B("2a\0b"), "ESMTP arguments not NUL-terminated" },
	{ B("2a\0b\0c\0"), "after the end of the address" },
	{ B("e"), "address not NUL-terminated" },
	{ B("l\0\0\0\x02{mail_addr}"), "macro list not NUL-terminated" },
	{ B("l\0\0\0\x09j\0"), "unknown stage" },
	{ B("l\0\0"), "macro list stage cut short" },
	{ B("O\0\0\0\x06\0\0\0\x01"), "protocol flags cut short" },
	{ B("O\0\0\0\x01\0\0\0\x01\0\0\0\0"), "version 1; version 2 or later" },
	{ B("O\0\0\0\x06\0\0\0\0\0\0\0\0\0\0\0\x01j"), "macro list not NUL-terminated" },
	{ B("O\0\0\0\x06\0\0\0\0\0\0\0\0\0\0\0\x07j\0"), "unknown stage" },
	{ B("y250 ok\0"), "code 250 is not 4xx or 5xx" },
	{ B("y550 ok"), "reply text not NUL-terminated" },
	{ B("y550 4.7.1 mismatch\0"), "enhanced code 4.7.1 does not match reply code 550" },
	{ B("yhello\0"), "is not a reply line" },
	{ B("y55\0"), "is not a reply line" },
	{ B("y\0"), "is not a reply line" },
	{ B("y550-5.7.1 a\r\n450 4.7.1 b\0"), "different codes" },
	{ B("y550-5.7.1 a\0"), "the last line says more lines follow" },
	{ B("y550 5.7.1 a\r\n550 5.7.1 b\0"), "lines after the last" },
	{ B("y550 ok\0trailing"), "after the end of the reply text" },
	{ B("y650 x\0"), "is not a reply line" },
};

static void test_replies_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad_case *t = &bad[i];
		struct milter_event ev;
		char err[256] = "";
		if (milter_decode(t->data.p[0], (const unsigned char *)t->data.p + 1, t->data.n - 1, &ev, err, sizeof(err)))
			fail_msg("case %zu ('%c') decoded", i, t->data.p[0]);
		if (!strstr(err, t->words))
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, t->words);
	}
}

static void test_optneg_reply(void **state)
{
	(void)state;
	struct milter_event ev;
	char err[256];
	static const char pkt[] = "\0\0\0\x06\0\0\0\x1f\0\x1f\x04\x00"
		"\0\0\0\x02{mail_addr} {auth_authen}\0" "\0\0\0\x05i j\0";
	assert_true(milter_decode('O', (const unsigned char *)pkt, sizeof(pkt) - 1, &ev, err, sizeof(err)));
	assert_int_equal(ev.kind, MILTER_EV_OPTNEG);
	assert_int_equal(ev.version, 6);
	assert_int_equal(ev.actions, 0x1f);
	assert_int_equal(ev.protocol, MILTER_P_NR_BODY | MILTER_P_NR_EOH | MILTER_P_NR_UNKN | MILTER_P_NR_DATA |
		MILTER_P_HDR_LEADSPC | MILTER_P_SKIP);
	assert_int_equal(ev.n_symlists, 2);
	assert_int_equal(ev.symlists[0].stage, MILTER_STAGE_MAIL);
	assert_string_equal(ev.symlists[0].macros, "{mail_addr} {auth_authen}");
	assert_int_equal(ev.symlists[1].stage, MILTER_STAGE_EOM);
	assert_string_equal(ev.symlists[1].macros, "i j");
	/* an old filter: version 2, no lists */
	static const char v2[] = "\0\0\0\x02\0\0\0\x01\0\0\0\x10";
	assert_true(milter_decode('O', (const unsigned char *)v2, sizeof(v2) - 1, &ev, err, sizeof(err)));
	assert_int_equal(ev.version, 2);
	assert_int_equal(ev.protocol, MILTER_P_NOBODY);
	assert_int_equal(ev.n_symlists, 0);
	/* eight lists: more than stages */
	unsigned char many[12 + 8 * 6];
	memcpy(many, v2, 12);
	for (int i = 0; i < 8; i++)
		memcpy(many + 12 + i * 6, "\0\0\0\x01j\0", 6);
	assert_false(milter_decode('O', many, sizeof(many), &ev, err, sizeof(err)));
	assert_non_null(strstr(err, "more macro lists than stages"));
	/* SETSYMLIST as its own packet */
	static const char sl[] = "\0\0\0\x03{rcpt_addr}\0";
	assert_true(milter_decode('l', (const unsigned char *)sl, sizeof(sl) - 1, &ev, err, sizeof(err)));
	assert_int_equal(ev.kind, MILTER_EV_SETSYMLIST);
	assert_int_equal(ev.symlists[0].stage, MILTER_STAGE_RCPT);
	assert_string_equal(ev.symlists[0].macros, "{rcpt_addr}");
}

struct code_case {
	const char *in;
	int code;
	const char *enh, *joined;
};

static const struct code_case codes[] = {
	{ "550 5.7.1 spam score 15.3 of 15", 550, "5.7.1", "550 5.7.1 spam score 15.3 of 15" },
	{ "451 4.7.1 try later", 451, "4.7.1", "451 4.7.1 try later" },
	{ "554 no enhanced code", 554, "", "554 no enhanced code" },
	{ "550", 550, "", "550" },
	{ "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third", 550, "5.7.1", "550 5.7.1 first second third" },
	{ "421-4.3.0 a\r\n421 b", 421, "4.3.0", "421 4.3.0 a b" },
	{ "550 5.7.1 final CR LF\r\n", 550, "5.7.1", "550 5.7.1 final CR LF" },
	{ "550 see RFC 5321 4.5.3.1.6", 550, "", "550 see RFC 5321 4.5.3.1.6" },
};

static void test_reply_codes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const struct code_case *t = &codes[i];
		struct milter_event ev;
		char err[256] = "";
		if (!milter_decode('y', (const unsigned char *)t->in, strlen(t->in) + 1, &ev, err, sizeof(err)))
			fail_msg("case %zu: %s", i, err);
		assert_int_equal(ev.kind, MILTER_EV_REPLYCODE);
		assert_int_equal(ev.code, t->code);
		assert_string_equal(ev.enh, t->enh);
		assert_string_equal(ev.reply, t->joined);
	}
	/* 33 lines: too many */
	char many[33 * 8 + 1] = "";
	for (int i = 0; i < 33; i++)
		strcat(many, i < 32 ? "550-x\r\n" : "550 x");
	char err[256];
	struct milter_event ev;
	assert_false(milter_decode('y', (const unsigned char *)many, strlen(many) + 1, &ev, err, sizeof(err)));
	assert_non_null(strstr(err, "32 lines"));
}

static void test_negotiation(void **state)
{
	(void)state;
	struct milter_event ev;
	char err[256];
	/* v6, every action and more, no connect, no helo answer, skip, the size flags,
	 * an unknown bit; a list for MAIL */
	static const char pkt[] = "\0\0\0\x06\0\0\x0f\xff" "\x30\x40\x24\x01" "\0\0\0\x02{mail_addr} i,j\0";
	assert_true(milter_decode('O', (const unsigned char *)pkt, sizeof(pkt) - 1, &ev, err, sizeof(err)));
	struct milter_nego n;
	assert_true(milter_negotiate(&ev, MILTER_F_ALL, MILTER_P_OFFERED, &n, err, sizeof(err)));
	assert_int_equal(n.version, 6);
	assert_int_equal(n.actions, MILTER_F_ALL);
	assert_int_equal(n.protocol, MILTER_P_NOCONNECT | MILTER_P_NR_HELO | MILTER_P_SKIP);
	assert_false(milter_nego_sends(&n, 'C'));
	assert_true(milter_nego_sends(&n, 'H'));
	assert_false(milter_nego_awaits(&n, 'H'));
	assert_true(milter_nego_awaits(&n, 'M'));
	assert_true(milter_nego_sends(&n, 'E'));
	assert_true(milter_nego_awaits(&n, 'E'));
	assert_true(milter_nego_wants_macro(&n, 'M', "{mail_addr}"));
	assert_true(milter_nego_wants_macro(&n, 'M', "i"));
	assert_true(milter_nego_wants_macro(&n, 'M', "j"));
	assert_false(milter_nego_wants_macro(&n, 'M', "{auth_authen}"));
	assert_false(milter_nego_wants_macro(&n, 'M', "{mail"));
	assert_true(milter_nego_wants_macro(&n, 'R', "{auth_authen}"));   /* no list: all */
	/* what we did not offer is dropped; a later version speaks ours */
	static const char v9[] = "\0\0\0\x09\0\0\0\x03\0\0\0\x30";
	assert_true(milter_decode('O', (const unsigned char *)v9, sizeof(v9) - 1, &ev, err, sizeof(err)));
	assert_true(milter_negotiate(&ev, MILTER_F_ADDHDRS, MILTER_P_NOHDRS, &n, err, sizeof(err)));
	assert_int_equal(n.version, 6);
	assert_int_equal(n.actions, MILTER_F_ADDHDRS);
	assert_int_equal(n.protocol, MILTER_P_NOHDRS);
	assert_false(milter_nego_sends(&n, 'L'));
	assert_true(milter_nego_sends(&n, 'B'));
	/* not an OPTNEG */
	assert_true(milter_decode('c', NULL, 0, &ev, err, sizeof(err)));
	assert_false(milter_negotiate(&ev, MILTER_F_ALL, MILTER_P_OFFERED, &n, err, sizeof(err)));
	assert_non_null(strstr(err, "answered continue"));
	uint32_t no, nr;
	milter_step_flags('T', &no, &nr);
	assert_int_equal(no, MILTER_P_NODATA);
	assert_int_equal(nr, MILTER_P_NR_DATA);
	milter_step_flags('Q', &no, &nr);
	assert_int_equal(no | nr, 0);
}

/* --- the reader ---------------------------------------------------------------------- */

static void test_reader_framing(void **state)
{
	(void)state;
	struct milter_reader r;
	assert_true(milter_reader_init(&r));
	/* three packets in one stream, fed one octet at a time and then all at once */
	static const char stream[] = "\0\0\0\x01p" "\0\0\0\x0chX-Spam\0yes\0" "\0\0\0\x01" "c";
	const size_t n = sizeof(stream) - 1;
	enum milter_ev_kind want[] = { MILTER_EV_PROGRESS, MILTER_EV_ADDHEADER, MILTER_EV_CONTINUE };
	size_t got = 0;
	struct milter_event ev;
	char err[256];
	for (size_t i = 0; i < n; i++) {
		size_t used;
		enum milter_rd rd = milter_reader_feed(&r, stream + i, 1, &used, &ev, err, sizeof(err));
		assert_int_equal(used, 1);
		assert_int_not_equal(rd, MILTER_RD_ERROR);
		if (rd == MILTER_RD_EVENT)
			assert_int_equal(ev.kind, want[got++]);
	}
	assert_int_equal(got, 3);
	got = 0;
	size_t pos = 0;
	while (pos < n) {
		size_t used;
		enum milter_rd rd = milter_reader_feed(&r, stream + pos, n - pos, &used, &ev, err, sizeof(err));
		pos += used;
		if (rd == MILTER_RD_EVENT) {
			assert_int_equal(ev.kind, want[got++]);
			if (ev.kind == MILTER_EV_ADDHEADER)
				assert_string_equal(ev.value, "yes");
		} else
			assert_int_equal(rd, MILTER_RD_MORE);
	}
	assert_int_equal(got, 3);
	milter_reader_free(&r);
}

struct stream_case {
	struct bytes data;
	const char *words;
};

static const struct stream_case broken[] = {
	{ B("\0\0\0\0"), "length 0" },
	{ B("\0\x01\0\x01"), "65537 octets (over the 64 KiB limit)" },
	{ B("\xff\xff\xff\xff"), "over the 64 KiB limit" },
	{ B("\0\0\0\x02Zx"), "unknown reply 'Z'" },
	{ B("\0\0\0\x03q\0x"), "after the end of the quarantine reason" },
	{ B("HTTP/1.1 400 Bad Request\r\n"), "over the 64 KiB limit" },
};

static void test_reader_broken(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		struct milter_reader r;
		assert_true(milter_reader_init(&r));
		struct milter_event ev;
		char err[256] = "";
		size_t used;
		enum milter_rd rd = milter_reader_feed(&r, broken[i].data.p, broken[i].data.n, &used, &ev, err,
			sizeof(err));
		assert_int_equal(rd, MILTER_RD_ERROR);
		if (!strstr(err, broken[i].words))
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, broken[i].words);
		/* broken for good */
		assert_int_equal(milter_reader_feed(&r, "\0\0\0\x01" "c", 5, &used, &ev, err, sizeof(err)),
			MILTER_RD_ERROR);
		milter_reader_free(&r);
	}
}

static void test_reader_truncated_and_largest(void **state)
{
	(void)state;
	struct milter_reader r;
	assert_true(milter_reader_init(&r));
	struct milter_event ev;
	char err[256];
	size_t used;
	/* a header cut short stays "more" */
	assert_int_equal(milter_reader_feed(&r, "\0\0\0\x0chX-Sp", 9, &used, &ev, err, sizeof(err)), MILTER_RD_MORE);
	assert_int_equal(used, 9);
	milter_reader_free(&r);
	/* the largest packet a filter may send: REPLBODY of 65535 octets */
	assert_true(milter_reader_init(&r));
	unsigned char *big = calloc(1, 4 + 65536);
	big[1] = 0x01;   /* 65536 */
	big[4] = 'b';
	memset(big + 5, 'x', 65535);
	assert_int_equal(milter_reader_feed(&r, big, 4 + 65536, &used, &ev, err, sizeof(err)), MILTER_RD_EVENT);
	assert_int_equal(ev.kind, MILTER_EV_REPLBODY);
	assert_int_equal(ev.len, 65535);
	assert_int_equal(ev.data[65534], 'x');
	free(big);
	milter_reader_free(&r);
}

struct sock_case {
	const char *spec;
	bool ok, is_unix;
	const char *where;     /* path or host */
	unsigned port;
};

static const struct sock_case socks[] = {
	{ "unix:/run/rspamd/milter.sock", true, true, "/run/rspamd/milter.sock", 0 },
	{ "local:/var/run/f.sock", true, true, "/var/run/f.sock", 0 },
	{ "/run/opendkim.sock", true, true, "/run/opendkim.sock", 0 },
	{ "inet:127.0.0.1:11332", true, false, "127.0.0.1", 11332 },
	{ "inet:localhost:8891", true, false, "localhost", 8891 },
	{ "inet:8891@127.0.0.1", true, false, "127.0.0.1", 8891 },
	{ "inet6:[::1]:8891", true, false, "::1", 8891 },
	{ "inet6:8891@::1", true, false, "::1", 8891 },
	{ "inet6:2001:db8::1:25", true, false, "2001:db8::1", 25 },
	{ "unix:relative.sock", false, false, NULL, 0 },
	{ "unix:", false, false, NULL, 0 },
	{ "inet:127.0.0.1", false, false, NULL, 0 },
	{ "inet:127.0.0.1:0", false, false, NULL, 0 },
	{ "inet:127.0.0.1:65536", false, false, NULL, 0 },
	{ "inet:127.0.0.1:25x", false, false, NULL, 0 },
	{ "inet::25", false, false, NULL, 0 },
	{ "inet:::1:25", false, false, NULL, 0 },
	{ "inet6:[::1]25", false, false, NULL, 0 },
	{ "tcp:127.0.0.1:25", false, false, NULL, 0 },
	{ "", false, false, NULL, 0 },
};

static void test_socket_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++) {
		const struct sock_case *t = &socks[i];
		struct milter_socket s;
		char err[256] = "";
		bool ok = milter_socket_parse(t->spec, &s, err, sizeof(err));
		if (ok != t->ok)
			fail_msg("'%s': %s", t->spec, ok ? "parsed" : err);
		if (!ok) {
			assert_true(err[0] != '\0');
			continue;
		}
		assert_int_equal(s.is_unix, t->is_unix);
		assert_string_equal(t->is_unix ? s.path : s.host, t->where);
		assert_int_equal(s.port, t->port);
	}
	char longpath[200] = "unix:/";
	memset(longpath + 6, 'a', 150);
	struct milter_socket s;
	char err[256];
	assert_false(milter_socket_parse(longpath, &s, err, sizeof(err)));
	assert_non_null(strstr(err, "at most 107 octets"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encoders),
		cmocka_unit_test(test_bare_commands),
		cmocka_unit_test(test_encoder_bounds),
		cmocka_unit_test(test_replies_decoded),
		cmocka_unit_test(test_replbody),
		cmocka_unit_test(test_replies_refused),
		cmocka_unit_test(test_optneg_reply),
		cmocka_unit_test(test_reply_codes),
		cmocka_unit_test(test_negotiation),
		cmocka_unit_test(test_reader_framing),
		cmocka_unit_test(test_reader_broken),
		cmocka_unit_test(test_reader_truncated_and_largest),
		cmocka_unit_test(test_socket_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
