//! The rollout: a pure state machine that moves new listener traffic from
//! the running version (A) to a new one (B) in steps, and goes back to A by
//! itself when B fails clearly more often.
//!
//! It knows nothing of sockets, processes or clocks. The manager feeds
//! [`Rollout::observe`] the time and both versions' cumulative [`Counts`],
//! and gets back a [`Decision`]: hold, give B a larger share, finish (B has
//! everything; drain A), or roll back with the [`Verdict`] that says why.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use weft_runtime::deploy::rollout::{Counts, Decision, Gate, Rollout, Schedule};
//!
//! let start = Instant::now();
//! let schedule = Schedule { steps: vec![10, 50, 100], over: Duration::from_secs(20) };
//! let mut rollout = Rollout::new(schedule, Gate::default(), start);
//! let quiet = Counts::default();
//! assert_eq!(rollout.observe(start, quiet, quiet), Decision::Shift { step: 0, percent: 10 });
//! assert_eq!(rollout.observe(start + Duration::from_secs(1), quiet, quiet), Decision::Hold);
//! assert_eq!(rollout.observe(start + Duration::from_secs(10), quiet, quiet), Decision::Shift { step: 1, percent: 50 });
//! assert_eq!(rollout.observe(start + Duration::from_secs(20), quiet, quiet), Decision::Done);
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// How the shift proceeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// B's share of new requests at each step, in percent: rising, and
    /// ending at 100.
    pub steps: Vec<u8>,
    /// How long the shift takes, from the first step to the last; the
    /// steps are spread evenly over it. Zero switches at once.
    pub over: Duration,
}

impl Schedule {
    /// The default steps: 10, 25, 50 and 100 percent.
    pub const DEFAULT_STEPS: [u8; 4] = [10, 25, 50, 100];

    /// Parses `--steps` such as `10,25,50,100`.
    pub fn parse_steps(text: &str) -> Result<Vec<u8>, String> {
        let steps = text
            .split(',')
            .map(|s| {
                let s = s.trim().trim_end_matches('%');
                s.parse::<u8>()
                    .ok()
                    .filter(|p| (1..=100).contains(p))
                    .ok_or_else(|| format!("'{s}' is not a percentage from 1 to 100"))
            })
            .collect::<Result<Vec<u8>, String>>()?;
        if steps.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("the steps {text} must rise, such as 10,25,50,100"));
        }
        if steps.last() != Some(&100) {
            return Err(format!(
                "the steps {text} must end at 100, such as 10,25,50,100"
            ));
        }
        Ok(steps)
    }

    /// When step `index` is due, counted from the start of the shift.
    fn due(&self, index: usize) -> Duration {
        match self.steps.len() {
            0 | 1 => Duration::ZERO,
            n => self.over.mul_f64(index as f64 / (n - 1) as f64),
        }
    }
}

/// When B counts as worse than A.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// How much higher B's failure rate must be than A's, as a fraction
    /// (0.01 is one percentage point).
    pub margin: f64,
    /// How many of B's requests (or calls) the window must hold before B
    /// is judged.
    pub min_requests: u64,
    /// How far back the comparison looks.
    pub window: Duration,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            margin: 0.01,
            min_requests: 20,
            window: Duration::from_secs(30),
        }
    }
}

/// One version's cumulative counts since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered at the listeners.
    pub requests: u64,
    /// Of those, the ones answered with a 5xx.
    pub failed_requests: u64,
    /// Calls between components that crossed a process.
    pub calls: u64,
    /// Of those, the ones that failed.
    pub failed_calls: u64,
}

impl Counts {
    fn since(self, base: Counts) -> Counts {
        Counts {
            requests: self.requests.saturating_sub(base.requests),
            failed_requests: self.failed_requests.saturating_sub(base.failed_requests),
            calls: self.calls.saturating_sub(base.calls),
            failed_calls: self.failed_calls.saturating_sub(base.failed_calls),
        }
    }
}

