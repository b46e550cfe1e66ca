//! The rollout driver: the loop that moves new requests from the running
//! version (A) to a new one (B), the same on one machine and in a cluster.
//!
//! It sits between two seams and the pure [`Rollout`] state machine:
//!
//! - [`Traffic`]: where new requests go. On one machine, the manager's
//!   ingresses ([`crate::deploy::manager`]); in a cluster, the traffic
//!   ConfigMap that weft's ingress replicas read ([`crate::kube::rollout`]).
//! - [`Observed`]: where both versions' counts come from: the manager's
//!   ingresses and workers, or the cluster's ingress and pods.
//!
//! Every tick it reads the counts, asks the [`Rollout`] what to do, and
//! moves the traffic. It ends when B has everything ([`Ending::Done`]),
//! when B was worse and A has everything again ([`Ending::RolledBack`]),
//! or when it is stopped or cannot see or move the traffic for too long
//! ([`Ending::Stopped`]): then the traffic stays at the last share given,
//! which is safe (both versions serve), and a new driver can
//! [`resume`](Setup::resume_at) from there.
//!
//! Time is a [`Clock`], so the tests run the driver on a clock of their own.

use super::rollout::{Counts, Decision, Gate, Rollout, Schedule, Verdict};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A boxed future, as the seams return.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where new requests go.
pub trait Traffic: Send + Sync {
    /// Gives B `percent` of new requests and A the rest. It returns once
    /// the share is in force (and, in a cluster, recorded where a new
    /// driver finds it).
    fn shift(&self, percent: u8) -> Boxed<'_, anyhow::Result<()>>;
}

/// Where both versions' counts come from.
pub trait Observed: Send + Sync {
    /// A's and B's cumulative counts now.
    fn counts(&self) -> Boxed<'_, anyhow::Result<(Counts, Counts)>>;
}

/// Where the driver's time comes from.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
    /// Resolves `duration` from now.
    fn sleep(&self, duration: Duration) -> Boxed<'_, ()>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> Boxed<'_, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// What a driver is told to do.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The steps and how long they take.
    pub schedule: Schedule,
    /// When B counts as worse.
    pub gate: Gate,
    /// B's share that an earlier driver left, to go on from; `None` for a
    /// new rollout.
    pub resume_at: Option<u8>,
    /// How often the counts are read.
    pub tick: Duration,
    /// How long the counts may be unreadable, or the traffic unmovable,
    /// before the driver stops where it is.
    pub patience: Duration,
}

impl Setup {
    /// A new rollout with `schedule` and `gate`, looking every 250 ms and
    /// stopping after 30 s of not seeing or not moving the traffic.
    pub fn new(schedule: Schedule, gate: Gate) -> Setup {
        Setup {
            schedule,
            gate,
            resume_at: None,
            tick: Duration::from_millis(250),
            patience: Duration::from_secs(30),
        }
    }
}

/// What happened, as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// B now gets `percent` of new requests: step `step` (from 1) of `steps`.
    Shifted {
        /// The step, counted from 1.
        step: usize,
        /// How many steps there are.
        steps: usize,
        /// B's share, in percent.
        percent: u8,
    },
    /// The counts were read: A's and B's within the gate's window, at
    /// step `step` (from 1; 0 before the first) with B at `percent`.
    Observed {
        /// The step reached, counted from 1.
        step: usize,
        /// B's share, in percent.
        percent: u8,
        /// A's counts within the gate's window.
        a: Counts,
        /// B's counts within the gate's window.
        b: Counts,
    },
    /// The counts could not be read, or the traffic not moved; the driver
    /// holds and tries again.
    Trouble(String),
}

/// Hears the driver's events.
pub trait Watcher: Send {
    /// Takes one event.
    fn event(&mut self, event: Event) -> Boxed<'_, ()>;
}

/// How a drive ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// B has every new request.
    Done,
    /// B was worse; A has every new request again.
    RolledBack(Verdict),
    /// The driver stopped with the traffic where it was, for this reason.
    Stopped(String),
}

