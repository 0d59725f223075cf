#!/usr/bin/python3
"""prune.py: corpus pruning of a fuzz target's working corpus (.lab/fuzz/<target>/corpus), what
ClusterFuzz runs daily: `<target>_raw -merge=1 NEW OLD` keeps the smallest inputs that cover all
the features of the corpus, and NEW replaces OLD by renames that never lose the corpus.

    prune.py --fuzzer BIN [--root DIR] TARGET     prune now (whatever the limit says)
    prune.py --recover-only [--root DIR] TARGET   only finish or clean up an interrupted prune

`./lab fuzz TARGET --prune` runs the first, `./lab fuzz` the second before it touches the corpus;
`./lab nightly` imports this module (prune when over the limit, see should_prune). Exit status:
0 done, 1 the merge failed (the corpus is as it was; the log is named), 2 bad usage.

The folders, all in .lab/fuzz/<target>/ next to corpus/:
  corpus.prune-new    the merge writes here; incomplete until renamed to corpus.prune-ready
  corpus.prune-ready  a finished merge, not yet swapped in
  corpus.prune-old    the corpus before the prune, renamed aside, deleted last
The swap: corpus -> corpus.prune-old, corpus.prune-ready -> corpus, delete corpus.prune-old.
recover() reads which of them exist and finishes or undoes the step that was interrupted, so a
kill at any point leaves exactly one complete corpus at the next run.

prune.json (next to them) records the last prune: files before and after, seconds, when; the
limit that decides the next one is relative to `files_after`.
"""

import argparse
import dataclasses
import datetime
import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import triage  # noqa: E402  (kill_group, write_files_atomically)
from fuzz_options import libfuzzer_flags  # noqa: E402  (the target's flags, for main())

NEW_SUFFIX, READY_SUFFIX, OLD_SUFFIX = ".prune-new", ".prune-ready", ".prune-old"
STATE_FILE = "prune.json"
# flock'd exclusively while a prune or a recovery runs, shared while a fuzzer writes into the
# corpus (hold_for_fuzzing(); ./lab fuzz takes it with flock(1)): a fuzzer's new inputs never
# land in a folder a prune is renaming aside, and a prune never starts under a running fuzzer.
LOCK_FILE = "prune.lock"
# The limit (see should_prune): a merge runs every input once, about what one fork-mode start
# costs, so it pays back once the corpus is at least twice its pruned size; below MIN_FILES a
# start takes seconds and a merge is not worth its log line.
MIN_FILES = 1000
GROWTH_FACTOR = 2.0


class PruneError(Exception):
    """A prune that cannot start (bad target folder, a leftover that cannot be resolved)."""


