/* codec.c - milter v6 packets: the MTA's commands encoded, a filter's replies framed
 * and decoded strictly (see codec.h).  No I/O. */
#include "milter/codec.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"
#include "wire/wire.h"

/* --- encoding ---------------------------------------------------------------------- */

/* A packet is built in place: the header is written once the data is complete. */
struct pkt {
	struct milter_out *o;
	size_t start, len;     /* where the packet starts; data octets so far */
	bool over;
};

static void pkt_begin(struct pkt *k, struct milter_out *o, char cmd)
{
	k->o = o;
	k->start = o->len;
	k->len = 0;
	k->over = o->cap - o->len < 5;
	if (!k->over)
		o->p[o->len + 4] = (unsigned char)cmd;
}

static void pkt_put(struct pkt *k, const void *p, size_t n)
{
	/* The whole packet, command included, stays within MILTER_PACKET_MAX: the
	 * filter's own limit (libmilter MILTER_MAX_DATA_SIZE). */
	if (k->over || n > k->o->cap - k->start - 5 - k->len || k->len + n + 1 > MILTER_PACKET_MAX) {
		k->over = true;
		return;
	}
	if (n)
		memcpy(k->o->p + k->start + 5 + k->len, p, n);
	k->len += n;
}

static void pkt_str(struct pkt *k, const char *s)
{
	pkt_put(k, s ? s : "", strlen(s ? s : "") + 1);
}

static void pkt_u32(struct pkt *k, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
		(unsigned char)v };
	pkt_put(k, b, 4);
}

static bool pkt_end(struct pkt *k)
{
	if (k->over)
		return false;
	uint32_t n = (uint32_t)k->len + 1;
	unsigned char *h = k->o->p + k->start;
	h[0] = (unsigned char)(n >> 24);
	h[1] = (unsigned char)(n >> 16);
	h[2] = (unsigned char)(n >> 8);
	h[3] = (unsigned char)n;
	k->o->len = k->start + 5 + k->len;
	return true;
}

bool milter_enc_optneg(struct milter_out *o, uint32_t version, uint32_t actions, uint32_t protocol)
{
	struct pkt k;
	pkt_begin(&k, o, MILTER_CMD_OPTNEG);
	pkt_u32(&k, version);
	pkt_u32(&k, actions);
	pkt_u32(&k, protocol);
	return pkt_end(&k);
}

bool milter_enc_macro(struct milter_out *o, char cmd, const char *const *names, const char *const *values,
	size_t n)
{
	struct pkt k;
	pkt_begin(&k, o, MILTER_CMD_MACRO);
	pkt_put(&k, &cmd, 1);
	for (size_t i = 0; i < n; i++) {
		if (!names[i] || !names[i][0])
			return false;
		pkt_str(&k, names[i]);
		pkt_str(&k, values[i]);
	}
	return pkt_end(&k);
}

bool milter_enc_connect(struct milter_out *o, const char *hostname, char family, unsigned port,
	const char *addr)
{
	if (family != '4' && family != '6' && family != 'L' && family != 'U')
		return false;
	if (port > 65535)
		return false;
	struct pkt k;
	pkt_begin(&k, o, MILTER_CMD_CONNECT);
	pkt_str(&k, hostname);
	pkt_put(&k, &family, 1);
	if (family != 'U') {
		/* The port is two octets in network order (libmilter mi_inet_pton use). */
		unsigned char pb[2] = { (unsigned char)(port >> 8), (unsigned char)port };
		if (family == 'L')
			pb[0] = pb[1] = 0;
		pkt_put(&k, pb, 2);
		pkt_str(&k, addr);
	}
	return pkt_end(&k);
}

bool milter_enc_helo(struct milter_out *o, const char *helo)
{
	struct pkt k;
	pkt_begin(&k, o, MILTER_CMD_HELO);
	pkt_str(&k, helo);
	return pkt_end(&k);
}

static bool enc_argv(struct milter_out *o, char cmd, const char *const *argv, size_t argc)
{
	if (argc < 1 || !argv[0])
		return false;
	struct pkt k;
	pkt_begin(&k, o, cmd);
	for (size_t i = 0; i < argc; i++)
		pkt_str(&k, argv[i]);
	return pkt_end(&k);
}

