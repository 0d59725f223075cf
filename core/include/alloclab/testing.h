/*
 * testing.h — controls that only tests and fuzzers use: making the host allocations of the
 * port, the sim miniport and the simulated GPU fail (alloclab/host_alloc.h), and the vocabulary
 * of the damage kinds that test the invariant walks (DOC: Damage below).
 *
 * DOC: Overview
 * A test installs a hook with al_testing_set_host_alloc_fault(); from then on every
 * al_host_malloc/calloc/realloc asks it whether to fail, before touching the C library. The
 * hook decides (count calls, fail the n-th once or from then on): the fuzz targets bridge it to
 * their adapter's fault injector, point FAULT_HOST_ALLOCATION of alloclab/hw/fault_injection.h,
 * so "the n-th host allocation fails" is one more fault point of the input; a unit test may count
 * by itself. The classic out-of-memory loop (SQLite's) is then: fail allocation 1, 2, 3, ... of
 * an operation until it completes, once failing a single allocation and once failing every one
 * from the n-th on; after each, check that a failed call changed nothing and leaked nothing.
 *
 * Ownership: the hook struct stays the caller's; it must stay valid until it is replaced or
 * removed (al_testing_set_host_alloc_fault(NULL)) and no allocation can still be asking it.
 *
 * Threading: the hook is process-wide. Installing or removing it is atomic (an allocation sees
 * the old hook or the new one); should_fail may be called from any thread that allocates, so it
 * must be thread-safe when the code under test allocates from several threads.
 */
#ifndef ALLOCLAB_TESTING_H
#define ALLOCLAB_TESTING_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct al_host_alloc_fault - a host-allocation fault hook.
 * @should_fail: asked once per al_host_malloc/calloc/realloc with @context and the requested
 *	size in bytes (count * size for calloc, saturated at SIZE_MAX); true makes that allocation
 *	return NULL. It must not allocate through alloclab/host_alloc.h itself.
 * @context: passed back to @should_fail.
 */
typedef struct al_host_alloc_fault {
  bool (*should_fail)(void *context, size_t bytes);
  void *context;
} al_host_alloc_fault;

/**
 * al_testing_set_host_alloc_fault - install @hook (replacing any other), or remove it (NULL).
 * @hook: the hook, borrowed (see Ownership above); NULL: no allocation is ever made to fail.
 *
 * Returns: the hook that was installed before (NULL when none), so a caller can nest and
 * restore.
 */
const al_host_alloc_fault *al_testing_set_host_alloc_fault(const al_host_alloc_fault *hook);

/**
 * al_testing_host_alloc_failures - host allocations made to fail by a hook since the process
 * started (a monotonic count over every hook; the C library's own failures are not counted).
 */
unsigned long long al_testing_host_alloc_failures(void);

/* ---- Damage: the invariant walks' own test ------------------------------------------------ */

/*
 * DOC: Damage
 * A walk that never fails cannot find a bug. Each damage kind breaks one invariant that an
 * invariant walk guards, in the live state of an adapter (one field of one object: a count, a
 * link, a tag, a flag), runs the walk, and puts the field back byte for byte. The port's kinds
 * (alloclab/damage.h) are judged by al_adapter_check(), the sim miniport's
 * (alloclab/hw/sim_miniport.h) by sim_miniport_check_hardware(). The fuzz programs' `damage`
 * op calls them at any point of a program, so the walks are mutation-tested in every state the
 * fuzzers reach: a kind the walk misses is a blind spot, and a kind reported with a message that
 * lacks the kind's expected phrase was caught by some other check, by accident.
 *
 * Preconditions (both layers): the adapter is quiescent for the whole call: no other thread
 * calls into it or its miniport and no engine thread runs (the deterministic engine; the fuzz
 * executor skips damage on the threaded engine and under the schedules scheduler). Damage
 * allocates nothing, so a host-allocation fault hook does not change what it does.
 */

/* What one damage call found. Whatever the result, the state is as before the call. */
typedef enum al_damage_result {
  AL_DAMAGE_DETECTED = 0,     /* the walk failed, its message is in msg; the damage was undone */
  AL_DAMAGE_MISSED = 1,       /* the walk passed with the damage in place: an oracle blind spot */
  AL_DAMAGE_NO_TARGET = 2,    /* no live object the kind can damage (pick counts among them) */
  AL_DAMAGE_UNKNOWN_KIND = 3, /* kind out of range */
} al_damage_result;

/*
 * struct al_damage_kind_info - one damage kind, static data.
 * @name: the kind's name in the fuzzers' text form, e.g. "resource_count_above_capacity"
 *	(lower case, unique across the port's and the sim's kinds).
 * @target: what @pick counts among, e.g. "live resource" (for messages and docs).
 * @expect: a phrase the walk's message must contain when it catches this damage, e.g.
 *	"above capacity": it tells the check meant for the damage from any other.
 */
typedef struct al_damage_kind_info {
  const char *name;
  const char *target;
  const char *expect;
} al_damage_kind_info;

/*
 * struct al_damage_fields - the bytes a damage changed, to put back: the layers' damage code
 * (hw/sim's, hw/gpu's) records each field it breaks here and restores them all at once.
 * @count: how many entries of @field are saved (0: nothing to put back).
 * @field: each changed field's address, size and saved bytes, in the order they were changed.
 * The caller holds whatever guards the fields for both the write and the restore.
 */
#define AL_DAMAGE_MAX_FIELDS 4u
#define AL_DAMAGE_MAX_FIELD_BYTES 16u
typedef struct al_damage_fields {
  unsigned count;
  struct {
    void *address;
    size_t size;
    unsigned char saved[AL_DAMAGE_MAX_FIELD_BYTES];
  } field[AL_DAMAGE_MAX_FIELDS];
} al_damage_fields;

/* Damage code is oracle code: under libFuzzer it is not coverage-instrumented. */
#if defined(__clang__)
#define AL_DAMAGE_UNTRACED __attribute__((no_sanitize("coverage")))
#else
#define AL_DAMAGE_UNTRACED
#endif

/* Saves the @size bytes at @address in @fields, then writes @value over them. A kind changes
 * at most AL_DAMAGE_MAX_FIELDS fields (not checked at run time; AL_DAMAGE_SET checks each
 * field's size at compile time). */
AL_DAMAGE_UNTRACED static inline void al_damage_fields_write(al_damage_fields *fields, void *address,
                                                             const void *value, size_t size) {
  const unsigned i = fields->count++;
  fields->field[i].address = address;
  fields->field[i].size = size;
  memcpy(fields->field[i].saved, address, size);
  memcpy(address, value, size);
}

/* Writes every saved field back, the last first, byte for byte; then @fields is empty. */
AL_DAMAGE_UNTRACED static inline void al_damage_fields_restore(al_damage_fields *fields) {
  while (fields->count > 0) {
    const unsigned i = --fields->count;
    memcpy(fields->field[i].address, fields->field[i].saved, fields->field[i].size);
  }
}

/* Sets @lvalue (any scalar field, atomics included) to @value, saving its bytes in @fields. */
#define AL_DAMAGE_SET(fields, lvalue, value)                                                      \
  do {                                                                                            \
    _Static_assert(sizeof(lvalue) <= AL_DAMAGE_MAX_FIELD_BYTES, "a field the record can save");   \
    __typeof__(lvalue) al_damaged_ = (value);                                                     \
    al_damage_fields_write((fields), (void *)&(lvalue), (const void *)&al_damaged_, sizeof al_damaged_); \
  } while (0)

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_TESTING_H */