/// The seams a driver works between.
pub struct Seams<'a> {
    /// Where new requests go.
    pub traffic: &'a dyn Traffic,
    /// Where the counts come from.
    pub observed: &'a dyn Observed,
    /// Who hears what happens.
    pub watcher: &'a mut dyn Watcher,
    /// Where time comes from.
    pub clock: &'a dyn Clock,
}

/// Drives one rollout until it ends or `stop` resolves.
pub async fn drive(setup: Setup, seams: Seams<'_>, stop: impl Future<Output = ()>) -> Ending {
    let Seams {
        traffic,
        observed,
        watcher,
        clock,
    } = seams;
    tokio::pin!(stop);
    let now = || clock.now();
    let steps = setup.schedule.steps.len();
    let mut rollout = match setup.resume_at {
        Some(percent) => {
            let rollout =
                Rollout::resume(setup.schedule.clone(), setup.gate.clone(), now(), percent);
            // The share an earlier driver gave is given again, in case it
            // did not reach every place before that driver stopped.
            if let Err(e) = traffic.shift(rollout.percent()).await {
                return Ending::Stopped(format!(
                    "cannot give the new version its {} % again: {e:#}",
                    rollout.percent()
                ));
            }
            if rollout.percent() == 100 {
                return Ending::Done;
            }
            rollout
        }
        None => Rollout::new(setup.schedule.clone(), setup.gate.clone(), now()),
    };
    // Since when the counts have been unreadable, or a shift has failed.
    let mut troubled_since: Option<Instant> = None;
    let mut pending: Option<Decision> = None;
    loop {
        let outcome = async {
            // A decision whose shift failed is tried again before anything
            // else: the rollout has moved on in its own mind.
            let decision = match pending.take() {
                Some(decision) => decision,
                None => {
                    let (a, b) = observed.counts().await?;
                    let decision = rollout.observe(now(), a, b);
                    let (a, b) = rollout.window();
                    watcher
                        .event(Event::Observed {
                            step: rollout.step(),
                            percent: rollout.percent(),
                            a,
                            b,
                        })
                        .await;
                    decision
                }
            };
            let percent = match &decision {
                Decision::Hold => return Ok(None),
                Decision::Shift { percent, .. } => *percent,
                Decision::Done => 100,
                Decision::RollBack(_) => 0,
            };
            if let Err(e) = traffic.shift(percent).await {
                pending = Some(decision);
                return Err(e);
            }
            Ok::<_, anyhow::Error>(Some(decision))
        }
        .await;
        match outcome {
            Ok(decision) => {
                troubled_since = None;
                match decision {
                    None => {}
                    Some(Decision::Shift { step, percent }) => {
                        watcher
                            .event(Event::Shifted {
                                step: step + 1,
                                steps,
                                percent,
                            })
                            .await;
                    }
                    Some(Decision::Done) => return Ending::Done,
                    Some(Decision::RollBack(verdict)) => return Ending::RolledBack(verdict),
                    Some(Decision::Hold) => {}
                }
            }
            Err(e) => {
                let since = *troubled_since.get_or_insert_with(now);
                watcher.event(Event::Trouble(format!("{e:#}"))).await;
                if now().saturating_duration_since(since) >= setup.patience {
                    return Ending::Stopped(format!(
                        "for {:.0} s the rollout could not see or move the traffic ({e:#}); it \
                         stays at {} % for the new version",
                        setup.patience.as_secs_f64(),
                        rollout.percent()
                    ));
                }
            }
        }
        tokio::select! {
            biased;
            () = &mut stop => {
                return Ending::Stopped(format!(
                    "stopped with {} % of new requests going to the new version",
                    rollout.percent()
                ));
            }
            () = clock.sleep(setup.tick) => {}
        }
    }
}

/// The line that tells people about a shift, the same everywhere.
pub fn shifted_line(step: usize, steps: usize, percent: u8, to: &str) -> String {
    format!("step {step} of {steps}: {percent} % of new requests go to {to}")
}

