/* test_imap_parse.c - the IMAP command parser as tables: each row is what a client
 * sends (line ends and literals included) and what the parser must make of it, as
 * a canonical rendering of the struct imap_cmd (or "ERR ..." with the reply's words,
 * or "+" for each continuation request).  Every row is fed whole, byte by byte, and
 * in pieces of 7; all three must give the same events.  Modified UTF-7 and the dates
 * have tables of their own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parse.h"
#include "imap/reply.h"
#include "util/buf.h"

static void seqset(struct buf *b, const struct imap_seqset *s)
{
	if (s->saved)
		buf_appends(b, "$");
	for (size_t i = 0; i < s->n; i++) {
		if (i)
			buf_appendc(b, ',');
		if (s->r[i].lo == IMAP_SEQ_STAR)
			buf_appendc(b, '*');
		else
			buf_printf(b, "%u", s->r[i].lo);
		if (s->r[i].hi != s->r[i].lo) {
			if (s->r[i].hi == IMAP_SEQ_STAR)
				buf_appends(b, ":*");
			else
				buf_printf(b, ":%u", s->r[i].hi);
		}
	}
}

static void strlist(struct buf *b, char **v, size_t n)
{
	buf_appendc(b, '(');
	for (size_t i = 0; i < n; i++)
		buf_printf(b, "%s%s", i ? " " : "", v[i] ? v[i] : "NIL");
	buf_appendc(b, ')');
}

static const char *const fa_names[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE",
	"BODY", "UID", "MODSEQ", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "BODY", "BINARY", "BINARY.SIZE" };
static const char *const sec_names[] = { "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME" };

static void fetch_items(struct buf *b, const struct imap_cmd *c)
{
	for (size_t i = 0; i < c->fetch.n; i++) {
		const struct imap_fetch_item *it = &c->fetch.items[i];
		buf_printf(b, " %s%s", fa_names[it->att], it->peek ? ".PEEK" : "");
		if (it->att == FA_BODY_SECTION || it->att == FA_BINARY_SECTION || it->att == FA_BINARY_SIZE) {
			buf_appendc(b, '[');
			for (size_t k = 0; k < it->sec.n_part; k++)
				buf_printf(b, "%s%u", k ? "." : "", it->sec.part[k]);
			buf_printf(b, "%s%s", it->sec.n_part && it->sec.kind ? "." : "", sec_names[it->sec.kind]);
			if (it->sec.n_fields)
				strlist(b, it->sec.fields, it->sec.n_fields);
			buf_appendc(b, ']');
		}
		if (it->partial)
			buf_printf(b, "<%u.%u>", it->offset, it->length);
	}
	if (c->fetch.changedsince_given)
		buf_printf(b, " changedsince=%llu", (unsigned long long)c->fetch.changedsince);
	if (c->fetch.vanished)
		buf_appends(b, " vanished");
}

static const char *const sk_names[] = { "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT",
	"SEEN", "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN", "KEYWORD", "UNKEYWORD", "BCC", "CC", "FROM",
	"SUBJECT", "TO", "BODY", "TEXT", "HEADER", "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE", "LARGER",
	"SMALLER", "SET", "UID", "MODSEQ", "NOT", "OR", "AND" };

static void search_key(struct buf *b, const struct imap_search_key *k)
{
	buf_appends(b, sk_names[k->op]);
	if (k->str)
		buf_printf(b, ":%s", k->str);
	if (k->str2)
		buf_printf(b, ":%s", k->str2);
	if (k->op >= SK_BEFORE && k->op <= SK_SENTSINCE)
		buf_printf(b, ":%lld", (long long)k->date);
	if (k->op == SK_LARGER || k->op == SK_SMALLER || k->op == SK_MODSEQ)
		buf_printf(b, ":%llu", (unsigned long long)k->num);
	if (k->op == SK_SEQSET || k->op == SK_UID) {
		buf_appendc(b, ':');
		seqset(b, &k->set);
	}
	if (k->n_child) {
		buf_appendc(b, '(');
		for (size_t i = 0; i < k->n_child; i++) {
			if (i)
				buf_appendc(b, ' ');
			search_key(b, &k->child[i]);
		}
		buf_appendc(b, ')');
	}
}

static void describe_args(struct buf *b, const struct imap_cmd *c)
{
	if (c->mailbox)
		buf_printf(b, " mbox=%s", c->mailbox);
	if (c->mailbox2)
		buf_printf(b, " to=%s", c->mailbox2);
	if (c->set.n || c->set.saved) {
		buf_appends(b, " set=");
		seqset(b, &c->set);
	}
	if (c->name == IMAP_CMD_FETCH)
		fetch_items(b, c);
	if (c->name == IMAP_CMD_STORE) {
		buf_printf(b, " %s%s", c->store.op == IMAP_STORE_ADD ? "+" : c->store.op == IMAP_STORE_REMOVE ? "-" : "=",
			c->store.silent ? "silent" : "");
		strlist(b, c->store.flags, c->store.n_flags);
		if (c->store.unchangedsince_given)
			buf_printf(b, " unchangedsince=%llu", (unsigned long long)c->store.unchangedsince);
	}
	if (c->name == IMAP_CMD_SEARCH) {
		if (c->search.return_given)
			buf_printf(b, " ret=%u", c->search.ret);
		if (c->search.charset)
			buf_printf(b, " charset=%s", c->search.charset);
		buf_appendc(b, ' ');
		search_key(b, c->search.key);
	}
	if (c->name == IMAP_CMD_APPEND) {
		buf_appends(b, " flags=");
		strlist(b, c->append.flags, c->append.n_flags);
		if (c->append.date_given)
			buf_printf(b, " date=%lld", (long long)c->append.date);
		buf_printf(b, " len=%zu data=%.*s", c->append.len, (int)(c->append.len < 20 ? c->append.len : 20),
			c->append.data);
	}
}

static void describe_more(struct buf *b, const struct imap_cmd *c)
{
	if (c->name == IMAP_CMD_LIST || c->name == IMAP_CMD_LSUB) {
		buf_printf(b, " ref=%s pats=", c->list.reference);
		strlist(b, c->list.patterns, c->list.n_patterns);
		if (c->list.extended)
			buf_printf(b, " ext sel=%u ret=%u status=%u", c->list.select_opts, c->list.return_opts,
				c->list.status_items);
	}
	if (c->name == IMAP_CMD_STATUS)
		buf_printf(b, " items=%u", c->status_items);
	if (c->name == IMAP_CMD_ENABLE)
		strlist(b, c->enable.caps, c->enable.n);
	if (c->name == IMAP_CMD_ID)
		strlist(b, c->id.pairs, c->id.n_pairs);
	if (c->select.condstore)
		buf_appends(b, " condstore");
	if (c->select.qresync) {
		buf_printf(b, " qresync=%u,%llu", c->select.uidvalidity, (unsigned long long)c->select.modseq);
		if (c->select.known_uids_given) {
			buf_appends(b, " known=");
			seqset(b, &c->select.known_uids);
		}
		if (c->select.match_given) {
			buf_appends(b, " match=");
			seqset(b, &c->select.seq_match);
			buf_appendc(b, '/');
			seqset(b, &c->select.uid_match);
		}
	}
	if (c->auth.mech)
		buf_printf(b, " mech=%s%s%s", c->auth.mech, c->auth.has_initial ? " ir=" : "",
			c->auth.has_initial ? c->auth.initial : "");
	if (c->login.user)
		buf_printf(b, " user=%s pass=%s", c->login.user, c->login.pass);
	if (c->xclient.token)
		buf_printf(b, " token=%s addr=%s login=%s", c->xclient.token, c->xclient.addr, c->xclient.login);
	if (c->quota_root)
		buf_printf(b, " root=%s", c->quota_root);
	if (c->compress)
		buf_printf(b, " %s", c->compress);
}

/* Feed `in` in pieces of `step` (0: whole); render every event into b. */
static void run(const char *in, size_t len, size_t step, struct buf *b)
{
	struct imap_parser *p = imap_parser_new();
	size_t off = 0;
	while (off < len) {
		size_t n = step && len - off > step ? step : len - off;
		size_t used = 0;
		while (used < n) {
			enum imap_event ev;
			size_t k = imap_parser_feed(p, in + off + used, n - used, &ev);
			used += k;
			if (ev == IMAP_EV_CONTINUE)
				buf_appends(b, "+|");
			if (ev == IMAP_EV_ERROR) {
				const struct imap_parse_error *e = imap_parser_error(p);
				buf_printf(b, "ERR %s%s%s%s %s%s|", e->tag[0] ? e->tag : "*", e->no ? " NO" : " BAD",
					e->code ? " " : "", e->code ? e->code : "", e->text, e->fatal ? " FATAL" : "");
				if (e->fatal)
					goto done;
			}
			if (ev == IMAP_EV_COMMAND) {
				struct imap_cmd *c = imap_parser_take(p);
				buf_printf(b, "%s %s%s", c->tag, c->uid ? "UID " : "", imap_cmd_label(c->name));
				describe_args(b, c);
				describe_more(b, c);
				buf_appendc(b, '|');
				imap_cmd_free(&c);
			}
			if (k == 0 && ev == IMAP_EV_MORE)
				break;
		}
		off += n;
	}
done:
	imap_parser_free(&p);
}