/// What the manager should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing changes.
    Hold,
    /// Give B `percent` of new requests: step `step` of the schedule.
    Shift {
        /// The step's index in the schedule.
        step: usize,
        /// B's share, in percent.
        percent: u8,
    },
    /// B has all new requests: let A's in-flight ones finish, then stop A.
    Done,
    /// B is worse than A: give A everything again and stop B.
    RollBack(Verdict),
}

/// Why a rollout went back: what failed, and how often, in each version.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// "requests at the listeners" or "calls between components".
    pub what: &'static str,
    /// A's failures and total in the window.
    pub a: (u64, u64),
    /// B's failures and total in the window.
    pub b: (u64, u64),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |(failed, total): (u64, u64)| {
            if total == 0 {
                0.0
            } else {
                100.0 * failed as f64 / total as f64
            }
        };
        write!(
            f,
            "the new version failed {} of {} {} ({:.1}%), the running one {} of {} ({:.1}%)",
            self.b.0,
            self.b.1,
            self.what,
            pct(self.b),
            self.a.0,
            self.a.1,
            pct(self.a)
        )
    }
}

/// One rollout from A to B.
#[derive(Debug)]
pub struct Rollout {
    schedule: Schedule,
    gate: Gate,
    started: Instant,
    /// The last step given, if any.
    step: Option<usize>,
    /// (time, A's counts, B's counts), oldest first, reaching back one
    /// sample beyond the window.
    samples: VecDeque<(Instant, Counts, Counts)>,
    over: bool,
}

impl Rollout {
    /// A rollout whose shift starts at `now`.
    pub fn new(schedule: Schedule, gate: Gate, now: Instant) -> Rollout {
        Rollout {
            schedule,
            gate,
            started: now,
            step: None,
            samples: VecDeque::new(),
            over: false,
        }
    }

    /// A rollout that an earlier driver left with B at `percent`: it goes
    /// on from the last step at or below that share, whose time is taken
    /// to be `now`, so the remaining steps keep their spacing. The step
    /// reached is not given again.
    pub fn resume(schedule: Schedule, gate: Gate, now: Instant, percent: u8) -> Rollout {
        let reached = schedule.steps.iter().rposition(|s| *s <= percent);
        let started = reached.map_or(now, |i| now.checked_sub(schedule.due(i)).unwrap_or(now));
        Rollout {
            schedule,
            gate,
            started,
            step: reached,
            samples: VecDeque::new(),
            over: false,
        }
    }

    /// Takes both versions' counts at `now` and says what to do. After
    /// [`Decision::Done`] or [`Decision::RollBack`], it only holds.
    pub fn observe(&mut self, now: Instant, a: Counts, b: Counts) -> Decision {
        if self.over {
            return Decision::Hold;
        }
        self.samples.push_back((now, a, b));
        // Keep the newest sample at or before the window's start as the base.
        while self.samples.len() > 1
            && now.saturating_duration_since(self.samples[1].0) >= self.gate.window
        {
            self.samples.pop_front();
        }
        if let Some(verdict) = self.verdict() {
            self.over = true;
            return Decision::RollBack(verdict);
        }
        let elapsed = now.saturating_duration_since(self.started);
        let due = (0..self.schedule.steps.len())
            .rev()
            .find(|&i| self.schedule.due(i) <= elapsed)
            .unwrap_or(0);
        if self.step == Some(due) {
            return Decision::Hold;
        }
        self.step = Some(due);
        match self.schedule.steps[due] {
            100 => {
                self.over = true;
                Decision::Done
            }
            percent => Decision::Shift { step: due, percent },
        }
    }

    /// The step given last, counted from 1 (0 before the first).
    pub fn step(&self) -> usize {
        self.step.map_or(0, |s| s + 1)
    }

    /// B's share of new requests now, in percent.
    pub fn percent(&self) -> u8 {
        self.step.map_or(0, |s| self.schedule.steps[s])
    }

