/*
 * smtp_data - the DATA reader; see smtp_data.h for the rules.
 *
 * Outline: one switch per byte over five states. Runs of ordinary text in
 * the middle of a line are copied in one go (a scan for CR, LF
 * and NUL) so that large messages do not pay per byte for buf calls.
 */
#include <string.h>

#include "smtp_data.h"

#define ERR_BARE_LF "554 5.5.2 Error: bare <LF> received"
#define ERR_BARE_CR "554 5.5.2 Error: bare <CR> received"
#define ERR_NUL "554 5.6.0 Error: NUL character in message"
#define ERR_LINE "500 5.5.2 Line too long"
#define ERR_SIZE "552 5.3.4 Message size exceeds fixed limit"

void
smtp_data_init(struct smtp_data *d, size_t size_limit, int forbid_bare)
{
	memset(d, 0, sizeof(*d));
	d->state = SMTP_DATA_SOL;
	d->size_limit = size_limit;
	d->forbid_bare = forbid_bare;
}

int
smtp_data_done(const struct smtp_data *d)
{
	return d->state == SMTP_DATA_DONE;
}

const char *
smtp_data_error(const struct smtp_data *d)
{
	return d->error;
}

static void
fail(struct smtp_data *d, const char *why)
{
	if (d->error == NULL)
		d->error = why;
}

static void
emit(struct smtp_data *d, buf_t *out, const char *p, size_t n)
{
	if (d->error != NULL || n == 0)
		return;
	if (d->size_limit && n > d->size_limit - d->size) {
		fail(d, ERR_SIZE);
		return;
	}
	d->size += n;
	if (buf_append(out, p, n) < 0 || buf_error(out))
		fail(d, ERR_SIZE);
}

static void
bare_lf(struct smtp_data *d)
{
	d->bare_lf = 1;
	if (d->forbid_bare)
		fail(d, ERR_BARE_LF);
}

static void
bare_cr(struct smtp_data *d)
{
	d->bare_cr = 1;
	if (d->forbid_bare)
		fail(d, ERR_BARE_CR);
}

static void
count(struct smtp_data *d, size_t n)
{
	/* Every wire byte counts against the line limit, the CRLF and a
	 * stuffed dot included (RFC 5321 4.5.3.1.6). */
	d->linelen += n;
	if (d->linelen > SMTP_TEXT_LINE_MAX)
		fail(d, ERR_LINE);
}

size_t
smtp_data_feed(struct smtp_data *d, const char *in, size_t len, buf_t *out)
{
	size_t i = 0, j, end;

	while (i < len && d->state != SMTP_DATA_DONE) {
		char c = in[i];
		int consume = 1;

		switch (d->state) {
		case SMTP_DATA_SOL:
			if (c == '.') {
				d->state = SMTP_DATA_DOT;
			} else if (c == '\r') {
				d->state = SMTP_DATA_CR;
			} else {
				if (c == '\n')
					bare_lf(d);
				emit(d, out, &c, 1);
				d->state = SMTP_DATA_TEXT;
			}
			break;
		case SMTP_DATA_DOT:
			/* The dot of a stuffed line is dropped (4.5.2). */
			if (c == '\r') {
				d->state = SMTP_DATA_DOT_CR;
			} else {
				if (c == '\n')
					bare_lf(d);
				emit(d, out, &c, 1);
				d->state = SMTP_DATA_TEXT;
			}
			break;
		case SMTP_DATA_DOT_CR:
			if (c == '\n') {
				d->state = SMTP_DATA_DONE;
				break;
			}
			/* ".<CR>x": the CR is bare and the line goes on; c
			 * is looked at again in TEXT. */
			bare_cr(d);
			emit(d, out, "\r", 1);
			d->state = SMTP_DATA_TEXT;
			consume = 0;
			break;
		case SMTP_DATA_TEXT:
			/* A run stops where the line limit would be passed,
			 * so that the errors come in byte order however the
			 * input is cut: per byte, size, then NUL, then line
			 * length. */
			end = len;
			if (d->error == NULL) {
				size_t room =
				    d->linelen < SMTP_TEXT_LINE_MAX
				        ? SMTP_TEXT_LINE_MAX - d->linelen
				        : 0;

				if (room < len - i)
					end = i + room;
			}
			for (j = i; j < end && in[j] != '\r' && in[j] != '\n' &&
			            in[j] != '\0';
			     j++)
				;
			if (j > i) {
				emit(d, out, in + i, j - i);
				count(d, j - i);
				i = j;
				consume = 0;
				break;
			}
			if (c == '\r') {
				d->state = SMTP_DATA_CR;
			} else {
				if (c == '\n')
					bare_lf(d);
				emit(d, out, &c, 1);
			}
			break;
		case SMTP_DATA_CR:
			if (c == '\n') {
				emit(d, out, "\r\n", 2);
				d->state = SMTP_DATA_SOL;
				break;
			}
			/* The pending CR is bare; c is looked at again. */
			bare_cr(d);
			emit(d, out, "\r", 1);
			d->state = SMTP_DATA_TEXT;
			consume = 0;
			break;
		case SMTP_DATA_DONE:
			break;
		}
		if (!consume)
			continue;
		if (c == '\0')
			fail(d, ERR_NUL);
		count(d, 1);
		i++;
		if (d->state == SMTP_DATA_SOL)
			d->linelen = 0; /* a CRLF just ended the line */
	}
	return i;
}
