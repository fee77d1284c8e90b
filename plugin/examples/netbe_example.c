// SPDX-License-Identifier: BSD-2-Clause
/* netbe_example.c - the README's example: ask the slirp backend for the gateway's MAC (C, not C++). */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slirpnet/netbe.h>

struct rx_state {
	struct slirpnet_netbe *be;
	int got_reply;
};

/* Rx callback: drain every pending frame, as a NIC model's receive path would. */
static void on_rx(int fd, void *param)
{
	struct rx_state *st = param;
	unsigned char frame[1514];
	struct iovec iov = { frame, sizeof(frame) };
	ssize_t n;

	(void)fd;
	while ((n = slirpnet_netbe_recv(st->be, &iov, 1)) > 0) {
		/* EtherType 0x0806 (ARP), opcode 2 (reply), sender IP 10.0.2.2 */
		if (n >= 42 && frame[12] == 0x08 && frame[13] == 0x06 && frame[21] == 2 &&
		    memcmp(frame + 28, "\x0a\x00\x02\x02", 4) == 0) {
			printf("gateway 10.0.2.2 is at %02x:%02x:%02x:%02x:%02x:%02x\n", frame[22], frame[23],
			       frame[24], frame[25], frame[26], frame[27]);
			st->got_reply = 1;
		}
	}
	if (n < 0)
		perror("slirpnet_netbe_recv");
}

int main(void)
{
	/* clang-format off: one row per header field */
	static const unsigned char arp_request[42] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34,
		0x56, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6,    4,    0x00, 0x01, /* Ethernet/IPv4, request */
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10,   0,    2,    15, /* sender: the guest */
		0,    0,    0,    0,    0,    0,    10,   0,    2,    2, /* target: the gateway */
	};
	/* clang-format on */
	struct rx_state st = { NULL, 0 };
	char *err = NULL;
	GMainContext *ctx = g_main_context_new();

	if (slirpnet_netbe_init(&st.be, "slirp,restrict=on", on_rx, &st, ctx, &err) != 0) {
		fprintf(stderr, "slirpnet_netbe_init: %s\n", err);
		free(err);
		return 1;
	}
	slirpnet_netbe_rx_enable(st.be);

	struct iovec iov = { (void *)arp_request, sizeof(arp_request) };
	if (slirpnet_netbe_send(st.be, &iov, 1) < 0) {
		perror("slirpnet_netbe_send");
		return 1;
	}
	gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	while (!st.got_reply && g_get_monotonic_time() < deadline)
		g_main_context_iteration(ctx, TRUE); /* dispatches on_rx */

	slirpnet_netbe_cleanup(st.be);
	g_main_context_unref(ctx);
	if (!st.got_reply) {
		fprintf(stderr, "no ARP reply from the gateway\n");
		return 1;
	}
	return 0;
}
