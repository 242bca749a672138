/*
 * dsn_write: print one DSN made by deliver_dsn_build() to stdout, for
 * tests/unit/dsn_check.py to parse with Python's email package.
 * Usage: dsn_write failed|delayed|8bit|utf8|hostile|long
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"

#define NOW 1764460800LL

static const char original[] = "Received: from client.tenant.example by mail.sluice.example\r\n"
                               "\twith ESMTPSA id 0123456789abcdef\r\n"
                               "From: Alice <alice@tenant.example>\r\n"
                               "To: bob@remote.example\r\n"
                               "Subject: quarterly report\r\n"
                               "Message-ID: <abc@tenant.example>\r\n"
                               "\r\n"
                               "SECRET-BODY-LINE\r\n";

static const char original8[] = "From: Alice <alice@tenant.example>\r\n"
                                "Subject: Gr\xc3\xbc\xc3\x9f"
                                "e aus M\xc3\xbcnchen\r\n"
                                "Message-ID: <abc8@tenant.example>\r\n"
                                "\r\n"
                                "SECRET-BODY-LINE\r\n";

int main(int argc, char **argv)
{
	static char longreply[6001];
	struct deliver_dsn_rcpt r[2] = {
	    {.addr = "bob@remote.example",
	     .reply = "550 5.1.1 <bob@remote.example>: Recipient address rejected: User unknown",
	     .remote_mta = "mx.remote.example[192.0.2.25]:25",
	     .orcpt = "rfc822;bob@remote.example",
	     .last_attempt = NOW - 60},
	    {.addr = "carol@other.example",
	     .diagnostic = "Host or domain name not found",
	     .status = "5.1.2",
	     .last_attempt = NOW - 30},
	};
	struct deliver_dsn d = {
	    .reporting_mta = "mail.sluice.example",
	    .original_sender = "alice@tenant.example",
	    .original = original,
	    .original_len = sizeof original - 1,
	    .queue_id = "0123456789abcdef",
	    .envid = "QQ314159",
	    .arrival = NOW - 3600,
	    .now = NOW,
	    .rcpts = r,
	    .nrcpts = 2,
	};
	const char *what = argc > 1 ? argv[1] : "";
	char *out = NULL, *err = NULL;
	size_t len = 0;

	if (strcmp(what, "failed") == 0) {
		/* as above */
	} else if (strcmp(what, "delayed") == 0) {
		d.delayed = 1;
		r[0].reply = "451 4.7.1 Greylisted, try again later";
		r[0].will_retry_until = NOW + 4 * 86400;
		d.nrcpts = 1;
	} else if (strcmp(what, "8bit") == 0) {
		d.original = original8;
		d.original_len = sizeof original8 - 1;
	} else if (strcmp(what, "utf8") == 0) {
		r[0].addr = "j\xc3\xb6rg@b\xc3\xbc"
		            "cher.example";
		d.nrcpts = 1;
	} else if (strcmp(what, "hostile") == 0) {
		r[0].reply = "550-5.7.1 first\r\n550 5.7.1 \x01second\r\nBcc: victim@x.example\r\n"
		             "\r\n--fake--";
	} else if (strcmp(what, "long") == 0) {
		size_t i;

		memcpy(longreply, "550 5.0.0 ", 10);
		for (i = 10; i < sizeof longreply - 1; i++)
			longreply[i] = i < 2000 ? (i % 7 == 0 ? ' ' : 'a') : 'W';
		r[0].reply = longreply;
	} else {
		fprintf(stderr, "usage: dsn_write failed|delayed|8bit|utf8|hostile|long\n");
		return 2;
	}
	if (deliver_dsn_build(&d, &out, &len, &err) != 0) {
		fprintf(stderr, "dsn_write: %s\n", err ? err : "no DSN");
		return 1;
	}
	fwrite(out, 1, len, stdout);
	free(out);
	return 0;
}
