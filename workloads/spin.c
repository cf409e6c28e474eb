/* SPDX-License-Identifier: GPL-2.0 */
/*
 * spin PEER [handler|bushandler]: stretches itself to PEER, jumps there and spins in user code
 * without syscalls, so that it runs away from home until a signal sent at home stops it. With
 * "handler", SIGINT is caught: the handler (which runs at home after the recall) prints and
 * exits with status 3. With "bushandler", SIGBUS is caught (prints, exits 5): if PEER dies
 * while spin runs there, spin must die of SIGBUS all the same, never run its handler at home
 * on the registers it left with.
 */
#include "elastic.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile unsigned long counter;

static void on_bus(int sig)
{
	(void)sig;
	static const char msg[] = "caught SIGBUS\n";
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(4);
	_exit(5);
}

static void on_int(int sig)
{
	(void)sig;
	static const char msg[] = "caught SIGINT\n";
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(4);
	_exit(3);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: spin PEER [handler|bushandler]\n");
		return 2;
	}
	if (argc > 2 && !strcmp(argv[2], "handler"))
		signal(SIGINT, on_int);
	if (argc > 2 && !strcmp(argv[2], "bushandler"))
		signal(SIGBUS, on_bus);
	if (elastic_stretch(0, atoi(argv[1])) || elastic_jump(0, atoi(argv[1]))) {
		perror("spin: stretch/jump");
		return 1;
	}
	for (;;)
		counter++;
}