struct row { const char *in; const char *want; };

static const struct row rows[] = {
	{ "a1 CAPABILITY\r\n", "a1 CAPABILITY|" },
	{ "a1 noop\r\nA2 LOGOUT\n", "a1 NOOP|A2 LOGOUT|" },
	{ "x LOGIN alice \"se\\\"cret\"\r\n", "x LOGIN user=alice pass=se\"cret|" },
	{ "x LOGIN {5}\r\nalice {6}\r\nsecret\r\n", "+|+|x LOGIN user=alice pass=secret|" },
	{ "x LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n", "x LOGIN user=alice pass=secret|" },
	{ "x LOGIN \"a {5}\" b\r\n", "x LOGIN user=a {5} pass=b|" },
	{ "x XCLIENT node1.1700000000.AbC-_d 127.0.0.5 bob@example.test\r\n",
	  "x XCLIENT token=node1.1700000000.AbC-_d addr=127.0.0.5 login=bob@example.test|" },
	{ "x AUTHENTICATE plain\r\n", "x AUTHENTICATE mech=PLAIN|" },
	{ "x AUTHENTICATE PLAIN AGEAYg==\r\n", "x AUTHENTICATE mech=PLAIN ir=AGEAYg==|" },
	{ "x AUTHENTICATE PLAIN =\r\n", "x AUTHENTICATE mech=PLAIN ir=|" },
	{ "x SELECT inbox\r\n", "x SELECT mbox=INBOX|" },
	{ "x SELECT Inbox/Sub\r\n", "x SELECT mbox=INBOX/Sub|" },
	{ "x EXAMINE \"Sent\" (CONDSTORE)\r\n", "x EXAMINE mbox=Sent condstore|" },
	{ "x SELECT A (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
	  "x SELECT mbox=A qresync=67890007,20050715194045000 known=41,43:211,214:541|" },
	{ "x SELECT A (QRESYNC (1 2 1:10 (1:5 10:20)))\r\n", "x SELECT mbox=A qresync=1,2 known=1:10 match=1:5/10:20|" },
	{ "x SELECT A (QRESYNC (1 2 (1:5 10:20)))\r\n", "x SELECT mbox=A qresync=1,2 match=1:5/10:20|" },
	{ "x CREATE &ZeVnLIqe-\r\n", "x CREATE mbox=\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e|" },
	{ "x RENAME a \"b c\"\r\n", "x RENAME mbox=a to=b c|" },
	{ "x DELETE Trash\r\nx SUBSCRIBE Trash\r\nx UNSUBSCRIBE Trash\r\n",
	  "x DELETE mbox=Trash|x SUBSCRIBE mbox=Trash|x UNSUBSCRIBE mbox=Trash|" },
	{ "x LIST \"\" *\r\n", "x LIST ref= pats=(*)|" },
	{ "x LIST \"\" %/a]b\r\n", "x LIST ref= pats=(%/a]b)|" },
	{ "x LSUB \"\" \"*\"\r\n", "x LSUB ref= pats=(*)|" },
	{ "x LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX* Sent) RETURN (CHILDREN SPECIAL-USE)\r\n",
	  "x LIST ref= pats=(INBOX* Sent) ext sel=5 ret=6 status=0|" },
	{ "x LIST \"\" * RETURN (STATUS (MESSAGES UNSEEN))\r\n", "x LIST ref= pats=(*) ext sel=0 ret=8 status=17|" },
	{ "x LIST (SPECIAL-USE) \"\" *\r\n", "x LIST ref= pats=(*) ext sel=8 ret=0 status=0|" },
	/* LIST-EXTENDED (RFC 5258 §6): empty option lists, REMOTE, several patterns, STATUS with CHILDREN */
	{ "x LIST () \"\" (%) RETURN ()\r\n", "x LIST ref= pats=(%) ext sel=0 ret=0 status=0|" },
	{ "x LIST (REMOTE SUBSCRIBED) Foo/ (% \"B r\" *x) RETURN (SUBSCRIBED CHILDREN STATUS (UIDNEXT HIGHESTMODSEQ))\r\n",
	  "x LIST ref=Foo/ pats=(% B r *x) ext sel=3 ret=11 status=36|" },
	{ "x list (special-use recursivematch) \"\" * return (special-use)\r\n",
	  "x LIST ref= pats=(*) ext sel=12 ret=4 status=0|" },
	{ "x LIST \"\" (INBOX Sent)\r\n", "x LIST ref= pats=(INBOX Sent) ext sel=0 ret=0 status=0|" },
	{ "x STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)\r\n", "x STATUS mbox=INBOX items=63|" },
	{ "x APPEND Sent (\\Seen $Forwarded) \" 1-Dec-2026 18:25:00 +0100\" {5}\r\nhello\r\n",
	  "+|x APPEND mbox=Sent flags=(\\Seen $Forwarded) date=1796145900 len=5 data=hello|" },
	{ "x APPEND Drafts {3+}\r\na\0b\r\n", "x APPEND mbox=Drafts flags=() len=3 data=a|" },
	{ "x APPEND Drafts () {0}\r\n\r\n", "+|x APPEND mbox=Drafts flags=() len=0 data=|" },
	{ "x ENABLE CONDSTORE qresync\r\n", "x ENABLE(CONDSTORE QRESYNC)|" },
	{ "x ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n", "x ID(name Thunderbird version NIL)|" },
	{ "x ID NIL\r\n", "x ID()|" },
	{ "x NAMESPACE\r\nx IDLE\r\nx CHECK\r\nx CLOSE\r\nx UNSELECT\r\nx EXPUNGE\r\n",
	  "x NAMESPACE|x IDLE|x CHECK|x CLOSE|x UNSELECT|x EXPUNGE|" },
	{ "x UID EXPUNGE 3:5\r\n", "x UID EXPUNGE set=3:5|" },
	{ "x GETQUOTAROOT INBOX\r\nx GETQUOTA \"\"\r\n", "x GETQUOTAROOT mbox=INBOX|x GETQUOTA root=|" },
	{ "x SETQUOTA \"\" (STORAGE 512)\r\n", "x SETQUOTA root=|" },
	{ "x COMPRESS deflate\r\n", "x COMPRESS DEFLATE|" },
	{ "x STARTTLS\r\n", "x STARTTLS|" },
	/* sequence sets */
	{ "x FETCH 1:*,3,7:5 FLAGS\r\n", "x FETCH set=1:*,3,5:7 FLAGS|" },
	{ "x UID FETCH 3:4294967295 FLAGS\r\n", "x UID FETCH set=3:4294967294 FLAGS|" },   /* interimap's range */
	{ "x FETCH *:4 UID\r\n", "x FETCH set=4:* UID|" },
	{ "x FETCH * UID\r\n", "x FETCH set=* UID|" },
	{ "x FETCH $ UID\r\n", "x FETCH set=$ UID|" },
	/* FETCH items and macros */
	{ "x FETCH 1 ALL\r\n", "x FETCH set=1 FLAGS INTERNALDATE RFC822.SIZE ENVELOPE|" },
	{ "x FETCH 1 fast\r\n", "x FETCH set=1 FLAGS INTERNALDATE RFC822.SIZE|" },
	{ "x FETCH 1 FULL\r\n", "x FETCH set=1 FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY|" },
	{ "x UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (From To \"Subject\")]<0.100>)\r\n",
	  "x UID FETCH set=1:* UID FLAGS BODY.PEEK[HEADER.FIELDS(FROM TO SUBJECT)]<0.100>|" },
	{ "x FETCH 2 (BODY[] BODY[1.2.MIME] BODY[3.TEXT] BODY[HEADER] BODY[2] BODY[TEXT]<10.5>)\r\n",
	  "x FETCH set=2 BODY[] BODY[1.2.MIME] BODY[3.TEXT] BODY[HEADER] BODY[2] BODY[TEXT]<10.5>|" },
	{ "x FETCH 2 (BODY BODYSTRUCTURE ENVELOPE RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE INTERNALDATE MODSEQ)\r\n",
	  "x FETCH set=2 BODY BODYSTRUCTURE ENVELOPE RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE INTERNALDATE MODSEQ|" },
	{ "x FETCH 1 (BINARY.PEEK[1]<0.10> BINARY.SIZE[2])\r\n", "x FETCH set=1 BINARY.PEEK[1]<0.10> BINARY.SIZE[2]|" },
	{ "x FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n", "x FETCH set=1:* FLAGS changedsince=12345|" },
	{ "x UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n", "x UID FETCH set=1:* FLAGS changedsince=12345 vanished|" },
	/* STORE */
	{ "x STORE 1:3 +FLAGS (\\Deleted)\r\n", "x STORE set=1:3 +(\\Deleted)|" },
	{ "x STORE 1 -FLAGS.SILENT \\Seen $Label1\r\n", "x STORE set=1 -silent(\\Seen $Label1)|" },
	{ "x UID STORE 5 (UNCHANGEDSINCE 320162338) FLAGS ()\r\n", "x UID STORE set=5 =() unchangedsince=320162338|" },
	{ "x COPY 1:2 Trash\r\nx UID MOVE 4 \"Archive\"\r\n", "x COPY mbox=Trash set=1:2|x UID MOVE mbox=Archive set=4|" },
	/* SEARCH */
	{ "x SEARCH ALL\r\n", "x SEARCH AND(ALL)|" },
	{ "x UID SEARCH CHARSET UTF-8 SUBJECT {4}\r\n\xc3\xa9t\xc3\r\n", "+|x UID SEARCH charset=UTF-8 AND(SUBJECT:\xc3\xa9t\xc3)|" },
	{ "x SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
	  "x SEARCH AND(FLAGGED SINCE:760060800 NOT(FROM:Smith))|" },
	{ "x SEARCH OR (SEEN UNSEEN) 2:4 UID 1:* HEADER X-Foo bar\r\n",
	  "x SEARCH AND(OR(AND(SEEN UNSEEN) SET:2:4) UID:1:* HEADER:X-Foo:bar)|" },
	{ "x SEARCH RETURN (MIN COUNT) MODSEQ \"/flags/\\\\draft\" all 620162338\r\n",
	  "x SEARCH ret=9 AND(MODSEQ:/flags/\\draft:all:620162338)|" },
	{ "x SEARCH RETURN () LARGER 100 SMALLER 9 KEYWORD $Junk SENTON \"2-Jan-2000\"\r\n",
	  "x SEARCH ret=4 AND(LARGER:100 SMALLER:9 KEYWORD:$Junk SENTON:946771200)|" },
	{ "x SEARCH ANSWERED DELETED DRAFT NEW OLD RECENT UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN "
	  "UNKEYWORD k BCC b CC c TO t BODY y TEXT z BEFORE 1-Jan-1970 ON 1-Jan-1970 SENTBEFORE 1-Jan-1970 "
	  "SENTSINCE 1-Jan-1970 MODSEQ 5 $\r\n",
	  "x SEARCH AND(ANSWERED DELETED DRAFT NEW OLD RECENT UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN UNKEYWORD:k "
	  "BCC:b CC:c TO:t BODY:y TEXT:z BEFORE:0 ON:0 SENTBEFORE:0 SENTSINCE:0 MODSEQ:5 SET:$)|" },
	/* errors: words, tagged when the tag was readable */
	{ "\r\n", "ERR * BAD Empty command line: send a tag, a command and its arguments|" },
	{ "a1\r\n", "ERR a1 BAD Expected a command name after the tag|" },
	{ "+x NOOP\r\n", "ERR * BAD Every command starts with a tag (letters or digits, e.g. \"a1\") and a space (RFC 3501, client commands)|" },
	{ "a1 FROB\r\n", "ERR a1 BAD Unknown command \"FROB\"|" },
	{ "a1 LIST (RECURSIVEMATCH) \"\" *\r\n",
	  "ERR a1 BAD LIST: RECURSIVEMATCH needs another selection option, such as SUBSCRIBED (RFC 5258 §3)|" },
	{ "a1 LIST (REMOTE RECURSIVEMATCH) \"\" *\r\n",
	  "ERR a1 BAD LIST: RECURSIVEMATCH needs another selection option, such as SUBSCRIBED (RFC 5258 §3)|" },
	{ "a1 LIST (FOO) \"\" *\r\n", "ERR a1 BAD LIST: unknown LIST selection option at \"FOO) \\x22\\x22 *\"|" },
	{ "a1 LIST \"\" * RETURN (BAR)\r\n", "ERR a1 BAD LIST: unknown LIST return option at \"BAR)\"|" },
	{ "a1 LIST \"\" * RETURN (STATUS (FOO))\r\n",
	  "ERR a1 BAD LIST: unknown STATUS item at \"FOO))\" (MESSAGES, RECENT, UIDNEXT, UIDVALIDITY, UNSEEN, HIGHESTMODSEQ, SIZE are known)|" },
	{ "a1 LIST \"\" * FOO\r\n", "ERR a1 BAD LIST: expected RETURN (...) after the pattern|" },
	{ "a1 APPEND INBOX UTF8 (~{1}\r\na)\r\n", "+|ERR a1 BAD APPEND: APPEND UTF8 needs ENABLE UTF8=ACCEPT first (RFC 6855 §4)|" },
	{ "a1 FETCH 4294967296 FLAGS\r\n", "ERR a1 BAD FETCH: in the message set: a number is too large|" },
	{ "a1 UID LIST\r\n", "ERR a1 BAD UID must be followed by FETCH, SEARCH, STORE, COPY, MOVE or EXPUNGE|" },
	{ "a1 NOOP extra\r\n", "ERR a1 BAD NOOP: unexpected \" extra\" after the arguments|" },
	{ "a1 FETCH 0 FLAGS\r\n", "ERR a1 BAD FETCH: in the message set: message numbers start at 1 (0 is not one)|" },
	{ "a1 FETCH 1 (FLAGS FOO)\r\n", "ERR a1 BAD FETCH: unknown FETCH item at \"FOO)\" (RFC 3501 §6.4.5)|" },
	{ "a1 FETCH 1 FLAGS (VANISHED)\r\n",
	  "ERR a1 BAD FETCH: VANISHED is only for UID FETCH with CHANGEDSINCE (RFC 7162 §3.2.6)|" },
	{ "a1 SEARCH FOO\r\n", "ERR a1 BAD SEARCH: unknown search key at \"FOO\" (RFC 3501 §6.4.4)|" },
	{ "a1 SEARCH SINCE 31-Feb-2020\r\n", "ERR a1 BAD SEARCH: a date looks like 1-Dec-2026 (RFC 3501 §9)|" },
	{ "a1 LOGIN \"unterminated\r\n", "ERR a1 BAD LOGIN: in the user name: the quoted string has no closing \"|" },
	{ "a1 LOGIN a \"x\\y\"\r\n",
	  "ERR a1 BAD LOGIN: in the password: a backslash in a quoted string may only escape \" or \\|" },
	{ "a1 LOGIN {3}\r\nab\0 b\r\n", "+|ERR a1 BAD LOGIN: in the user name: a literal may not hold NUL octets (RFC 3501 §4.3)|" },
	{ "a1 CREATE &Jjo\r\n", "ERR a1 BAD CREATE: the mailbox name is not valid modified UTF-7 (RFC 3501, mailbox naming): "
	  "write \"&\" as \"&-\", other non-ASCII as &...-|" },
	{ "a1 LOGIN {70000}\r\n", "ERR a1 NO TOOBIG Literal of 70000 octets refused: at most 65536 octets in a command other "
	  "than APPEND|" },
	{ "a1 APPEND INBOX {99999999999}\r\n",
	  "ERR a1 NO TOOBIG Literal of 99999999999 octets refused: at most 67108864 octets for a message (APPEND)|" },
	{ "a1 LOGIN {70000+}\r\nxx", "ERR a1 BAD TOOBIG Literal of 70000 octets refused: at most 65536 octets in a command "
	  "other than APPEND FATAL|" },
	{ "a1 STORE 1 FLAGS.NOPE (\\Seen)\r\n",
	  "ERR a1 BAD STORE: expected FLAGS, +FLAGS or -FLAGS (optionally .SILENT) and the flags|" },
	{ "a1 APPEND INBOX \"hello\"\r\n", "ERR a1 BAD APPEND: the date-time must look like \"01-Dec-2026 18:25:00 +0000\" (RFC 3501 §9)|" },
	{ "a1 APPEND INBOX hello\r\n", "ERR a1 BAD APPEND: the message must be sent as a literal {N} (RFC 3501 §6.3.11)|" },
	{ "a1 STATUS INBOX (FOO)\r\n", "ERR a1 BAD STATUS: unknown STATUS item at \"FOO)\" (MESSAGES, RECENT, UIDNEXT, "
	  "UIDVALIDITY, UNSEEN, HIGHESTMODSEQ, SIZE are known)|" },
	{ "a1 SELECT\r\n", "ERR a1 BAD SELECT: expected a space before \"the end of the command\"|" },
	{ "a1 ENABLE\r\n", "ERR a1 BAD ENABLE: name at least one capability to enable (RFC 5161)|" },
	/* after an error the next command is read normally */
	{ "a1 FROB\r\na2 NOOP\r\n", "ERR a1 BAD Unknown command \"FROB\"|a2 NOOP|" },
};