bool milter_enc_mail(struct milter_out *o, const char *const *argv, size_t argc)
{
	return enc_argv(o, MILTER_CMD_MAIL, argv, argc);
}

bool milter_enc_rcpt(struct milter_out *o, const char *const *argv, size_t argc)
{
	return enc_argv(o, MILTER_CMD_RCPT, argv, argc);
}

bool milter_enc_header(struct milter_out *o, const char *name, const char *value)
{
	if (!name || !name[0])
		return false;
	struct pkt k;
	pkt_begin(&k, o, MILTER_CMD_HEADER);
	pkt_str(&k, name);
	pkt_str(&k, value);
	return pkt_end(&k);
}

bool milter_enc_body(struct milter_out *o, const void *p, size_t n)
{
	if (n > MILTER_BODY_CHUNK_MAX)
		return false;
	struct pkt k;
	pkt_begin(&k, o, MILTER_CMD_BODY);
	pkt_put(&k, p, n);
	return pkt_end(&k);
}

bool milter_enc_bare(struct milter_out *o, char cmd)
{
	switch (cmd) {
	case MILTER_CMD_DATA: case MILTER_CMD_EOH: case MILTER_CMD_BODYEOB: case MILTER_CMD_ABORT:
	case MILTER_CMD_QUIT: case MILTER_CMD_QUIT_NC:
		break;
	default:
		return false;
	}
	struct pkt k;
	pkt_begin(&k, o, cmd);
	return pkt_end(&k);
}

/* --- decoding ---------------------------------------------------------------------- */

/* A cursor over one packet's data. */
struct cur {
	const unsigned char *p;
	size_t len, pos;
	char *err;
	size_t errlen;
};

static bool cur_fail(struct cur *c, const char *what)
{
	snprintf(c->err, c->errlen, "%s", what);
	return false;
}

static bool cur_u32(struct cur *c, uint32_t *v, const char *what)
{
	if (c->len - c->pos < 4) {
		snprintf(c->err, c->errlen, "%s cut short (%zu of 4 octets)", what, c->len - c->pos);
		return false;
	}
	const unsigned char *b = c->p + c->pos;
	*v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	c->pos += 4;
	return true;
}

/* A NUL-terminated string that ends inside the packet. */
static bool cur_str(struct cur *c, const char **s, const char *what)
{
	const unsigned char *nul = c->pos < c->len ? memchr(c->p + c->pos, '\0', c->len - c->pos) : NULL;
	if (!nul) {
		snprintf(c->err, c->errlen, "%s not NUL-terminated inside the packet", what);
		return false;
	}
	*s = (const char *)c->p + c->pos;
	c->pos = (size_t)(nul - c->p) + 1;
	return true;
}

static bool cur_done(struct cur *c, const char *what)
{
	if (c->pos == c->len)
		return true;
	snprintf(c->err, c->errlen, "%zu octets after the end of %s", c->len - c->pos, what);
	return false;
}

/* A header field name a filter may add or change: RFC 5322 §3.6.8 ftext (printable
 * US-ASCII except ':'), at most 998 octets. */
static bool header_name_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if ((unsigned char)s[n] < 33 || (unsigned char)s[n] > 126 || s[n] == ':')
			return false;
	return n > 0 && n <= 998;
}

static bool decode_header(struct cur *c, struct milter_event *ev, bool indexed)
{
	if (indexed && !cur_u32(c, &ev->index, "header index"))
		return false;
	if (!cur_str(c, &ev->name, "header name") || !cur_str(c, &ev->value, "header value"))
		return false;
	if (!header_name_ok(ev->name))
		return cur_fail(c, "a header name that is empty, too long or not printable ASCII without ':'");
	return cur_done(c, "the header");
}

/* An address and, for ADDRCPT_PAR and CHGFROM, optional ESMTP arguments. */
static bool decode_address(struct cur *c, struct milter_event *ev, bool args)
{
	if (!cur_str(c, &ev->name, "address"))
		return false;
	if (!ev->name[0])
		return cur_fail(c, "an empty address");
	if (args && c->pos < c->len && !cur_str(c, &ev->value, "ESMTP arguments"))
		return false;
	return cur_done(c, "the address");
}

