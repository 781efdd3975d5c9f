/* reload.h - SIGHUP: the configuration read again while the server keeps serving
 * (systemd's ExecReload=kill -HUP $MAINPID).  The file is read and the new TLS
 * contexts are built on a thread of their own (the loop never waits for the disk);
 * then, on the loop, what can change live changes: [server] log_level, and the TLS
 * certificates, keys and cipher list ([tls], [certificate NAME]), always rebuilt from
 * the files so that a renewed certificate at the same path is taken.  Connections stay
 * up; those already in TLS keep the certificate they started with.  Every other change
 * is logged as event=reload_needs_restart with the setting names.  A file with errors,
 * or a certificate or key that does not load, is refused (event=reload_refused, each
 * reason) and the running configuration is kept whole. */
#ifndef POSTERN_SERVE_RELOAD_H
#define POSTERN_SERVE_RELOAD_H

#include <stdbool.h>

struct service;
struct reloader;

/* Catch SIGHUP on srv's loop.  NULL when it cannot (logged; serve goes on without). */
struct reloader *reload_start(struct service *srv);
/* A reload still running finishes (its result is dropped); the signal is released. */
void reload_stop(struct reloader **r);

#endif
