/* SPDX-License-Identifier: GPL-2.0 */
/*
 * intruder UID PID: what a local process of user UID may do to process PID (a shell, run as
 * the shell's uid: a local attacker on a member). Started as root, it first becomes UID (gid
 * UID, no supplementary groups, no capabilities). It tries ptrace (seize), /proc/PID/mem for reading and
 * writing, process_vm_readv and process_vm_writev (of the same bytes: nothing changes), and a
 * signal (0, which checks the right to send without sending, then SIGCONT, harmless to a
 * running process), and prints "intruder: ptrace=E mem_read=E mem_write=E vm_read=E
 * vm_write=E signal=E sigcont=E": each E is the errno of the refusal, 0 if it worked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <grp.h>
#include <sys/uio.h>
#include <unistd.h>

/* An address every x86-64 static binary of ours maps: its text starts here. */
#define TEXT 0x401000UL

static int try_open(pid_t pid, int flags)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	int fd = open(path, flags);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: intruder UID PID\n");
		return 2;
	}
	uid_t uid = atoi(argv[1]);
	pid_t pid = atoi(argv[2]);
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)) {
		perror("intruder: becoming that user");
		return 3;
	}
	int e_ptrace = 0, e_read, e_write, e_vmr = 0, e_vmw = 0;

	/* Seized, not stopped (a parked shell stops nowhere); our exit detaches it. */
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0)
		e_ptrace = errno;
	e_read = try_open(pid, O_RDONLY);
	e_write = try_open(pid, O_RDWR);

	char buf[8];
	struct iovec local = { buf, sizeof(buf) }, remote = { (void *)TEXT, sizeof(buf) };
	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) < 0)
		e_vmr = errno;
	/* Written back unchanged if the read worked; a refusal comes before any write. */
	if (process_vm_writev(pid, &local, 1, &remote, 1, 0) < 0)
		e_vmw = errno;
	/* Same uid: the kernel's own rule lets these through; a shell's must not. */
	int e_sig = kill(pid, 0) < 0 ? errno : 0;
	int e_cont = kill(pid, SIGCONT) < 0 ? errno : 0;
	printf("intruder: ptrace=%d mem_read=%d mem_write=%d vm_read=%d vm_write=%d signal=%d "
	       "sigcont=%d\n",
	       e_ptrace, e_read, e_write, e_vmr, e_vmw, e_sig, e_cont);
	return 0;
}