@dataclasses.dataclass
class PruneResult:
    status: str  # "pruned", "failed", or "busy" (another process holds the lock: nothing done)
    files_before: int
    files_after: int  # == files_before when it failed: the corpus is untouched
    seconds: float
    log: str
    reason: str = ""  # why it failed

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def count_files(folder: str) -> int:
    """Plain files directly in @folder (what libFuzzer reads as the corpus); 0 if it is missing."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return 0


class Busy(Exception):
    """Another process holds the corpus's prune lock: a prune (or a recovery), or a fuzzer
    writing into the corpus."""


def _open_locked(corpus: str, mode: int, busy: str):
    """@corpus's prune.lock, opened and flock'd with @mode (LOCK_EX or LOCK_SH), at once; raises
    Busy with @busy (a format taking the corpus and the lock's path) when another process holds
    it in a conflicting mode."""
    folder = os.path.dirname(os.path.abspath(corpus))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    lock = open(path, "a")
    try:
        fcntl.flock(lock, mode | fcntl.LOCK_NB)
    except BlockingIOError as e:
        lock.close()
        raise Busy(busy % (corpus, path)) from e
    return lock


@contextlib.contextmanager
def _locked(corpus: str):
    """Holds .lab/fuzz/<target>/prune.lock for @corpus (flock, released when the process dies);
    raises Busy when another process holds it: another prune's corpus.prune-* folders, or a
    fuzzer writing into the corpus."""
    busy = "%s is in use: another prune, or a fuzzer writing into it, holds %s"
    with _open_locked(corpus, fcntl.LOCK_EX, busy) as lock:
        yield lock


def hold_for_fuzzing(corpus: str):
    """A shared flock on @corpus's prune.lock, for as long as a fuzzer writes into @corpus
    (nightly's fuzz step; ./lab fuzz takes the same lock with flock(1)): no prune renames the
    corpus away under it (a prune then returns "busy" and leaves it alone), and several fuzzers
    may hold it at once. Returns the open lock file: the caller closes it when the fuzzer is done,
    and passes its fileno() to the fuzzer process (pass_fds) so that the lock stays held as long
    as the fuzzer or its children live. Raises Busy, at once, while a prune or a recovery of
    @corpus runs."""
    busy = "a prune of %s is running (it holds %s); fuzz it when the prune is done"
    return _open_locked(corpus, fcntl.LOCK_SH, busy)


def recover(corpus: str) -> str:
    """Finishes or undoes an interrupted prune of @corpus; see _recover. While another process
    prunes it, leaves everything alone and says so."""
    try:
        with _locked(corpus):
            return _recover(corpus)
    except Busy as e:
        return "%s: its folders are left alone" % e


def _recover(corpus: str) -> str:
    """Finishes or undoes an interrupted prune of @corpus (the working corpus folder) and returns
    what it did ("" when there was nothing to do). Never deletes the only complete corpus:
      - corpus.prune-new (a merge that did not finish): deleted, the corpus is untouched;
      - corpus.prune-ready and corpus.prune-old (killed between the two renames): the ready one is
        renamed in; a `corpus` made meanwhile by a tool that did not know (seeds copied into a
        new folder) is emptied into it first;
      - corpus.prune-ready with the corpus in place (killed before the swap): swapped as planned;
      - corpus.prune-old with the corpus in place (killed before or while deleting it): deleted;
      - corpus.prune-old alone: renamed back (nothing else can be the corpus).
    Raises PruneError when a rename fails."""
    new, ready, old = corpus + NEW_SUFFIX, corpus + READY_SUFFIX, corpus + OLD_SUFFIX
    done = []
    try:
        if os.path.isdir(new):
            shutil.rmtree(new)
            done.append("deleted an unfinished merge (%s)" % os.path.basename(new))
        if os.path.isdir(ready) and os.path.isdir(old):
            if os.path.isdir(corpus):
                for name in os.listdir(corpus):
                    os.replace(os.path.join(corpus, name), os.path.join(ready, name))
                os.rmdir(corpus)
            os.rename(ready, corpus)
            done.append("finished an interrupted swap (the merged corpus is in place)")
        elif os.path.isdir(ready):
            _swap(corpus, ready, old)
            done.append("swapped in a finished merge")
        if os.path.isdir(old):
            if os.path.isdir(corpus):
                shutil.rmtree(old)
                done.append("deleted the corpus from before the last prune")
            else:
                os.rename(old, corpus)
                done.append("renamed the corpus from before an interrupted prune back")
    except OSError as e:
        raise PruneError("cannot recover from an interrupted prune of %s: %s (%s)"
                         % (corpus, e.strerror or e, e.filename or "")) from e
    return "; ".join(done)


def _run_merge(cmd: List[str], timeout: float, cwd: str, log, env: dict, lock_fd: int) -> int:
    """Runs the merge in a session of its own and returns its exit status. It inherits the prune
    lock, so should this process die without killing it, the lock stays held until the merge
    ends and no recovery deletes the folder it writes. A timeout or an interruption (Ctrl-C)
    kills its whole group (libFuzzer's merge runs an inner process) before raising."""
    with subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                          pass_fds=(lock_fd,)) as proc:
        try:
            return proc.wait(timeout=timeout)
        except BaseException:
            triage.kill_group(proc)
            proc.wait()
            raise


def _swap(corpus: str, ready: str, old: str) -> None:
    """corpus -> old, ready -> corpus, delete old: at every point one complete corpus exists
    under a name recover() knows."""
    os.rename(corpus, old)
    os.rename(ready, corpus)
    shutil.rmtree(old)


def read_state(target_dir: str) -> dict:
    """prune.json of @target_dir, or {} when missing or unreadable (then the limit is MIN_FILES)."""
    try:
        with open(os.path.join(target_dir, STATE_FILE), encoding="utf-8") as f:
            state = json.load(f)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def should_prune(files: int, state: dict) -> Tuple[bool, str]:
    """(prune?, why) for a corpus of @files files whose last prune left state["files_after"]:
    prune when it holds more than MIN_FILES and more than GROWTH_FACTOR times that."""
    after = state.get("files_after")
    limit = MIN_FILES
    if isinstance(after, int) and after >= 0:
        limit = max(MIN_FILES, int(GROWTH_FACTOR * after))
        basis = "%g x the %d files after the last prune, at least %d" % (GROWTH_FACTOR, after, MIN_FILES)
    else:
        basis = "no prune recorded yet: %d" % MIN_FILES
    if files > limit:
        return True, "%d files > limit %d (%s)" % (files, limit, basis)
    return False, "%d files <= limit %d (%s)" % (files, limit, basis)


def prune(fuzzer: str, corpus: str, flags: List[str], log_path: str, timeout: Optional[float] = None) -> PruneResult:
    """Minimizes the working corpus @corpus with `setarch -R @fuzzer -merge=1 @flags NEW @corpus`
    (NEW = corpus.prune-new) and swaps the result in (see recover); writes the fuzzer's output to
    @log_path and, on success, prune.json next to @corpus. @timeout (seconds) bounds the merge;
    default 600 + 0.2 s per input. A merge that fails, is killed, times out or keeps no input of
    a non-empty corpus changes nothing and returns status "failed" with the reason. Raises
    PruneError when a leftover cannot be resolved or the swap's renames fail. While another
    process prunes the same corpus, or a fuzzer writes into it (hold_for_fuzzing()), returns "busy" at once
    and touches nothing."""
    # The merge runs in prune-work/ (where crash files land): paths must not be relative.
    corpus, fuzzer = os.path.abspath(corpus), os.path.abspath(fuzzer)
    try:
        with _locked(corpus) as lock:
            return _prune(fuzzer, corpus, flags, log_path, timeout, lock.fileno())
    except Busy as e:
        count = count_files(corpus)
        return PruneResult("busy", count, count, 0.0, log_path, str(e))


def _prune(fuzzer: str, corpus: str, flags: List[str], log_path: str, timeout: Optional[float],
           lock_fd: int) -> PruneResult:
    _recover(corpus)
    os.makedirs(corpus, exist_ok=True)
    before = count_files(corpus)
    new, ready, old = corpus + NEW_SUFFIX, corpus + READY_SUFFIX, corpus + OLD_SUFFIX
    target_dir = os.path.dirname(corpus)
    work = os.path.join(target_dir, "prune-work")  # the merge's crash files, if an input crashes
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.makedirs(new)
    if timeout is None:
        timeout = 600 + 0.2 * before
    cmd = ["setarch", "-R", fuzzer, "-merge=1", "-artifact_prefix=" + work + "/"] + flags + [new, corpus]
    started = time.monotonic()
    reason = ""
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        log.write("$ %s\n" % " ".join(cmd))
        log.flush()
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "symbolize=0:" + env.get("ASAN_OPTIONS", "")
        try:
            if not os.access(fuzzer, os.X_OK):  # setarch would say so only as exit status 127
                raise OSError(errno.ENOENT if not os.path.exists(fuzzer) else errno.EACCES,
                              "no executable fuzzer at %s" % fuzzer)
            returncode = _run_merge(cmd, timeout, work, log, env, lock_fd)
            if returncode != 0:
                reason = "the merge exited with status %d" % returncode
        except subprocess.TimeoutExpired:
            reason = "the merge ran past %ds and was stopped" % timeout
        except OSError as e:
            reason = "cannot run %s: %s" % (fuzzer, e.strerror)
    seconds = round(time.monotonic() - started, 1)
    after = count_files(new)
    if not reason and before and not after:
        reason = "the merge kept no input of %d" % before
    if reason:
        shutil.rmtree(new, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        return PruneResult("failed", before, before, seconds, log_path, reason)
    os.rename(new, ready)  # the merge is complete: from here recover() finishes the swap
    _swap(corpus, ready, old)
    shutil.rmtree(work, ignore_errors=True)
    state = {"files_before": before, "files_after": after, "seconds": seconds,
             "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    triage.write_files_atomically({os.path.join(target_dir, STATE_FILE): (json.dumps(state, indent=2) + "\n").encode()})
    return PruneResult("pruned", before, after, seconds, log_path)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="tools/prune.py", description="Prune a fuzz target's working corpus "
                                     "(.lab/fuzz/TARGET/corpus) to the inputs that keep all its features (libFuzzer -merge=1).")
    parser.add_argument("target")
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="the tree whose .lab/ and fuzz/targets/ are used (default: this repository)")
    parser.add_argument("--fuzzer", help="the target's libFuzzer binary (<target>_raw of --config=fuzz)")
    parser.add_argument("--recover-only", action="store_true", help="only finish or clean up an interrupted prune")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_]+", args.target):
        parser.error("'%s' is not a target name" % args.target)
    corpus = os.path.join(args.root, ".lab", "fuzz", args.target, "corpus")
    try:
        if args.recover_only:
            what = recover(corpus)
            if what:
                print("prune: %s: %s" % (args.target, what), flush=True)
            return 0
        if not args.fuzzer or not os.access(args.fuzzer, os.X_OK):
            parser.error("--fuzzer must name the target's executable libFuzzer binary (got %r)" % args.fuzzer)
        what = recover(corpus)
        if what:
            print("prune: %s: %s" % (args.target, what), flush=True)
        print("prune: %s: merging %s (%d files)" % (args.target, os.path.relpath(corpus, args.root), count_files(corpus)),
              flush=True)
        result = prune(args.fuzzer, corpus, libfuzzer_flags(args.root, args.target),
                       os.path.join(args.root, ".lab", "fuzz", args.target, "prune.log"))
    except (PruneError, triage.TriageError) as e:
        print("prune: error: %s" % e, file=sys.stderr)
        return 1
    log = os.path.relpath(result.log, args.root)
    if result.status != "pruned":
        print("prune: error: %s: %s; the corpus is unchanged (%d files; log: %s)"
              % (args.target, result.reason, result.files_before, log), file=sys.stderr)
        return 1
    print("prune: %s: %d -> %d files in %.1fs (log: %s)" % (args.target, result.files_before, result.files_after,
                                                            result.seconds, log), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