    /// A's and B's counts within the gate's window, as last observed.
    pub fn window(&self) -> (Counts, Counts) {
        match (self.samples.front(), self.samples.back()) {
            (Some((_, a0, b0)), Some((_, a1, b1))) => (a1.since(*a0), b1.since(*b0)),
            _ => (Counts::default(), Counts::default()),
        }
    }

    /// Whether B is worse than A over the window, by requests or by calls.
    fn verdict(&self) -> Option<Verdict> {
        if self.samples.is_empty() {
            return None;
        }
        let (a, b) = self.window();
        let rate = |failed: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                failed as f64 / total as f64
            }
        };
        let worse = |a: (u64, u64), b: (u64, u64)| {
            b.1 >= self.gate.min_requests
                && rate(b.0, b.1) - rate(a.0, a.1) >= self.gate.margin - f64::EPSILON
        };
        let checks = [
            (
                "requests at the listeners",
                (a.failed_requests, a.requests),
                (b.failed_requests, b.requests),
            ),
            (
                "calls between components",
                (a.failed_calls, a.calls),
                (b.failed_calls, b.calls),
            ),
        ];
        checks
            .into_iter()
            .find(|(_, a, b)| worse(*a, *b))
            .map(|(what, a, b)| Verdict { what, a, b })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn counts(requests: u64, failed_requests: u64) -> Counts {
        Counts {
            requests,
            failed_requests,
            ..Counts::default()
        }
    }

    fn rollout(steps: &[u8], over: u64) -> (Rollout, Instant) {
        let now = Instant::now();
        let schedule = Schedule {
            steps: steps.to_vec(),
            over: secs(over),
        };
        (Rollout::new(schedule, Gate::default(), now), now)
    }

    #[test]
    fn steps_are_spread_over_the_duration() {
        let (mut r, t) = rollout(&[10, 25, 50, 100], 60);
        let q = Counts::default();
        assert_eq!(
            r.observe(t, q, q),
            Decision::Shift {
                step: 0,
                percent: 10
            }
        );
        assert_eq!(r.percent(), 10);
        assert_eq!(r.observe(t + secs(19), q, q), Decision::Hold);
        assert_eq!(
            r.observe(t + secs(20), q, q),
            Decision::Shift {
                step: 1,
                percent: 25
            }
        );
        assert_eq!(
            r.observe(t + secs(41), q, q),
            Decision::Shift {
                step: 2,
                percent: 50
            }
        );
        assert_eq!(r.observe(t + secs(60), q, q), Decision::Done);
        assert_eq!(r.observe(t + secs(61), q, q), Decision::Hold);
    }

    #[test]
    fn over_zero_switches_at_once() {
        let (mut r, t) = rollout(&[10, 25, 50, 100], 0);
        let q = Counts::default();
        assert_eq!(r.observe(t, q, q), Decision::Done);
    }

    #[test]
    fn a_late_observation_skips_to_the_step_that_is_due() {
        let (mut r, t) = rollout(&[10, 25, 50, 100], 30);
        let q = Counts::default();
        assert_eq!(
            r.observe(t, q, q),
            Decision::Shift {
                step: 0,
                percent: 10
            }
        );
        assert_eq!(
            r.observe(t + secs(25), q, q),
            Decision::Shift {
                step: 2,
                percent: 50
            }
        );
    }

    #[test]
    fn a_clearly_worse_version_is_rolled_back_with_the_figures() {
        let (mut r, t) = rollout(&[10, 50, 100], 60);
        r.observe(t, counts(1000, 0), counts(0, 0));
        // 19 failures of 19 requests: not judged yet.
        assert_eq!(
            r.observe(t + secs(2), counts(1180, 0), counts(19, 19)),
            Decision::Hold
        );
        let Decision::RollBack(verdict) = r.observe(t + secs(3), counts(1270, 1), counts(20, 20))
        else {
            panic!("B should have been rolled back");
        };
        assert_eq!(verdict.what, "requests at the listeners");
        assert_eq!((verdict.a, verdict.b), ((1, 270), (20, 20)));
        assert_eq!(
            verdict.to_string(),
            "the new version failed 20 of 20 requests at the listeners (100.0%), the running one 1 of 270 (0.4%)"
        );
        assert_eq!(
            r.observe(t + secs(4), counts(1300, 1), counts(25, 25)),
            Decision::Hold
        );
    }

    #[test]
    fn a_version_as_good_as_the_old_one_is_not_rolled_back() {
        let (mut r, t) = rollout(&[10, 50, 100], 60);
        r.observe(t, counts(0, 0), counts(0, 0));
        // Both fail 2%: no worse.
        assert_eq!(
            r.observe(t + secs(5), counts(500, 10), counts(100, 2)),
            Decision::Hold
        );
        // B at 2.5% against A's 2%: half a point, under the margin.
        assert_eq!(
            r.observe(t + secs(6), counts(1000, 20), counts(200, 5)),
            Decision::Hold
        );
    }

    #[test]
    fn failed_calls_between_components_count_too() {
        let (mut r, t) = rollout(&[10, 50, 100], 60);
        let calls = |calls, failed_calls| Counts {
            calls,
            failed_calls,
            ..Counts::default()
        };
        r.observe(t, calls(0, 0), calls(0, 0));
        let d = r.observe(t + secs(1), calls(400, 0), calls(40, 4));
        assert!(
            matches!(&d, Decision::RollBack(v) if v.what == "calls between components"),
            "{d:?}"
        );
    }

    #[test]
    fn old_failures_leave_the_window() {
        let (mut r, t) = rollout(&[10, 50, 100], 600);
        r.observe(t, counts(0, 0), counts(0, 0));
        // A burst of B failures, too few to judge, then a long quiet spell.
        assert_eq!(
            r.observe(t + secs(1), counts(100, 0), counts(10, 10)),
            Decision::Hold
        );
        assert_eq!(
            r.observe(t + secs(40), counts(200, 0), counts(20, 10)),
            Decision::Hold
        );
        // 30 s on, the window holds only the clean requests since second 40.
        let d = r.observe(t + secs(75), counts(400, 0), counts(60, 10));
        assert_eq!(d, Decision::Hold);
    }

    #[test]
    fn a_resumed_rollout_goes_on_from_the_step_it_reached() {
        let now = Instant::now();
        let schedule = Schedule {
            steps: vec![10, 25, 50, 100],
            over: secs(30),
        };
        let mut r = Rollout::resume(schedule.clone(), Gate::default(), now, 25);
        let q = Counts::default();
        assert_eq!(r.percent(), 25);
        // 25 % was reached already: not given again; 50 % is due 10 s on.
        assert_eq!(r.observe(now, q, q), Decision::Hold);
        assert_eq!(r.observe(now + secs(9), q, q), Decision::Hold);
        assert_eq!(
            r.observe(now + secs(10), q, q),
            Decision::Shift {
                step: 2,
                percent: 50
            }
        );
        assert_eq!(r.observe(now + secs(20), q, q), Decision::Done);
        // A share below the first step starts the schedule from its start.
        let mut r = Rollout::resume(schedule, Gate::default(), now, 0);
        assert_eq!(
            r.observe(now, q, q),
            Decision::Shift {
                step: 0,
                percent: 10
            }
        );
    }

    #[test]
    fn steps_are_parsed_and_checked() {
        assert_eq!(
            Schedule::parse_steps("10,25,50,100"),
            Ok(vec![10, 25, 50, 100])
        );
        assert_eq!(Schedule::parse_steps("100"), Ok(vec![100]));
        assert_eq!(Schedule::parse_steps(" 5%, 100% "), Ok(vec![5, 100]));
        assert!(
            Schedule::parse_steps("50,25,100")
                .unwrap_err()
                .contains("must rise")
        );
        assert!(
            Schedule::parse_steps("10,50")
                .unwrap_err()
                .contains("must end at 100")
        );
        assert!(
            Schedule::parse_steps("0,100")
                .unwrap_err()
                .contains("from 1 to 100")
        );
        assert!(Schedule::parse_steps("ten").unwrap_err().contains("'ten'"));
    }
}