static void test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t len = strlen(rows[i].in);
		/* rows with a NUL in them: the length runs to the final CRLF */
		if (strstr(rows[i].want, "data=a|") || strstr(rows[i].want, "NUL"))
			len += strlen(rows[i].in + len + 1) + 1;
		size_t steps[] = { 0, 1, 7 };
		struct buf whole;
		buf_init(&whole, 1 << 16);
		run(rows[i].in, len, 0, &whole);
		if (strcmp(buf_cstr(&whole), rows[i].want) != 0)
			fail_msg("row %zu: %s\n got: %s\nwant: %s", i, rows[i].in, buf_cstr(&whole), rows[i].want);
		for (size_t s = 1; s < 3; s++) {
			struct buf b;
			buf_init(&b, 1 << 16);
			run(rows[i].in, len, steps[s], &b);
			if (strcmp(buf_cstr(&b), buf_cstr(&whole)) != 0)
				fail_msg("row %zu fed by %zu: %s\n got: %s\nwant: %s", i, steps[s], rows[i].in, buf_cstr(&b),
					buf_cstr(&whole));
			buf_free(&b);
		}
		buf_free(&whole);
	}
}

/* A line over IMAP_LINE_MAX is skipped to its end and answered; the next command reads. */
static void test_long_line(void **state)
{
	(void)state;
	size_t n = IMAP_LINE_MAX + 100;
	char *in = malloc(n + 32);
	memcpy(in, "t1 LOGIN ", 9);
	memset(in + 9, 'a', n - 9);
	memcpy(in + n, "\r\nt2 NOOP\r\n", 12);
	struct buf b;
	buf_init(&b, 1 << 16);
	run(in, strlen(in), 4096, &b);
	assert_string_equal(buf_cstr(&b), "ERR t1 BAD LIMIT Command line too long: at most 65536 octets (literals not counted)|"
		"t2 NOOP|");
	free(in);
	/* a line that never ends: skipped up to IMAP_SKIP_MAX, then fatal */
	n = IMAP_SKIP_MAX + 4096;
	in = malloc(n + 1);
	memcpy(in, "t3 NOOP ", 8);
	memset(in + 8, 'b', n - 8);
	in[n] = '\0';
	buf_reset(&b);
	run(in, n, 65536, &b);
	assert_string_equal(buf_cstr(&b), "ERR t3 BAD LIMIT Command line too long: over 1048576 octets without a line end FATAL|");
	free(in);
	buf_free(&b);
}

