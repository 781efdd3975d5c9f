/* fuzz_imap_parse.c - the IMAP command parser fed hostile input in pieces (the first
 * byte chooses the piece size and UTF8=ACCEPT, the second whether raw lines are
 * asked for), every parsed command walked to its leaves (sequence ranges ordered,
 * search trees within their depth, literals within bounds, LIST-EXTENDED's options
 * as RFC 5258 allows them), every error's words
 * one printable line; and modified UTF-7: what decodes re-encodes to a name that
 * decodes to the same text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parse.h"
#include "imap/reply.h"
#include "util/buf.h"

static void die(const char *why)
{
	fprintf(stderr, "violation: %s\n", why);
	abort();
}

static void check_set(const struct imap_seqset *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->r[i].lo > s->r[i].hi || s->r[i].lo == 0)
			die("sequence range out of order or 0");
}

static void check_key(const struct imap_search_key *k, unsigned depth)
{
	if (depth > IMAP_DEPTH_MAX + 1)
		die("search key nested too deep");
	if (k->op == SK_NOT && k->n_child != 1)
		die("NOT without one child");
	if (k->op == SK_OR && k->n_child != 2)
		die("OR without two children");
	check_set(&k->set);
	for (size_t i = 0; i < k->n_child; i++)
		check_key(&k->child[i], depth + 1);
}

static void check_cmd(const struct imap_cmd *c)
{
	if (!c->tag[0] || strlen(c->tag) > IMAP_TAG_MAX)
		die("bad tag");
	if (c->name <= IMAP_CMD_NONE || c->name >= IMAP_CMD_COUNT)
		die("bad command name");
	check_set(&c->set);
	for (size_t i = 0; i < c->fetch.n; i++)
		if (c->fetch.items[i].sec.n_part > 16)
			die("section too deep");
	if (c->search.key)
		check_key(c->search.key, 0);
	if (c->append.len > IMAP_APPEND_LITERAL_MAX)
		die("APPEND literal over its bound");
	if ((c->name == IMAP_CMD_LIST || c->name == IMAP_CMD_LSUB) && (!c->list.reference || !c->list.n_patterns))
		die("LIST without a reference or a pattern");
	for (size_t i = 0; i < c->list.n_patterns; i++)
		if (!c->list.patterns[i])
			die("LIST pattern missing");
	unsigned sel = c->list.select_opts, alone = IMAP_LIST_SEL_RECURSIVEMATCH | IMAP_LIST_SEL_REMOTE;
	if ((sel & IMAP_LIST_SEL_RECURSIVEMATCH) && !(sel & ~alone))
		die("RECURSIVEMATCH accepted alone (RFC 5258 §3)");
	if ((c->list.return_opts & IMAP_LIST_RET_STATUS) && !c->list.status_items)
		die("RETURN (STATUS) without items");
	struct buf b;
	buf_init(&b, 1 << 20);
	if (c->mailbox && !imap_write_mailbox(&b, c->mailbox, false))
		die("a decoded mailbox name does not encode");
	buf_free(&b);
}

static void check_error(const struct imap_parse_error *e)
{
	for (const char *p = e->text; *p; p++)
		if ((unsigned char)*p < 0x20)
			die("control character in error words");
	if (!e->text[0])
		die("error without words");
}

static void mutf7_roundtrip(const uint8_t *data, size_t size)
{
	char dec[1024], enc[3200], dec2[1024];
	if (size > 300 || !imap_mutf7_decode((const char *)data, size, dec, sizeof(dec)))
		return;
	if (!imap_mutf7_encode(dec, strlen(dec), enc, sizeof(enc)))
		die("decoded name does not encode");
	if (!imap_mutf7_decode(enc, strlen(enc), dec2, sizeof(dec2)) || strcmp(dec, dec2) != 0)
		die("modified UTF-7 round trip differs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t piece = (data[0] & 0x3f) + 1;
	bool utf8 = data[0] & 0x40, raw = data[1] & 1;
	data += 2;
	size -= 2;
	mutf7_roundtrip(data, size);
	struct imap_parser *p = imap_parser_new();
	imap_parser_set_utf8(p, utf8);
	if (raw)
		imap_parser_expect_line(p);
	size_t off = 0;
	unsigned stuck = 0;
	while (off < size) {
		size_t n = size - off < piece ? size - off : piece;
		enum imap_event ev;
		size_t used = imap_parser_feed(p, data + off, n, &ev);
		if (used > n)
			die("consumed more than given");
		off += used;
		stuck = used ? 0 : stuck + 1;
		if (stuck > 2)
			die("parser takes nothing");
		if (ev == IMAP_EV_COMMAND) {
			struct imap_cmd *c = imap_parser_take(p);
			check_cmd(c);
			imap_cmd_free(&c);
		} else if (ev == IMAP_EV_ERROR) {
			check_error(imap_parser_error(p));
			if (imap_parser_error(p)->fatal)
				break;
		}
	}
	imap_parser_free(&p);
	return 0;
}
