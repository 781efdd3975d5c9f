/* fuzz_imap_fetch.c - libFuzzer harness for the message commands' rendering of a
 * hostile message: the input is a message as stored; every FETCH item (ENVELOPE,
 * BODYSTRUCTURE, BODY[1.2.HEADER.FIELDS ...], BINARY[..], partials, RFC822.*) is rendered from it
 * and every content SEARCH key evaluated on it (imap/fetch_render.c, search_eval.c
 * over msg/mime.c).  Checks what a response promises whatever the message: one line
 * "* 1 FETCH (" ... ")\r\n" whose literals hold exactly the octets they announce. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/msgcmd.h"
#include "imap/parse.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static struct imap_cmd *fetch_cmd, *search_cmd;

static struct imap_cmd *parse(const char *text)
{
	struct imap_parser *p = imap_parser_new();
	CHECK(p && imap_parse_command(p, text, strlen(text)) == IMAP_EV_COMMAND);
	struct imap_cmd *c = imap_parser_take(p);
	imap_parser_free(&p);
	return c;
}

/* The response is "* 1 FETCH (...)\r\n" with every {n} literal followed by n octets. */
static void check_response(const struct buf *out)
{
	CHECK(out->len > 14 && memcmp(out->data, "* 1 FETCH (", 11) == 0);
	size_t k = 11;
	while (k < out->len) {
		if (out->data[k] == '"') {
			/* a quoted string: no CR or LF inside, backslash escapes only \\ and \" */
			for (k++; k < out->len && out->data[k] != '"'; k++) {
				CHECK(out->data[k] != '\r' && out->data[k] != '\n');
				if (out->data[k] == '\\') {
					k++;
					CHECK(k < out->len && (out->data[k] == '\\' || out->data[k] == '"'));
				}
			}
			CHECK(k < out->len);
			k++;
			continue;
		}
		if (out->data[k] == '~' && k + 1 < out->len && out->data[k + 1] == '{')
			k++;   /* literal8 (RFC 3516) */
		if (out->data[k] == '{') {
			char *end;
			unsigned long long n = strtoull(out->data + k + 1, &end, 10);
			CHECK(end[0] == '}' && end[1] == '\r' && end[2] == '\n');
			k = (size_t)(end + 3 - out->data);
			CHECK(n <= out->len - k);
			k += n;
			continue;
		}
		if (out->data[k] == '\r') {
			CHECK(k + 2 == out->len && out->data[k + 1] == '\n' && out->data[k - 1] == ')');
			return;
		}
		k++;
	}
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fetch_cmd) {
		fetch_cmd = parse("f FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY UID "
			"BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT]<3.40> BODY.PEEK[1] BODY.PEEK[1.MIME] "
			"BODY.PEEK[2.1.HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[1.2.3.HEADER.FIELDS.NOT (TO)] "
			"BODY.PEEK[2.TEXT]<0.10> RFC822.HEADER BINARY.PEEK[1] BINARY.PEEK[2]<1.5> BINARY.SIZE[1])");
		search_cmd = parse("s SEARCH CHARSET UTF-8 OR OR (FROM a SUBJECT b) (HEADER X-Y z BODY c) "
			"OR TEXT \"\xc3\xa9t\xc3\xa9\" (SENTSINCE 1-Jan-2000 NOT SENTON 2-Feb-2020 CC \"\")");
	}
	struct folder_msg m = { .uid = 1, .modseq = 1, .flags = FOLDER_SEEN, .internaldate = 1700000000,
		.size = size };
	struct imap_msgview v;
	imap_msgview_init(&v, NULL, 0);
	v.m = &m;
	v.raw = size ? (const char *)data : "";
	v.raw_len = size;
	v.raw_tried = true;
	struct imap_fetch_req r = { .items = fetch_cmd->fetch.items, .n_items = fetch_cmd->fetch.n, .uid = true,
		.modseq = true };
	struct buf out;
	buf_init(&out, 64u << 20);
	imap_fetch_render(&r, &v, 1, &out);
	CHECK(!out.truncated);
	check_response(&out);
	buf_free(&out);
	struct imap_search_env env = { .seq = 1, .max_seq = 1, .max_uid = 1 };
	(void)imap_search_match(search_cmd->search.key, &v, &env);
	imap_msgview_release(&v);
	return 0;
}
