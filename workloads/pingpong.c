/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pingpong ROUNDS HOME PEER: stretches itself to PEER, then jumps there and back ROUNDS times
 * (2 jumps each). Around every jump it checks that the callee-saved registers, all 16
 * vector registers (256-bit YMM with AVX, else 128-bit XMM), MXCSR, the x87 state and a
 * stack buffer hold exactly what they held before, and it keeps a floating-point sum going
 * across the jumps. Prints the number of errors and a checksum that must equal a run
 * without jumps. Exit status 0 only if there were no errors.
 */
#include "common.h"
#include "elastic.h"

#include <errno.h>
#include <unistd.h>

static long jump_avx(long node, const uint64_t *gin, uint64_t *gout, const uint8_t *vin,
                     uint8_t *vout)
{
	long ret;

	__asm__ volatile(
		"mov 0(%[gin]), %%rbx\n\t"
		"mov 8(%[gin]), %%r12\n\t"
		"mov 16(%[gin]), %%r13\n\t"
		"mov 24(%[gin]), %%r14\n\t"
		"mov 32(%[gin]), %%r15\n\t"
		"vmovdqu 0(%[vin]), %%ymm0\n\t"
		"vmovdqu 32(%[vin]), %%ymm1\n\t"
		"vmovdqu 64(%[vin]), %%ymm2\n\t"
		"vmovdqu 96(%[vin]), %%ymm3\n\t"
		"vmovdqu 128(%[vin]), %%ymm4\n\t"
		"vmovdqu 160(%[vin]), %%ymm5\n\t"
		"vmovdqu 192(%[vin]), %%ymm6\n\t"
		"vmovdqu 224(%[vin]), %%ymm7\n\t"
		"vmovdqu 256(%[vin]), %%ymm8\n\t"
		"vmovdqu 288(%[vin]), %%ymm9\n\t"
		"vmovdqu 320(%[vin]), %%ymm10\n\t"
		"vmovdqu 352(%[vin]), %%ymm11\n\t"
		"vmovdqu 384(%[vin]), %%ymm12\n\t"
		"vmovdqu 416(%[vin]), %%ymm13\n\t"
		"vmovdqu 448(%[vin]), %%ymm14\n\t"
		"vmovdqu 480(%[vin]), %%ymm15\n\t"
		"syscall\n\t"
		"mov %%rbx, 0(%[gout])\n\t"
		"mov %%r12, 8(%[gout])\n\t"
		"mov %%r13, 16(%[gout])\n\t"
		"mov %%r14, 24(%[gout])\n\t"
		"mov %%r15, 32(%[gout])\n\t"
		"vmovdqu %%ymm0, 0(%[vout])\n\t"
		"vmovdqu %%ymm1, 32(%[vout])\n\t"
		"vmovdqu %%ymm2, 64(%[vout])\n\t"
		"vmovdqu %%ymm3, 96(%[vout])\n\t"
		"vmovdqu %%ymm4, 128(%[vout])\n\t"
		"vmovdqu %%ymm5, 160(%[vout])\n\t"
		"vmovdqu %%ymm6, 192(%[vout])\n\t"
		"vmovdqu %%ymm7, 224(%[vout])\n\t"
		"vmovdqu %%ymm8, 256(%[vout])\n\t"
		"vmovdqu %%ymm9, 288(%[vout])\n\t"
		"vmovdqu %%ymm10, 320(%[vout])\n\t"
		"vmovdqu %%ymm11, 352(%[vout])\n\t"
		"vmovdqu %%ymm12, 384(%[vout])\n\t"
		"vmovdqu %%ymm13, 416(%[vout])\n\t"
		"vmovdqu %%ymm14, 448(%[vout])\n\t"
		"vmovdqu %%ymm15, 480(%[vout])\n\t"
		: "=a"(ret)
		: "a"((long)ELASTIC_SYS_JUMP), "D"(0L), "S"(node), [gin] "r"(gin), [gout] "r"(gout),
		  [vin] "r"(vin), [vout] "r"(vout)
		: "rbx", "r12", "r13", "r14", "r15", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	return ret;
}

static long jump_sse(long node, const uint64_t *gin, uint64_t *gout, const uint8_t *vin,
                     uint8_t *vout)
{
	long ret;

	__asm__ volatile(
		"mov 0(%[gin]), %%rbx\n\t"
		"mov 8(%[gin]), %%r12\n\t"
		"mov 16(%[gin]), %%r13\n\t"
		"mov 24(%[gin]), %%r14\n\t"
		"mov 32(%[gin]), %%r15\n\t"
		"movdqu 0(%[vin]), %%xmm0\n\t"
		"movdqu 32(%[vin]), %%xmm1\n\t"
		"movdqu 64(%[vin]), %%xmm2\n\t"
		"movdqu 96(%[vin]), %%xmm3\n\t"
		"movdqu 128(%[vin]), %%xmm4\n\t"
		"movdqu 160(%[vin]), %%xmm5\n\t"
		"movdqu 192(%[vin]), %%xmm6\n\t"
		"movdqu 224(%[vin]), %%xmm7\n\t"
		"movdqu 256(%[vin]), %%xmm8\n\t"
		"movdqu 288(%[vin]), %%xmm9\n\t"
		"movdqu 320(%[vin]), %%xmm10\n\t"
		"movdqu 352(%[vin]), %%xmm11\n\t"
		"movdqu 384(%[vin]), %%xmm12\n\t"
		"movdqu 416(%[vin]), %%xmm13\n\t"
		"movdqu 448(%[vin]), %%xmm14\n\t"
		"movdqu 480(%[vin]), %%xmm15\n\t"
		"syscall\n\t"
		"mov %%rbx, 0(%[gout])\n\t"
		"mov %%r12, 8(%[gout])\n\t"
		"mov %%r13, 16(%[gout])\n\t"
		"mov %%r14, 24(%[gout])\n\t"
		"mov %%r15, 32(%[gout])\n\t"
		"movdqu %%xmm0, 0(%[vout])\n\t"
		"movdqu %%xmm1, 32(%[vout])\n\t"
		"movdqu %%xmm2, 64(%[vout])\n\t"
		"movdqu %%xmm3, 96(%[vout])\n\t"
		"movdqu %%xmm4, 128(%[vout])\n\t"
		"movdqu %%xmm5, 160(%[vout])\n\t"
		"movdqu %%xmm6, 192(%[vout])\n\t"
		"movdqu %%xmm7, 224(%[vout])\n\t"
		"movdqu %%xmm8, 256(%[vout])\n\t"
		"movdqu %%xmm9, 288(%[vout])\n\t"
		"movdqu %%xmm10, 320(%[vout])\n\t"
		"movdqu %%xmm11, 352(%[vout])\n\t"
		"movdqu %%xmm12, 384(%[vout])\n\t"
		"movdqu %%xmm13, 416(%[vout])\n\t"
		"movdqu %%xmm14, 448(%[vout])\n\t"
		"movdqu %%xmm15, 480(%[vout])\n\t"
		: "=a"(ret)
		: "a"((long)ELASTIC_SYS_JUMP), "D"(0L), "S"(node), [gin] "r"(gin), [gout] "r"(gout),
		  [vin] "r"(vin), [vout] "r"(vout)
		: "rbx", "r12", "r13", "r14", "r15", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	return ret;
}

static int has_avx(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx");
}

int main(int argc, char **argv)
{
	long rounds, home, peer, errors = 0, jumps = 0, refused = 0, kinds = 0;
	uint64_t seed = 42, gin[5], gout[5];
	uint8_t vin[16 * 32], vout[16 * 32];
	volatile uint64_t stack[1024];
	double acc = 0.0;
	long double x87 = 1.0L;
	int avx = has_avx();
	csum_t c;

	if (argc < 4) {
		fprintf(stderr, "usage: pingpong ROUNDS HOME PEER\n");
		return 2;
	}
	rounds = atol(argv[1]);
	home = atol(argv[2]);
	peer = atol(argv[3]);
	csum_init(&c);
	if (elastic_stretch(0, (int)peer))
		printf("stretch: %s (running without jumps)\n", strerror(errno));
	/* Round to nearest-down: MXCSR must survive the jumps too. */
	__builtin_ia32_ldmxcsr((__builtin_ia32_stmxcsr() & ~0x6000u) | 0x2000u);
	for (long i = 0; i < rounds; i++) {
		for (long leg = 0; leg < 2; leg++) {
			long to = leg == 0 ? peer : home;
			unsigned int mx = __builtin_ia32_stmxcsr();
			long r;

			for (int k = 0; k < 5; k++)
				gin[k] = rng_next(&seed);
			for (int k = 0; k < 16 * 32; k += 8) {
				uint64_t v = rng_next(&seed);
				memcpy(vin + k, &v, 8);
			}
			for (int k = 0; k < 1024; k += 97)
				stack[k] = gin[k % 5] ^ (uint64_t)k;
			memset(vout, 0, sizeof(vout));
			r = avx ? jump_avx(to, gin, gout, vin, vout) : jump_sse(to, gin, gout, vin, vout);
			if (r < 0) {
				refused++;
			} else {
				jumps++;
			}
			if (memcmp(gin, gout, sizeof(gin)))
				errors++, kinds |= 1;
			if (memcmp(vin, vout, avx ? sizeof(vin) : 0) ||
			    (!avx && ({ int bad = 0; for (int k = 0; k < 16; k++)
					bad |= memcmp(vin + 32 * k, vout + 32 * k, 16);
				    bad; })))
				errors++, kinds |= 2;
			/* Control bits only: the sticky status flags follow whatever FP math the
			 * compiler scheduled around this point. */
			if ((__builtin_ia32_stmxcsr() ^ mx) & ~0x3fu)
				errors++, kinds |= 4;
			for (int k = 0; k < 1024; k += 97)
				if (stack[k] != (gin[k % 5] ^ (uint64_t)k))
					errors++, kinds |= 8;
			acc += 1.0 / (double)(i * 2 + leg + 3);
			x87 = x87 * 1.0000001L + 0.5L;
			csum_add(&c, gin[0] ^ (uint64_t)(acc * 1e12));
		}
	}
	csum_add(&c, (uint64_t)(x87 * 1000.0L));
	printf("pingpong: %s, %ld jump calls, %ld refused, %ld errors (kinds %#lx: 1 registers, "
	       "2 vectors, 4 mxcsr, 8 stack)\n", avx ? "avx" : "sse", jumps, refused, errors, kinds);
	printf("RESULT pingpong rounds=%ld checksum=%016llx errors=%ld\n", rounds,
	       (unsigned long long)csum_final(&c), errors);
	return errors ? 1 : 0;
}