/* Bounds: arguments and nesting. */
static void test_bounds(void **state)
{
	(void)state;
	struct buf in, b;
	buf_init(&in, 1 << 20);
	buf_appends(&in, "t SEARCH");
	for (int i = 0; i < 1200; i++)
		buf_appends(&in, " SEEN");
	buf_appends(&in, "\r\n");
	buf_init(&b, 1 << 16);
	run(in.data, in.len, 0, &b);
	assert_string_equal(buf_cstr(&b), "ERR t BAD SEARCH: too many arguments (at most 1000)|");
	buf_reset(&in);
	buf_reset(&b);
	buf_appends(&in, "t SEARCH ");
	for (int i = 0; i < 40; i++)
		buf_appends(&in, "NOT ");
	buf_appends(&in, "SEEN\r\n");
	run(in.data, in.len, 0, &b);
	assert_string_equal(buf_cstr(&b), "ERR t BAD SEARCH: nested too deep (at most 32 levels of parentheses)|");
	buf_free(&in);
	buf_free(&b);
}

/* Raw lines (AUTHENTICATE answers, DONE). */
static void test_raw_line(void **state)
{
	(void)state;
	struct imap_parser *p = imap_parser_new();
	enum imap_event ev;
	imap_parser_expect_line(p);
	const char *in = "AGEAYg==\r\nt NOOP\r\n";
	size_t used = imap_parser_feed(p, in, strlen(in), &ev);
	assert_int_equal(ev, IMAP_EV_LINE);
	size_t n;
	const char *line = imap_parser_line(p, &n);
	assert_int_equal(n, 8);
	assert_memory_equal(line, "AGEAYg==", 8);
	imap_parser_feed(p, in + used, strlen(in) - used, &ev);
	assert_int_equal(ev, IMAP_EV_COMMAND);
	struct imap_cmd *c = imap_parser_take(p);
	assert_int_equal(c->name, IMAP_CMD_NOOP);
	imap_cmd_free(&c);
	imap_parser_free(&p);
}