static bool decode_optneg(struct cur *c, struct milter_event *ev)
{
	if (!cur_u32(c, &ev->version, "version") || !cur_u32(c, &ev->actions, "actions") ||
		!cur_u32(c, &ev->protocol, "protocol flags"))
		return false;
	if (ev->version < MILTER_VERSION_MIN) {
		snprintf(c->err, c->errlen, "speaks milter version %u; version %d or later is needed",
			(unsigned)ev->version, MILTER_VERSION_MIN);
		return false;
	}
	/* v6: the macros the filter wants at each stage may follow (libmilter
	 * smfi_setsymlist): uint32 stage, NUL-terminated list, repeated. */
	while (c->pos < c->len) {
		if (ev->n_symlists == MILTER_SYMLISTS_MAX)
			return cur_fail(c, "more macro lists than stages");
		struct milter_symlist *s = &ev->symlists[ev->n_symlists];
		if (!cur_u32(c, &s->stage, "macro list stage") || !cur_str(c, &s->macros, "macro list"))
			return false;
		if (s->stage > MILTER_STAGE_EOH)
			return cur_fail(c, "a macro list for an unknown stage");
		ev->n_symlists++;
	}
	return true;
}

static bool decode_replycode(struct cur *c, struct milter_event *ev)
{
	const char *s;
	if (!cur_str(c, &s, "reply text") || !cur_done(c, "the reply text"))
		return false;
	char why[160];
	if (!milter_reply_check(s, &ev->code, ev->enh, sizeof(ev->enh), ev->reply, sizeof(ev->reply), why,
		sizeof(why))) {
		snprintf(c->err, c->errlen, "%s", why);
		return false;
	}
	return true;
}

static bool decode_symlist(struct cur *c, struct milter_event *ev)
{
	struct milter_symlist *s = &ev->symlists[0];
	if (!cur_u32(c, &s->stage, "macro list stage") || !cur_str(c, &s->macros, "macro list") ||
		!cur_done(c, "the macro list"))
		return false;
	if (s->stage > MILTER_STAGE_EOH)
		return cur_fail(c, "a macro list for an unknown stage");
	ev->n_symlists = 1;
	return true;
}

static const struct {
	char cmd;
	enum milter_ev_kind kind;
	const char *name;
} replies[] = {
	{ MILTER_R_ACCEPT, MILTER_EV_ACCEPT, "accept" },
	{ MILTER_R_CONTINUE, MILTER_EV_CONTINUE, "continue" },
	{ MILTER_R_DISCARD, MILTER_EV_DISCARD, "discard" },
	{ MILTER_R_REJECT, MILTER_EV_REJECT, "reject" },
	{ MILTER_R_TEMPFAIL, MILTER_EV_TEMPFAIL, "tempfail" },
	{ MILTER_R_REPLYCODE, MILTER_EV_REPLYCODE, "reply code" },
	{ MILTER_R_QUARANTINE, MILTER_EV_QUARANTINE, "quarantine" },
	{ MILTER_R_PROGRESS, MILTER_EV_PROGRESS, "progress" },
	{ MILTER_R_SKIP, MILTER_EV_SKIP, "skip" },
	{ MILTER_R_ADDHEADER, MILTER_EV_ADDHEADER, "add header" },
	{ MILTER_R_INSHEADER, MILTER_EV_INSHEADER, "insert header" },
	{ MILTER_R_CHGHEADER, MILTER_EV_CHGHEADER, "change header" },
	{ MILTER_R_REPLBODY, MILTER_EV_REPLBODY, "replace body" },
	{ MILTER_R_ADDRCPT, MILTER_EV_ADDRCPT, "add recipient" },
	{ MILTER_R_ADDRCPT_PAR, MILTER_EV_ADDRCPT_PAR, "add recipient with parameters" },
	{ MILTER_R_DELRCPT, MILTER_EV_DELRCPT, "delete recipient" },
	{ MILTER_R_CHGFROM, MILTER_EV_CHGFROM, "change sender" },
	{ MILTER_R_SETSYMLIST, MILTER_EV_SETSYMLIST, "set macro list" },
	{ MILTER_R_OPTNEG, MILTER_EV_OPTNEG, "option negotiation" },
	{ MILTER_R_SHUTDOWN, MILTER_EV_SHUTDOWN, "shutdown" },
	{ MILTER_R_CONN_FAIL, MILTER_EV_CONN_FAIL, "connection failure" },
};

