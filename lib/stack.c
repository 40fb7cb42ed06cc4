/* SPDX-License-Identifier: MIT */
/*
 * Coroutine stacks: mmap'd, committed lazily page by page, each with a guard
 * page below it, and pooled so that spawning reuses warm ones.
 *
 * Stacks are carved from slabs of SLAB_STACKS stacks.  Where the kernel has
 * MADV_GUARD_INSTALL (6.13+), the guard pages are installed inside the slab's
 * single mapping, so a million stacks stay a handful of VMAs; elsewhere each
 * guard is an mprotect(PROT_NONE) that splits the mapping, and
 * vm.max_map_count (65530 by default) caps a process near 32k stacks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#ifdef UCO__ASAN
#include <sanitizer/asan_interface.h>
#endif

#ifdef UCO_VALGRIND
#include <valgrind/valgrind.h>
/* While a stack is in use, Valgrind knows it is one, and so takes a jump
 * of the stack pointer into it for a switch (otherwise it warns "client
 * switching stacks?" and may misjudge what is addressable). */
#define STACK_IN_USE(s) ((s)->valgrind_id = VALGRIND_STACK_REGISTER((s)->base, (s)->base + (s)->size))
#define STACK_UNUSED(s) VALGRIND_STACK_DEREGISTER((s)->valgrind_id)
#else
#define STACK_IN_USE(s) ((void)(s))
#define STACK_UNUSED(s) ((void)(s))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

#define SLAB_STACKS 64

size_t uco__page_size(void)
{
	static size_t page;
	if (!page)
		page = (size_t)sysconf(_SC_PAGESIZE);
	return page;
}

/* Map `len` bytes of stack memory: private, lazily committed, and marked as
 * a stack (no transparent huge pages: one touched byte must cost one page,
 * not 2 MiB). */
