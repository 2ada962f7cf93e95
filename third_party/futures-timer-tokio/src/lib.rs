//! `futures_timer::Delay` on tokio's timer.
//!
//! libp2p 0.56 (gossipsub, swarm, ping, identify, request-response, tcp)
//! times things with crates.io's `futures-timer` 3.0. Its `Delay::new` pushes
//! the timer onto a global list and wakes a helper thread, a futex wake and
//! usually a context switch, every time. gossipsub makes one `Delay` per
//! message per peer it sends to (the send queue's staleness timeout): at 100
//! validators, 300 a height per node, and timers were 6 % of a node's CPU
//! (docs/BENCHMARKS.md, session 11 profile).
//!
//! This crate has the same public API (`Delay::new`, `Delay::reset`, `Future`)
//! and is patched in for crates.io's (workspace `Cargo.toml`,
//! `[patch.crates-io]`; docs/adr/0016). A `Delay` only records its deadline.
//! Polling it when the deadline has passed is ready at once, with no timer at
//! all. Otherwise the first poll arms a `tokio::time::Sleep` on the runtime
//! that polls it: on bizra's current-thread runtime that is an entry in the
//! runtime's own timer wheel, no other thread. A `Delay` polled outside any
//! tokio runtime (no libp2p code in bizra does; a test or tool might) falls
//! back to a thread that sleeps until the deadline and wakes the task, so
//! the `Future` contract holds everywhere.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

/// A future that completes at a point in time.
pub struct Delay {
    deadline: Instant,
    armed: Armed,
}

enum Armed {
    /// Not polled (with time left) yet.
    No,
    /// A tokio timer for `deadline`.
    Tokio(Pin<Box<tokio::time::Sleep>>),
    /// A helper thread for `deadline` (polled outside a tokio runtime): the
    /// waker to wake, shared with the thread.
    Thread(Arc<Mutex<Option<Waker>>>),
}

impl Delay {
    /// A `Delay` that completes `dur` from now.
    pub fn new(dur: Duration) -> Delay {
        Delay {
            deadline: deadline_after(dur),
            armed: Armed::No,
        }
    }

    /// Moves the deadline to `dur` from now, whether or not this `Delay` has
    /// already completed.
    pub fn reset(&mut self, dur: Duration) {
        self.deadline = deadline_after(dur);
        match &mut self.armed {
            Armed::Tokio(sleep) => sleep.as_mut().reset(tokio::time::Instant::from_std(self.deadline)),
            // A helper thread keeps its old deadline: re-arm on the next poll.
            Armed::Thread(_) | Armed::No => self.armed = Armed::No,
        }
    }
}

/// `now + dur`, saturating far in the future (as futures-timer does for
/// durations an `Instant` cannot hold).
fn deadline_after(dur: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(dur)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if Instant::now() >= this.deadline {
            return Poll::Ready(());
        }
        loop {
            match &mut this.armed {
                Armed::Tokio(sleep) => return sleep.as_mut().poll(cx),
                Armed::Thread(waker) => {
                    *waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
                    // The thread may have fired between the check above and
                    // storing the waker: look again.
                    return if Instant::now() >= this.deadline {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    };
                }
                Armed::No => {
                    this.armed = match tokio::runtime::Handle::try_current() {
                        Ok(_) => Armed::Tokio(Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                            this.deadline,
                        )))),
                        Err(_) => Armed::Thread(wake_thread(this.deadline)),
                    };
                }
            }
        }
    }
}

/// A thread that sleeps until `deadline`, then wakes whatever waker was
/// stored last.
fn wake_thread(deadline: Instant) -> Arc<Mutex<Option<Waker>>> {
    let slot: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
    let shared = slot.clone();
    std::thread::spawn(move || {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        if let Some(w) = shared.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    });
    slot
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delay").field("deadline", &self.deadline).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test(flavor = "current_thread")]
    async fn completes_after_its_duration_not_before() {
        let start = Instant::now();
        let mut d = Delay::new(Duration::from_millis(50));
        assert!((&mut d).now_or_never().is_none(), "ready before its deadline");
        d.await;
        assert!(start.elapsed() >= Duration::from_millis(50), "{:?}", start.elapsed());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_elapsed_delay_is_ready_without_arming_a_timer() {
        let mut d = Delay::new(Duration::ZERO);
        assert_eq!((&mut d).now_or_never(), Some(()));
        assert!(matches!(d.armed, Armed::No));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reset_moves_an_armed_deadline_both_ways() {
        let mut d = Delay::new(Duration::from_secs(3600));
        assert!((&mut d).now_or_never().is_none());
        assert!(matches!(d.armed, Armed::Tokio(_)));
        let start = Instant::now();
        d.reset(Duration::from_millis(20));
        (&mut d).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(20) && took < Duration::from_secs(60),
            "{took:?}"
        );
        // A completed Delay that is reset waits again.
        d.reset(Duration::from_millis(30));
        assert!((&mut d).now_or_never().is_none(), "a reset Delay was still ready");
        d.await;
    }

    #[test]
    fn works_outside_a_tokio_runtime() {
        let start = Instant::now();
        futures::executor::block_on(Delay::new(Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Reset after arming the helper thread re-arms on the next poll.
        let mut d = Delay::new(Duration::from_secs(3600));
        assert!(futures::executor::block_on(futures::future::poll_fn(|cx| Poll::Ready(
            Pin::new(&mut d).poll(cx).is_pending()
        ))));
        d.reset(Duration::from_millis(10));
        futures::executor::block_on(d);
        assert!(start.elapsed() < Duration::from_secs(60));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_huge_duration_does_not_overflow() {
        let mut d = Delay::new(Duration::MAX);
        assert!((&mut d).now_or_never().is_none());
    }
}