const char *milter_ev_name(enum milter_ev_kind k)
{
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++)
		if (replies[i].kind == k)
			return replies[i].name;
	return "unknown";
}

static bool decode_body(struct cur *c, struct milter_event *ev)
{
	switch (ev->kind) {
	case MILTER_EV_REPLYCODE: return decode_replycode(c, ev);
	case MILTER_EV_QUARANTINE:
		return cur_str(c, &ev->name, "quarantine reason") && cur_done(c, "the quarantine reason");
	case MILTER_EV_ADDHEADER: return decode_header(c, ev, false);
	case MILTER_EV_INSHEADER: case MILTER_EV_CHGHEADER: return decode_header(c, ev, true);
	case MILTER_EV_REPLBODY:
		ev->data = c->p;
		ev->len = c->len;
		return true;
	case MILTER_EV_ADDRCPT: case MILTER_EV_DELRCPT: return decode_address(c, ev, false);
	case MILTER_EV_ADDRCPT_PAR: case MILTER_EV_CHGFROM: return decode_address(c, ev, true);
	case MILTER_EV_SETSYMLIST: return decode_symlist(c, ev);
	case MILTER_EV_OPTNEG: return decode_optneg(c, ev);
	default:
		/* accept, continue, discard, reject, tempfail, progress, skip, shutdown,
		 * connection failure: no data (libmilter sends none). */
		return cur_done(c, milter_ev_name(ev->kind));
	}
}

bool milter_decode(char cmd, const unsigned char *data, size_t len, struct milter_event *ev, char *err,
	size_t errlen)
{
	memset(ev, 0, offsetof(struct milter_event, reply));
	ev->reply[0] = '\0';
	ev->version = ev->actions = ev->protocol = 0;
	ev->n_symlists = 0;
	ev->cmd = cmd;
	size_t i = 0;
	while (i < sizeof(replies) / sizeof(replies[0]) && replies[i].cmd != cmd)
		i++;
	if (i == sizeof(replies) / sizeof(replies[0])) {
		if ((unsigned char)cmd >= 33 && (unsigned char)cmd <= 126)
			snprintf(err, errlen, "unknown reply '%c'", cmd);
		else
			snprintf(err, errlen, "unknown reply 0x%02x", (unsigned char)cmd);
		return false;
	}
	ev->kind = replies[i].kind;
	struct cur c = { .p = data, .len = len, .err = err, .errlen = errlen };
	if (decode_body(&c, ev))
		return true;
	char inner[200];
	snprintf(inner, sizeof(inner), "%s", err);
	snprintf(err, errlen, "%s ('%c'): %s", replies[i].name, cmd, inner);
	return false;
}

/* --- 'y' replies ------------------------------------------------------------------- */

/* One line of a reply: its code, whether more follow, its text after the enhanced code. */
static bool reply_line(const char *line, int *code, bool *more, char *enh, size_t enhsz, const char **text,
	char *err, size_t errlen)
{
	if (!wire_reply_line(line, code, more, text)) {
		snprintf(err, errlen, "'%.40s' is not a reply line (three digits, then a space or '-')", line);
		return false;
	}
	if (*code < 400 || *code > 599) {
		snprintf(err, errlen, "code %d is not 4xx or 5xx", *code);
		return false;
	}
	enh[0] = '\0';
	size_t el = wire_enh_lead(*text, enh, enhsz);
	/* RFC 3463 §2: the class digit of the enhanced code matches the reply's. */
	if (el && enh[0] != line[0]) {
		snprintf(err, errlen, "enhanced code %s does not match reply code %d", enh, *code);
		return false;
	}
	*text += el;
	while (**text == ' ')
		(*text)++;
	return true;
}

static void join(char *out, size_t outsz, size_t *used, const char *p, size_t n)
{
	if (*used + n + 1 > outsz)
		n = outsz - 1 - *used;
	memcpy(out + *used, p, n);
	*used += n;
	out[*used] = '\0';
}