static void test_utf8_accept(void **state)
{
	(void)state;
	struct imap_parser *p = imap_parser_new();
	imap_parser_set_utf8(p, true);
	const char *in = "t SELECT \"Entw\xc3\xbcrfe &-\"\r\n";
	enum imap_event ev;
	imap_parser_feed(p, in, strlen(in), &ev);
	assert_int_equal(ev, IMAP_EV_COMMAND);
	struct imap_cmd *c = imap_parser_take(p);
	assert_string_equal(c->mailbox, "Entw\xc3\xbcrfe &-");
	imap_cmd_free(&c);
	/* APPEND UTF8 (~{N}) (RFC 6855 §4): the message with UTF-8 header fields */
	const char *ap = "t APPEND INBOX (\\Seen) UTF8 (~{14+}\r\nSubject: \xc3\xa9t\xc3\xa9)\r\n";
	imap_parser_feed(p, ap, strlen(ap), &ev);
	if (ev == IMAP_EV_ERROR)
		fail_msg("%s", imap_parser_error(p)->text);
	assert_int_equal(ev, IMAP_EV_COMMAND);
	c = imap_parser_take(p);
	assert_int_equal(c->append.len, 14);
	assert_memory_equal(c->append.data, "Subject: \xc3\xa9t\xc3\xa9", 14);
	imap_cmd_free(&c);
	/* quoted strings must be UTF-8 now (RFC 6855 §3) */
	const char *bad = "t SEARCH SUBJECT \"\xff\"\r\n";
	imap_parser_feed(p, bad, strlen(bad), &ev);
	assert_int_equal(ev, IMAP_EV_ERROR);
	assert_string_equal(imap_parser_error(p)->text,
		"SEARCH: in the text to search for: the quoted string is not valid UTF-8 (RFC 6855 §3)");
	imap_parser_free(&p);
}

