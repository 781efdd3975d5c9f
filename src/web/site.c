/* site.c - struct web_site (see web.h): what the web handlers know of the running
 * server, built once at start by serve: the configuration, the host name, the mail
 * listeners (their roles, ports and TLS, for the documents that tell mail programs
 * how to connect) and the server certificate with its chain and key (for signing
 * Apple profiles), read while the server is still root. */
#include "web/web.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag/explain.h"
#include "util/log.h"
#include "web/app.h"

/* The certificate the default TLS context serves: [tls] certificate, or the
 * self-signed one net/tls.c made in data_dir/tls/. */
static void certificate_paths(const struct conf *cf, char *crt, size_t crtsz, char *key, size_t keysz)
{
	if (cf->tls_certificate[0]) {
		snprintf(crt, crtsz, "%s", cf->tls_certificate);
		snprintf(key, keysz, "%s", cf->tls_key);
	} else {
		snprintf(crt, crtsz, "%s/tls/selfsigned.crt", cf->data_dir);
		snprintf(key, keysz, "%s/tls/selfsigned.key", cf->data_dir);
	}
}

void web_site_load_certificate(struct web_site *s)
{
	if (!conf_wants_tls(s->conf))
		return;
	char key[CONF_PATH_MAX + 32];
	certificate_paths(s->conf, s->certificate_file, sizeof(s->certificate_file), key, sizeof(key));
	FILE *f = fopen(s->certificate_file, "r");
	if (f) {
		s->certificate = PEM_read_X509(f, NULL, NULL, NULL);
		s->chain = sk_X509_new_null();
		X509 *more;
		while (s->chain && (more = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
			if (!sk_X509_push(s->chain, more))
				X509_free(more);
		fclose(f);
	}
	f = fopen(key, "r");
	if (f) {
		s->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	ERR_clear_error();   /* the end of the chain reads as an error */
	if (!s->certificate || !s->key)
		log_event(LOG_WARN, "web_certificate", "certificate=%s reason=\"cannot read the certificate or its key\" "
			"hint=\"Apple profiles are served unsigned (iOS shows Not Verified)\"", s->certificate_file);
}

/* The explain knowledge base for the account pages' words and fixes; without it
 * they show none (and say so in the log). */
static void load_kb(struct web_site *s)
{
	char path[4096], err[512];
	if (!explain_kb_locate(path, sizeof(path))) {
		log_event(LOG_WARN, "web_kb", "reason=\"cannot find the knowledge base explain.ini\" hint=\"set "
			"POSTERN_DATA_DIR to the directory that holds it; the account pages show no explanations\"");
		return;
	}
	if (!explain_kb_load_file(&s->kb, path, err, sizeof(err)))
		log_event(LOG_WARN, "web_kb", "reason=\"%s\" hint=\"the account pages show no explanations\"", err);
}

struct web_site *web_site_new(const struct conf *cf)
{
	struct web_site *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->conf = cf;
	s->hostname = cf->hostname;
	for (size_t i = 0; i < cf->n_listeners; i++) {
		const struct conf_listener *l = &cf->listeners[i];
		if (l->role == ROLE_HTTP)
			continue;
		s->mail[s->n_mail++] = (struct web_mail_listener){ .name = l->name, .role = l->role, .port = l->port, .tls = l->tls };
	}
	return s;
}

bool web_site_load_app(struct web_site *s, char *err, size_t errsz)
{
	bool wanted = false;
	for (size_t i = 0; i < s->conf->n_listeners; i++)
		wanted = wanted || conf_listener_serves(&s->conf->listeners[i], "account");
	if (!wanted)
		return true;
	char dir[1024];
	if (!web_templates_locate(dir, sizeof(dir))) {
		snprintf(err, errsz, "the account pages' templates (web/layout.html) are in none of $POSTERN_DATA_DIR, "
			"%s/data, %s: install them (meson install) or take \"account\" out of the http listeners' services",
			POSTERN_SOURCE_DIR, POSTERN_DATADIR);
		return false;
	}
	s->templates = web_templates_load(dir, err, errsz);
	s->sessions = s->templates ? web_sessions_new((unsigned)s->conf->web_session_idle, (unsigned)s->conf->web_session_max) : NULL;
	if (s->templates && !s->sessions)
		snprintf(err, errsz, "out of memory");
	if (s->sessions)
		load_kb(s);
	return s->sessions != NULL;
}

void web_site_bound(struct web_site *s, const char *listener, unsigned port)
{
	for (size_t i = 0; i < s->n_mail; i++)
		if (strcmp(s->mail[i].name, listener) == 0)
			s->mail[i].port = port;
}

void web_site_free(struct web_site **sp)
{
	struct web_site *s = *sp;
	if (!s)
		return;
	X509_free(s->certificate);
	sk_X509_pop_free(s->chain, X509_free);
	EVP_PKEY_free(s->key);
	web_templates_free(&s->templates);
	web_sessions_free(&s->sessions);
	explain_kb_free(&s->kb);
	free(s);
	*sp = NULL;
}

const struct conf_listener *web_site_listener(const struct web_site *s, const char *name)
{
	for (size_t i = 0; i < s->conf->n_listeners; i++)
		if (strcmp(s->conf->listeners[i].name, name) == 0)
			return &s->conf->listeners[i];
	return NULL;
}