/// The line that tells people how the shift will go.
pub fn schedule_line(schedule: &Schedule, to: &str) -> String {
    if schedule.over.is_zero() {
        format!("version {to} is up; moving all new requests to it at once")
    } else {
        format!(
            "version {to} is up; shifting new requests to it in steps of {} % over {:.1} s",
            schedule
                .steps
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            schedule.over.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// A clock that moves only when the driver sleeps.
    struct FakeClock(Mutex<Instant>);

    impl FakeClock {
        fn new() -> FakeClock {
            FakeClock(Mutex::new(Instant::now()))
        }

        /// Resolves once the clock reaches `at`.
        async fn reaches(&self, at: Instant) {
            while self.now() < at {
                tokio::task::yield_now().await;
            }
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }

        fn sleep(&self, duration: Duration) -> Boxed<'_, ()> {
            *self.0.lock().unwrap() += duration;
            Box::pin(tokio::task::yield_now())
        }
    }

    /// Traffic that records each share it was given, and fails the first
    /// `failures` times.
    #[derive(Default)]
    struct FakeTraffic {
        given: Mutex<Vec<u8>>,
        failures: AtomicU32,
    }

    impl Traffic for FakeTraffic {
        fn shift(&self, percent: u8) -> Boxed<'_, anyhow::Result<()>> {
            Box::pin(async move {
                if self
                    .failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    anyhow::bail!("the API server is away");
                }
                self.given.lock().unwrap().push(percent);
                Ok(())
            })
        }
    }

    impl FakeTraffic {
        fn given(&self) -> Vec<u8> {
            self.given.lock().unwrap().clone()
        }

        fn percent(&self) -> u8 {
            self.given().last().copied().unwrap_or(0)
        }
    }

    /// Load as the listeners would count it: 100 requests between two
    /// looks, split by the share in force; B fails `b_fails` in 100.
    struct FakeLoad<'a> {
        traffic: &'a FakeTraffic,
        counts: Mutex<(Counts, Counts)>,
        b_fails: u64,
        blind: AtomicBool,
    }

    impl<'a> FakeLoad<'a> {
        fn new(traffic: &'a FakeTraffic, b_fails: u64) -> FakeLoad<'a> {
            FakeLoad {
                traffic,
                counts: Mutex::default(),
                b_fails,
                blind: AtomicBool::new(false),
            }
        }
    }

    impl Observed for FakeLoad<'_> {
        fn counts(&self) -> Boxed<'_, anyhow::Result<(Counts, Counts)>> {
            Box::pin(async move {
                if self.blind.load(Ordering::SeqCst) {
                    anyhow::bail!("no ingress answers");
                }
                let to_b = u64::from(self.traffic.percent());
                let mut counts = self.counts.lock().unwrap();
                let (a, b) = &mut *counts;
                a.requests += 100 - to_b;
                b.requests += to_b;
                b.failed_requests += to_b * self.b_fails / 100;
                Ok(*counts)
            })
        }
    }

    #[derive(Default)]
    struct Heard(Vec<Event>);

    impl Watcher for Heard {
        fn event(&mut self, event: Event) -> Boxed<'_, ()> {
            self.0.push(event);
            Box::pin(async {})
        }
    }

    impl Heard {
        fn shifts(&self) -> Vec<(usize, u8)> {
            self.0
                .iter()
                .filter_map(|e| match e {
                    Event::Shifted { step, percent, .. } => Some((*step, *percent)),
                    _ => None,
                })
                .collect()
        }
    }

    fn setup(over: u64) -> Setup {
        Setup::new(
            Schedule {
                steps: vec![10, 25, 50, 100],
                over: Duration::from_secs(over),
            },
            Gate::default(),
        )
    }

    async fn run(
        setup: Setup,
        traffic: &FakeTraffic,
        load: &FakeLoad<'_>,
        heard: &mut Heard,
        clock: &FakeClock,
        stop: impl Future<Output = ()>,
    ) -> Ending {
        let seams = Seams {
            traffic,
            observed: load,
            watcher: heard,
            clock,
        };
        drive(setup, seams, stop).await
    }

    #[tokio::test]
    async fn a_healthy_version_gets_every_step_then_everything() {
        let (clock, traffic) = (FakeClock::new(), FakeTraffic::default());
        let load = FakeLoad::new(&traffic, 0);
        let mut heard = Heard::default();
        let start = clock.now();
        let ending = run(
            setup(30),
            &traffic,
            &load,
            &mut heard,
            &clock,
            std::future::pending(),
        )
        .await;
        assert_eq!(ending, Ending::Done);
        assert_eq!(traffic.given(), [10, 25, 50, 100]);
        assert_eq!(heard.shifts(), [(1, 10), (2, 25), (3, 50)]);
        // The steps took the schedule's time, not less.
        let took = clock.now() - start;
        assert!(
            took >= Duration::from_secs(30) && took < Duration::from_secs(31),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_failing_version_is_rolled_back_at_its_first_step() {
        let (clock, traffic) = (FakeClock::new(), FakeTraffic::default());
        let load = FakeLoad::new(&traffic, 50);
        let mut heard = Heard::default();
        let ending = run(
            setup(30),
            &traffic,
            &load,
            &mut heard,
            &clock,
            std::future::pending(),
        )
        .await;
        let Ending::RolledBack(verdict) = ending else {
            panic!("rolled back, not {ending:?}");
        };
        assert_eq!(verdict.what, "requests at the listeners");
        assert!(
            verdict.b.1 >= 20,
            "judged on at least 20 requests: {verdict:?}"
        );
        // It never went past 10 %, and A has everything again.
        assert_eq!(traffic.given(), [10, 0]);
    }

    #[tokio::test]
    async fn a_driver_that_stops_leaves_the_share_and_a_new_one_goes_on() {
        let (clock, traffic) = (FakeClock::new(), FakeTraffic::default());
        let load = FakeLoad::new(&traffic, 0);
        let mut heard = Heard::default();
        // Stopped 16 s into a 30 s shift: 10 and 25 % were given (25 % at 10 s).
        let stop = clock.reaches(clock.now() + Duration::from_secs(16));
        let ending = run(setup(30), &traffic, &load, &mut heard, &clock, stop).await;
        assert!(
            matches!(&ending, Ending::Stopped(why) if why.contains("25 %")),
            "{ending:?}"
        );
        assert_eq!(traffic.given(), [10, 25]);

        // A new driver, as a second `weft rollout` would start, goes on
        // from 25 %: it gives 25 % again, then the steps that remain, 10 s apart.
        let mut again = setup(30);
        again.resume_at = Some(traffic.percent());
        let mut heard = Heard::default();
        let start = clock.now();
        let ending = run(
            again,
            &traffic,
            &load,
            &mut heard,
            &clock,
            std::future::pending(),
        )
        .await;
        assert_eq!(ending, Ending::Done);
        assert_eq!(traffic.given(), [10, 25, 25, 50, 100]);
        assert_eq!(heard.shifts(), [(3, 50)]);
        assert!(clock.now() - start >= Duration::from_secs(20));
    }

    #[tokio::test]
    async fn a_driver_that_cannot_see_the_counts_holds_then_stops_where_it_is() {
        let (clock, traffic) = (FakeClock::new(), FakeTraffic::default());
        let load = FakeLoad::new(&traffic, 0);
        load.blind.store(true, Ordering::SeqCst);
        let mut heard = Heard::default();
        let ending = run(
            setup(10),
            &traffic,
            &load,
            &mut heard,
            &clock,
            std::future::pending(),
        )
        .await;
        assert!(
            matches!(&ending, Ending::Stopped(why) if why.contains("no ingress answers")),
            "{ending:?}"
        );
        // Not one step was taken blind.
        assert!(traffic.given().is_empty());
        assert!(heard.0.iter().any(|e| matches!(e, Event::Trouble(_))));
    }

    #[tokio::test]
    async fn a_shift_that_fails_is_tried_again() {
        let (clock, traffic) = (FakeClock::new(), FakeTraffic::default());
        traffic.failures.store(8, Ordering::SeqCst);
        let load = FakeLoad::new(&traffic, 0);
        let mut heard = Heard::default();
        let ending = run(
            setup(10),
            &traffic,
            &load,
            &mut heard,
            &clock,
            std::future::pending(),
        )
        .await;
        assert_eq!(ending, Ending::Done);
        assert_eq!(traffic.given(), [10, 25, 50, 100]);
        assert_eq!(heard.shifts()[0], (1, 10));
    }
}
