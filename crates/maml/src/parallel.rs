//! The tasks of an outer batch computed on several threads at once.
//!
//! On the CPU backend much of a training step (element-wise kernels, dropout masks, optimizer
//! updates) runs on the calling thread alone while only matrix products use every core; two
//! independent tasks side by side fill the gaps. Each task gets its own seeds before any thread
//! starts, so results do not depend on the number of threads or on which finishes first.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

/// Burn's backward pass recurses through the graph; the main thread's 8 MiB, not a spawned
/// thread's default 2 MiB.
const STACK_BYTES: usize = 8 << 20;

/// Computes `work(index)` for every index below `count` on up to `threads` threads (on the
/// calling thread alone when `threads` is 1), handing each result to `done` on the calling
/// thread as soon as it is ready. Once `done` breaks, no further index starts; those already
/// running finish and their results are dropped.
pub(crate) fn for_each_task<T: Send>(
    threads: usize,
    count: usize,
    work: impl Fn(usize) -> T + Sync,
    mut done: impl FnMut(usize, T) -> ControlFlow<()>,
) {
    if threads <= 1 || count <= 1 {
        for index in 0..count {
            if done(index, work(index)).is_break() {
                return;
            }
        }
        return;
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(count) {
            let sender = sender.clone();
            let (next, stop, work) = (&next, &stop, &work);
            std::thread::Builder::new()
                .name("maml-task".into())
                .stack_size(STACK_BYTES)
                .spawn_scoped(scope, move || {
                    while !stop.load(Ordering::Relaxed) {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= count || sender.send((index, work(index))).is_err() {
                            break;
                        }
                    }
                })
                .expect("the operating system refused a thread");
        }
        drop(sender);
        for (index, result) in receiver {
            if done(index, result).is_break() {
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_is_computed_once_whatever_the_thread_count() {
        for threads in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            for_each_task(
                threads,
                5,
                |index| index * 10,
                |index, value| {
                    assert_eq!(value, index * 10);
                    seen.push(index);
                    ControlFlow::Continue(())
                },
            );
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2, 3, 4], "{threads} threads");
        }
    }

    #[test]
    fn tasks_run_on_several_threads_at_once() {
        let running = AtomicUsize::new(0);
        let overlapped = AtomicBool::new(false);
        for_each_task(
            2,
            2,
            |_| {
                running.fetch_add(1, Ordering::SeqCst);
                // Both tasks wait for each other: this only ends if they run at the same time.
                while running.load(Ordering::SeqCst) < 2 {
                    std::thread::yield_now();
                }
                overlapped.store(true, Ordering::SeqCst);
            },
            |_, ()| ControlFlow::Continue(()),
        );
        assert!(overlapped.load(Ordering::SeqCst));
    }

    #[test]
    fn breaking_stops_new_tasks() {
        let started = AtomicUsize::new(0);
        let mut handed = 0;
        for_each_task(
            1,
            10,
            |_| started.fetch_add(1, Ordering::SeqCst),
            |_, _| {
                handed += 1;
                ControlFlow::Break(())
            },
        );
        assert_eq!((started.load(Ordering::SeqCst), handed), (1, 1));
    }
}
