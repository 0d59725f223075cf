/*
 * damage.h — the port's damage kinds: the test of al_adapter_check() (alloclab/testing.h, DOC:
 * Damage). For tests and fuzzers only.
 *
 * Each kind breaks one invariant of the port's live state that al_adapter_check() guards (the
 * handle tables, the resources and their records, the devices and their opens and pools, the
 * segments' byte accounting, the agreement with the verifier and the miniport), runs
 * al_adapter_check() (the whole walk), and restores what it changed byte for byte.
 */
#ifndef ALLOCLAB_DAMAGE_H
#define ALLOCLAB_DAMAGE_H

#include <stddef.h>

#include "alloclab/alloclab.h"
#include "alloclab/testing.h"

#ifdef __cplusplus
extern "C" {
#endif

/* al_testing_damage_kind_count - how many port damage kinds there are (kinds 0 .. count-1). */
unsigned al_testing_damage_kind_count(void);

/* al_testing_damage_kind - kind @kind's static description; NULL when @kind >= the count. */
const al_damage_kind_info *al_testing_damage_kind(unsigned kind);

/*
 * al_testing_damage - break invariant @kind of @adapter's state, run al_adapter_check(), undo.
 * @adapter: a live adapter, quiescent for the whole call (testing.h, DOC: Damage).
 * @kind: 0 .. al_testing_damage_kind_count() - 1.
 * @pick: which of the kind's targets (its info's @target), modulo their number, in a
 *	deterministic order (e.g. handle-table order).
 * @msg, @cap: receive the walk's message when it fails (NUL-terminated, cut to @cap; nothing is
 *	written when @msg is NULL or @cap is 0).
 *
 * Returns: AL_DAMAGE_DETECTED, AL_DAMAGE_MISSED, AL_DAMAGE_NO_TARGET or AL_DAMAGE_UNKNOWN_KIND
 * (testing.h). In every case the adapter's state is as before the call; the caller compares the
 * message with the kind's @expect. Allocates nothing; takes and releases the port's locks as
 * al_adapter_check() does.
 */
al_damage_result al_testing_damage(al_adapter *adapter, unsigned kind, unsigned pick, char *msg,
                                   size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_DAMAGE_H */