static char *map_stack_memory(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
	               -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* MAP_STACK implies this from 6.7 on; older kernels need asking. */
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

static int install_guard(char *page, bool guard_madvise)
{
	if (guard_madvise)
		return madvise(page, uco__page_size(), MADV_GUARD_INSTALL) ? -errno : 0;
	return mprotect(page, uco__page_size(), PROT_NONE) ? -errno : 0;
}

/* Does this kernel have MADV_GUARD_INSTALL?  Asked once, on a scratch
 * page: 1 yes, 0 no (-EINVAL: an advice it does not know), -ENOMEM when it
 * could not be asked.  Guessing "no" then would cap the loop near 32k
 * stacks (vm.max_map_count) for the whole of its life. */
static int probe_guard_madvise(void)
{
	size_t page = uco__page_size();
	char *p = map_stack_memory(2 * page);
	if (!p)
		return -ENOMEM;
	int ok = madvise(p, page, MADV_GUARD_INSTALL) == 0 ? 1 : errno == EINVAL ? 0 : -ENOMEM;
	munmap(p, 2 * page);
	return ok;
}

int uco__stack_pool_init(struct uco__stack_pool *pool, size_t stack_size,
                         size_t keep_warm)
{
	memset(pool, 0, sizeof *pool);
	int guard = probe_guard_madvise();
	if (guard < 0)
		return guard;
	pool->stack_size = stack_size;
	pool->keep_warm = keep_warm;
	pool->guard_madvise = guard;
	return 0;
}

void uco__stack_pool_destroy(struct uco__stack_pool *pool)
{
	for (size_t i = 0; i < pool->nslabs; i++)
		munmap(pool->slabs[i].addr, pool->slabs[i].len);
	free(pool->slabs);
	free(pool->free);
	memset(pool, 0, sizeof *pool);
}

static int grow(void **array, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 256;
	while (n < need)
		n *= 2;
	void *p = realloc(*array, n * elem);
	if (!p)
		return -ENOMEM;
	*array = p;
	*cap = n;
	return 0;
}

/* Map a slab of SLAB_STACKS stacks and put them all on the free list. */
static int add_slab(struct uco__stack_pool *pool)
{
	size_t page = uco__page_size();
	size_t stride = pool->stack_size + page;
	size_t len = stride * SLAB_STACKS;

	/* Room for every stack there will be, all of which may be free at
	 * once; made first, so that a failure leaves nothing half-done. */
	int err = grow((void **)&pool->free, &pool->cap, pool->mapped + SLAB_STACKS,
	               sizeof *pool->free);
	if (!err)
		err = grow((void **)&pool->slabs, &pool->slabs_cap, pool->nslabs + 1,
		           sizeof *pool->slabs);
	if (err)
		return err;

	char *slab = map_stack_memory(len);
	if (!slab)
		return -ENOMEM;
	for (size_t i = 0; i < SLAB_STACKS; i++) {
		err = install_guard(slab + i * stride, pool->guard_madvise);
		if (err) {
			munmap(slab, len);
			/* EPERM/EINVAL from mprotect, ENOMEM when the split
			 * mappings exceed vm.max_map_count: no more stacks. */
			return -ENOMEM;
		}
	}
	pool->slabs[pool->nslabs++] = (struct uco__slab){ slab, len };
	/* Push in reverse so the lowest stack is taken first. */
	for (size_t i = SLAB_STACKS; i-- > 0;)
		pool->free[pool->nfree++] = slab + i * stride + page;
	pool->mapped += SLAB_STACKS;
	return 0;
}

/*
 * A pooled task gets its stack when it first runs (or just before: the
 * scheduler takes it a few places ahead to warm it), not at spawn: a task
 * that ends before the next one starts hands the next one a stack still
 * hot in the caches and the TLB, instead of each of a burst of tasks
 * touching its own.  Spawn reserves one, so that taking never fails.
 */
int uco__stack_pool_reserve_slow(struct uco__stack_pool *pool)
{
	if (pool->nfree == pool->reserved) { /* else the inline part's job */
		size_t had = pool->nfree;
		int err = add_slab(pool);
		if (err)
			return err;
		if (had) {
			/* The fresh stacks go below the free ones (reserved,
			 * not taken yet): free[0, ncold) are the cold ones, and
			 * taking from the top keeps preferring warm stacks. */
			char *fresh[SLAB_STACKS];
			memcpy(fresh, pool->free + had, sizeof fresh);
			memmove(pool->free + SLAB_STACKS, pool->free, had * sizeof *pool->free);
			memcpy(pool->free, fresh, sizeof fresh);
		}
		/* Fresh memory is not "warm": it costs page faults the same. */
		pool->ncold += SLAB_STACKS;
	}
	pool->reserved++;
	return 0;
}

void uco__stack_pool_unreserve(struct uco__stack_pool *pool)
{
	pool->reserved--;
}

#if defined(UCO__ASAN) || defined(UCO_VALGRIND)
void uco__stack_taken(struct uco__stack *s)
{
#ifdef UCO__ASAN
	/* A reused stack still carries the poison of the frames that ran on
	 * it (ClickHouse #100281). */
	ASAN_UNPOISON_MEMORY_REGION(s->base, s->size);
#endif
	STACK_IN_USE(s);
}

void uco__stack_returned(const struct uco__stack *s)
{
	STACK_UNUSED(s);
}
#endif

/*
 * Give back the memory of warm stacks that were not needed since the last
 * trim (the fewest warm stacks seen meanwhile were never taken), keeping
 * keep_warm.  The address space stays reserved; only the pages go.
 */
size_t uco__stack_pool_trim(struct uco__stack_pool *pool)
{
	size_t warm = pool->nfree - pool->ncold;
	size_t n = pool->warm_low < warm ? pool->warm_low : warm;
	if (warm - n < pool->keep_warm)
		n = warm > pool->keep_warm ? warm - pool->keep_warm : 0;
	for (size_t i = 0; i < n; i++) {
		char *base = pool->free[pool->ncold + i];
		/* Guard pages installed by madvise survive MADV_DONTNEED. */
		madvise(base, pool->stack_size, MADV_DONTNEED);
	}
	pool->ncold += n;
	pool->trimmed += n;
	pool->warm_low = pool->nfree - pool->ncold;
	return n;
}

int uco__stack_map(size_t size, bool guard_madvise, struct uco__stack *out)
{
	size_t page = uco__page_size();
	char *p = map_stack_memory(size + page);
	if (!p)
		return -ENOMEM;
	if (install_guard(p, guard_madvise)) {
		munmap(p, size + page);
		return -ENOMEM;
	}
	*out = (struct uco__stack){ .base = p + page, .size = size };
	STACK_IN_USE(out);
	return 0;
}

void uco__stack_unmap(const struct uco__stack *s)
{
	STACK_UNUSED(s);
	size_t page = uco__page_size();
	munmap(s->base - page, s->size + page);
}
