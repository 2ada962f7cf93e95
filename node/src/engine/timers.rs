//! The driver's timeouts: scheduled by `Effect::ScheduleTimeout`, fired in
//! order by the event loop; a timeout of a height already passed is dropped.

use super::{now_ms, Engine};
use bizra_consensus::driver::{Input, Timeout};
use std::time::{Duration, Instant};

impl Engine {
    /// Schedules `timeout` to fire `after_ms` from now.
    pub(super) fn schedule(&mut self, timeout: Timeout, after_ms: u64) {
        self.timer_seq += 1;
        self.timers.insert(
            (Instant::now() + Duration::from_millis(after_ms), self.timer_seq),
            timeout,
        );
    }

    pub(super) async fn fire_timers(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        while let Some((&(at, seq), _)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            let t = self.timers.remove(&(at, seq)).expect("present");
            if t.height != self.driver.height() {
                continue;
            }
            let fx = self.driver.handle(now_ms(), Input::Timeout(t))?;
            self.execute(fx).await?;
        }
        Ok(())
    }
}