bool milter_reply_check(const char *s, int *code, char *enh, size_t enhsz, char *joined, size_t joinedsz,
	char *err, size_t errlen)
{
	size_t used = 0;
	joined[0] = '\0';
	int first = 0;
	char first_enh[16] = "";
	bool more = true;
	for (unsigned lines = 0; more; lines++) {
		const char *eol = strstr(s, "\r\n");
		size_t n = eol ? (size_t)(eol - s) : strlen(s);
		char line[MILTER_REPLY_MAX];
		if (n >= sizeof(line) || lines >= 32) {
			snprintf(err, errlen, "a reply longer than %d octets or 32 lines", MILTER_REPLY_MAX - 1);
			return false;
		}
		memcpy(line, s, n);
		line[n] = '\0';
		int c;
		char e[16];
		const char *text;
		if (!reply_line(line, &c, &more, e, sizeof(e), &text, err, errlen))
			return false;
		if (lines == 0) {
			first = c;
			snprintf(first_enh, sizeof(first_enh), "%s", e);
			char lead[32];
			int w = snprintf(lead, sizeof(lead), "%d %s%s", c, e, e[0] ? " " : "");
			join(joined, joinedsz, &used, lead, (size_t)w);
		} else if (c != first) {
			snprintf(err, errlen, "lines with different codes (%d, then %d)", first, c);
			return false;
		} else {
			join(joined, joinedsz, &used, " ", 1);
		}
		join(joined, joinedsz, &used, text, strlen(text));
		if (!more && eol && eol[2] == '\0')
			eol = NULL;   /* a final CR LF */
		if (more != (eol != NULL)) {
			snprintf(err, errlen, more ? "the last line says more lines follow" : "lines after the last");
			return false;
		}
		s = eol ? eol + 2 : s + n;
	}
	while (used && joined[used - 1] == ' ')
		joined[--used] = '\0';
	*code = first;
	snprintf(enh, enhsz, "%s", first_enh);
	return true;
}

/* --- negotiation ------------------------------------------------------------------ */

bool milter_negotiate(const struct milter_event *ev, uint32_t offered_actions, uint32_t offered_protocol,
	struct milter_nego *n, char *err, size_t errlen)
{
	memset(n, 0, sizeof(*n));
	if (ev->kind != MILTER_EV_OPTNEG || ev->version < MILTER_VERSION_MIN) {
		snprintf(err, errlen, "did not negotiate (answered %s)", milter_ev_name(ev->kind));
		return false;
	}
	n->version = ev->version < MILTER_VERSION ? ev->version : MILTER_VERSION;
	n->actions = ev->actions & offered_actions;
	n->protocol = ev->protocol & offered_protocol & ~(MILTER_P_MDS_256K | MILTER_P_MDS_1M);
	for (size_t i = 0; i < ev->n_symlists && i < MILTER_SYMLISTS_MAX; i++) {
		uint32_t st = ev->symlists[i].stage;
		if (st >= MILTER_SYMLISTS_MAX)
			continue;
		size_t len = strlen(ev->symlists[i].macros);
		if (len >= sizeof(n->lists[st])) {
			snprintf(err, errlen, "a macro list of %zu octets (at most %zu)", len, sizeof(n->lists[st]) - 1);
			return false;
		}
		memcpy(n->lists[st], ev->symlists[i].macros, len + 1);
		n->has_list[st] = true;
	}
	return true;
}

/* Each command the filter may opt out of or leave unanswered (mfdef.h). */
static const struct {
	char cmd;
	uint32_t no, nr;
	int stage;
} steps[] = {
	{ MILTER_CMD_CONNECT, MILTER_P_NOCONNECT, MILTER_P_NR_CONN, MILTER_STAGE_CONNECT },
	{ MILTER_CMD_HELO, MILTER_P_NOHELO, MILTER_P_NR_HELO, MILTER_STAGE_HELO },
	{ MILTER_CMD_MAIL, MILTER_P_NOMAIL, MILTER_P_NR_MAIL, MILTER_STAGE_MAIL },
	{ MILTER_CMD_RCPT, MILTER_P_NORCPT, MILTER_P_NR_RCPT, MILTER_STAGE_RCPT },
	{ MILTER_CMD_DATA, MILTER_P_NODATA, MILTER_P_NR_DATA, MILTER_STAGE_DATA },
	{ MILTER_CMD_HEADER, MILTER_P_NOHDRS, MILTER_P_NR_HDR, -1 },
	{ MILTER_CMD_EOH, MILTER_P_NOEOH, MILTER_P_NR_EOH, MILTER_STAGE_EOH },
	{ MILTER_CMD_BODY, MILTER_P_NOBODY, MILTER_P_NR_BODY, -1 },
	{ MILTER_CMD_UNKNOWN, MILTER_P_NOUNKNOWN, MILTER_P_NR_UNKN, -1 },
	{ MILTER_CMD_BODYEOB, 0, 0, MILTER_STAGE_EOM },
};

