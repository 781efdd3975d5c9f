/* qr.h - a QR code as inline SVG markup, for the pages that show a new app password
 * once so a phone can read it with its camera instead of the user typing 20 letters.
 *
 * The symbol is made by libqrencode (ISO/IEC 18004: byte mode, error correction
 * level M, the smallest version that holds the text); this module only draws it:
 * one <path> of dark modules inside a quiet zone of 4 modules (ISO/IEC 18004 §7.3.8),
 * black on white, crisp edges.  The SVG is markup built here from the matrix alone
 * (never from the text), so a page may insert it unescaped (web_view_set_html), and
 * the pages' Content-Security-Policy allows it (no script, no style attribute). */
#ifndef POSTERN_WEB_QR_H
#define POSTERN_WEB_QR_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define QR_TEXT_MAX 1024        /* longer text would make a symbol a phone reads badly */
#define QR_QUIET_ZONE 4         /* modules of white around the symbol */
#define QR_SVG_MAX (256 * 1024)

/* The module matrix of `text`: *width x *width bytes, row by row, 1 = dark, 0 = light
 * (malloc'd: free it).  false: empty, too long, or libqrencode failed. */
bool qr_matrix(const char *text, unsigned char **modules, int *width);

/* Append the SVG of `text` to out, each module `module_px` pixels (1..32) wide.
 * `label` (may be NULL) becomes the aria-label, XML-escaped.  false: nothing encoded
 * or out is full. */
bool qr_svg(const char *text, unsigned module_px, const char *label, struct buf *out);

#endif