static const struct { const char *mutf7, *utf8; } names[] = {
	{ "INBOX", "INBOX" }, { "&-", "&" }, { "a&-b", "a&b" }, { "Entw&APw-rfe", "Entw\xc3\xbcrfe" },
	{ "&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
	{ "&2D3eAA-", "\xf0\x9f\x98\x80" },       /* U+1F600, a surrogate pair */
	{ "", "" },
};

static void test_mutf7(void **state)
{
	(void)state;
	char out[128];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_true(imap_mutf7_decode(names[i].mutf7, strlen(names[i].mutf7), out, sizeof(out)));
		assert_string_equal(out, names[i].utf8);
		assert_true(imap_mutf7_encode(names[i].utf8, strlen(names[i].utf8), out, sizeof(out)));
		assert_string_equal(out, names[i].mutf7);
	}
	static const char *const bad[] = { "&", "&Jjo", "&AGE-" /* "a" encoded */, "&2D0-" /* lone surrogate */,
		"\xc3\xbc", "&Jjo!-", "a\tb", "&AP-" /* leftover bits */ };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(imap_mutf7_decode(bad[i], strlen(bad[i]), out, sizeof(out)));
	assert_false(imap_mutf7_encode("\xc3", 1, out, sizeof(out)));
	assert_false(imap_mutf7_encode("\xed\xa0\x80", 3, out, sizeof(out)));   /* a surrogate in UTF-8 */
	assert_false(imap_mutf7_encode("Entw\xc3\xbcrfe", 9, out, 6));           /* does not fit */
}