static int step_of(char cmd)
{
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (steps[i].cmd == cmd)
			return (int)i;
	return -1;
}

void milter_step_flags(char cmd, uint32_t *no_flag, uint32_t *nr_flag)
{
	int i = step_of(cmd);
	*no_flag = i < 0 ? 0 : steps[i].no;
	*nr_flag = i < 0 ? 0 : steps[i].nr;
}

bool milter_nego_sends(const struct milter_nego *n, char cmd)
{
	int i = step_of(cmd);
	return i < 0 || !(n->protocol & steps[i].no);
}

bool milter_nego_awaits(const struct milter_nego *n, char cmd)
{
	int i = step_of(cmd);
	/* A version 2 filter knows no SMFIP_NR_*: every step is answered. */
	return i < 0 || !(n->protocol & steps[i].nr);
}

bool milter_nego_wants_macro(const struct milter_nego *n, char cmd, const char *name)
{
	int i = step_of(cmd);
	if (i < 0 || steps[i].stage < 0 || !n->has_list[steps[i].stage])
		return true;
	const char *list = n->lists[steps[i].stage];
	size_t len = strlen(name);
	/* libmilter lists the names space-separated, braces as the filter wrote them; a
	 * long name may come with or without its braces. */
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t w = strcspn(p, " ,");
		if (w == len && memcmp(p, name, len) == 0)
			return true;
		if (len > 2 && name[0] == '{' && w == len - 2 && memcmp(p, name + 1, w) == 0)
			return true;
		p += w;
	}
	return false;
}

/* --- the reader -------------------------------------------------------------------- */

bool milter_reader_init(struct milter_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->pkt = malloc(MILTER_PACKET_MAX);
	return r->pkt != NULL;
}

void milter_reader_free(struct milter_reader *r)
{
	free(r->pkt);
	r->pkt = NULL;
}

static enum milter_rd reader_fail(struct milter_reader *r, char *err, size_t errlen, const char *what)
{
	r->failed = true;
	snprintf(err, errlen, "%s", what);
	return MILTER_RD_ERROR;
}

enum milter_rd milter_reader_feed(struct milter_reader *r, const void *p, size_t n, size_t *used,
	struct milter_event *ev, char *err, size_t errlen)
{
	const unsigned char *b = p;
	*used = 0;
	if (r->failed)
		return reader_fail(r, err, errlen, "the filter's byte stream is already broken");
	while (r->head_len < 4) {
		if (*used == n)
			return MILTER_RD_MORE;
		r->head[r->head_len++] = b[(*used)++];
		if (r->head_len == 4) {
			r->want = (uint32_t)r->head[0] << 24 | (uint32_t)r->head[1] << 16 | (uint32_t)r->head[2] << 8 |
				r->head[3];
			if (r->want == 0)
				return reader_fail(r, err, errlen, "a packet of length 0 (no command)");
			if (r->want > MILTER_PACKET_MAX) {
				char why[96];
				snprintf(why, sizeof(why), "a packet of %lu octets (over the 64 KiB limit)",
					(unsigned long)r->want);
				return reader_fail(r, err, errlen, why);
			}
			r->pkt_len = 0;
		}
	}
	size_t take = r->want - r->pkt_len;
	if (take > n - *used)
		take = n - *used;
	memcpy(r->pkt + r->pkt_len, b + *used, take);
	r->pkt_len += take;
	*used += take;
	if (r->pkt_len < r->want)
		return MILTER_RD_MORE;
	r->head_len = 0;
	if (!milter_decode((char)r->pkt[0], r->pkt + 1, r->pkt_len - 1, ev, err, errlen)) {
		r->failed = true;
		return MILTER_RD_ERROR;
	}
	return MILTER_RD_EVENT;
}
