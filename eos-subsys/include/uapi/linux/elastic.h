/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * ElasticOS user-space ABI: the operations of elastic_ctl(2). The one source of these
 * numbers: the kernel (through bindgen), eosctl (its build script reads this file) and
 * libelastic include it. The syscall numbers themselves are __NR_elastic_stretch,
 * __NR_elastic_ctl and __NR_elastic_jump from <asm/unistd_64.h>.
 */
#ifndef _UAPI_LINUX_ELASTIC_H
#define _UAPI_LINUX_ELASTIC_H

/* elastic_ctl(op, pid, arg) */
#define ELASTIC_CTL_BUDGET 1 /* arg: local memory budget in pages, 0 = none */
#define ELASTIC_CTL_MARK 2   /* arg: stretch automatically past this many pages, 0 = on pressure */
#define ELASTIC_CTL_STICKY 3 /* arg: 1 = pin at home (the jump policy leaves it), 0 = unpin */

#endif /* _UAPI_LINUX_ELASTIC_H */