static void test_dates(void **state)
{
	(void)state;
	time_t t;
	assert_true(imap_parse_date("1-Feb-1994", 10, &t));
	assert_int_equal(t, 760060800);
	assert_true(imap_parse_date("29-feb-2024", 11, &t));
	assert_false(imap_parse_date("29-Feb-2023", 11, &t));
	assert_false(imap_parse_date("1-Foo-1994", 10, &t));
	assert_false(imap_parse_date("1-Feb-94", 8, &t));
	assert_true(imap_parse_datetime("17-Jul-1996 02:44:25 -0700", 26, &t));
	assert_int_equal(t, 837596665);
	assert_true(imap_parse_datetime(" 7-Jul-1996 02:44:25 +0000", 26, &t));
	assert_false(imap_parse_datetime("17-Jul-1996 25:44:25 -0700", 26, &t));
	assert_false(imap_parse_datetime("17-Jul-1996 02:44:25 *0700", 26, &t));
}

static void test_seq_contains(void **state)
{
	(void)state;
	struct imap_seq r[] = { { 2, 4 }, { 10, IMAP_SEQ_STAR } };
	struct imap_seqset s = { r, 2, false };
	assert_true(imap_seq_contains(&s, 3, 20));
	assert_false(imap_seq_contains(&s, 5, 20));
	assert_true(imap_seq_contains(&s, 20, 20));
	assert_true(imap_seq_contains(&s, 7, 7));    /* 10:* with max 7 is 7:10 */
	assert_false(imap_seq_contains(&s, 6, 7));
}

