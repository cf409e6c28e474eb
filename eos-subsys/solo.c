// SPDX-License-Identifier: GPL-2.0
/*
 * Who may touch a process's memory. The one-task rule of a stretched process: only the
 * process itself touches its memory, so no task may join its mm from the start of a stretch
 * on (kernel/fork.c checks MMF_ELASTIC_SOLO under siglock; stretch.rs calls these). And a
 * shell nobody may look into or steer (umh.rs calls elastic_shell_seal).
 */
#include <linux/elastic.h>
#include <linux/sched.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>

int elastic_solo_begin(struct task_struct *t, struct mm_struct *mm);
void elastic_solo_end(struct mm_struct *mm);
int elastic_shell_seal(void);
bool elastic_current_guest(void);

/*
 * Sets MMF_ELASTIC_SOLO on @mm, @t's, then counts under @t's siglock: 0 if @t is its
 * group's only thread and nothing else uses @mm, -EINVAL if it has other threads, -EBUSY
 * if another task shares @mm or holds it for a moment (a CLONE_VM child, a vfork child
 * running, a /proc reader), -ESRCH if @t is exiting. A task created after the count is
 * refused by copy_process(), which tests the bit under the same lock after taking its
 * reference to the mm; one created before is counted.
 */
int elastic_solo_begin(struct task_struct *t, struct mm_struct *mm)
{
	unsigned long flags;
	int nr_threads, users;

	set_bit(MMF_ELASTIC_SOLO, &mm->flags);
	/* The bit before the counts, as copy_process() takes its reference before the test. */
	smp_mb__after_atomic();
	if (!lock_task_sighand(t, &flags))
		return -ESRCH;
	nr_threads = t->signal->nr_threads;
	users = atomic_read(&mm->mm_users);
	unlock_task_sighand(t, &flags);
	if (nr_threads != 1)
		return -EINVAL;
	if (users != 1)
		return -EBUSY;
	return 0;
}

/* A stretch that failed before its process was registered: tasks may join it again. */
void elastic_solo_end(struct mm_struct *mm)
{
	clear_bit(MMF_ELASTIC_SOLO, &mm->flags);
}

/*
 * Called by a new shell itself, parked on its first way to user mode after exec: it is made
 * not dumpable, so ptrace, /proc/PID/mem and process_vm_readv/writev on it need
 * CAP_SYS_PTRACE (ptrace_may_access), whoever shares its ids; through a shell, a local
 * process could otherwise run code, and so syscalls at home, as the stretched process.
 * -EPERM if a tracer attached before this (it would keep its hold): the shell must die.
 */
int elastic_shell_seal(void)
{
	set_dumpable(current->mm, SUID_DUMP_DISABLE);
	/* A tracer attached before the store is seen here; one after it is refused. */
	smp_mb();
	if (READ_ONCE(current->ptrace))
		return -EPERM;
	return 0;
}

/*
 * Whether the current task's mm is a shell's (MMF_ELASTIC_GUEST, set when the shell was
 * made and never cleared): such a task must never run a syscall here, registered or not.
 */
bool elastic_current_guest(void)
{
	return elastic_guest(current);
}