static void test_reply(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 4096);
	imap_reply_tagged(&b, "a1", IMAP_NO, "OVERQUOTA", "Mailbox full: %d%% used\r\nx", 100);
	imap_reply_untagged(&b, "OK", NULL, "ready");
	imap_reply_tagged(&b, NULL, IMAP_BAD, NULL, "bad");
	assert_string_equal(buf_cstr(&b), "a1 NO [OVERQUOTA] Mailbox full: 100% used??x\r\n* OK ready\r\n* BAD bad\r\n");
	buf_reset(&b);
	imap_write_string(&b, "a\"b\\", 4, false);
	buf_appendc(&b, ' ');
	imap_write_string(&b, "x\r\ny", 4, false);
	buf_appendc(&b, ' ');
	imap_write_nstring(&b, NULL, 0, false);
	buf_appendc(&b, ' ');
	imap_write_astring(&b, "atom", 4, false);
	buf_appendc(&b, ' ');
	imap_write_astring(&b, "NIL", 3, false);
	buf_appendc(&b, ' ');
	assert_true(imap_write_mailbox(&b, "Entw\xc3\xbcrfe", false));
	buf_appendc(&b, ' ');
	assert_true(imap_write_mailbox(&b, "Entw\xc3\xbcrfe", true));
	assert_false(imap_write_mailbox(&b, "\xff", false));
	assert_string_equal(buf_cstr(&b), "\"a\\\"b\\\\\" {4}\r\nx\r\ny NIL atom \"NIL\" \"Entw&APw-rfe\" \"Entw\xc3\xbcrfe\"");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows), cmocka_unit_test(test_long_line), cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_raw_line), cmocka_unit_test(test_utf8_accept), cmocka_unit_test(test_mutf7),
		cmocka_unit_test(test_dates), cmocka_unit_test(test_seq_contains), cmocka_unit_test(test_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
