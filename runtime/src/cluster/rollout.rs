//! `weft rollout --kube` and `weft rollback --kube`: a rollout in a
//! cluster, driven from outside it through kubectl.
//!
//! The driver ([`crate::deploy::driver`]) is the one `weft deploy` runs; in
//! a cluster its seams are:
//!
//! - **Traffic** ([`TableTraffic`]): the traffic table in the ConfigMap
//!   `A-traffic`. A shift writes the next generation of the table and
//!   waits until every ingress replica says it follows it.
//! - **Counts** ([`IngressCounts`]): any ingress replica's `GET /traffic`,
//!   through the API server's service proxy: every replica's requests and
//!   failures per version, and the calls each version's workers served.
//!
//! Everything a second run needs is in the cluster: the table records the
//! rollout under way, so a run that was interrupted leaves both versions
//! serving at the last share, and the next `weft rollout --kube` of the
//! same files resumes it (or `weft rollback --kube` ends it).

use super::kubectl::Kubectl;
use crate::deploy::driver::{
    self, Boxed, Ending, Event, Observed, Seams, Setup, SystemClock, Traffic, Watcher,
    schedule_line, shifted_line,
};
use crate::deploy::rollout::Counts;
use crate::kube::edge::{EdgeNames, STATUS_PORT_NAME};
use crate::kube::traffic::{RolloutRecord, TrafficReport, TrafficTable, VersionRoute};
use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use std::time::{Duration, Instant};

/// How long a shift may take to be in force on every ingress replica.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(15);
/// How often readiness and reports are asked again while waiting.
const POLL: Duration = Duration::from_millis(500);

/// A version to roll out: its objects, ready to apply, and how the
/// ingress reaches it.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The version.
    pub version: String,
    /// Its TLS Secrets and its objects, as one YAML stream.
    pub yaml: String,
    /// Its route, with no share yet.
    pub route: VersionRoute,
}

/// What the command was asked, beyond the version.
#[derive(Debug, Clone)]
pub struct Ask {
    /// How the driver shifts and judges.
    pub setup: Setup,
    /// How long the new version's pods may take to be ready.
    pub ready_timeout: Duration,
    /// How long the old version's requests in flight may take to finish.
    pub drain_timeout: Duration,
    /// How many versions' ConfigMaps are kept for `weft rollback --kube`.
    pub keep: usize,
    /// Whether this goes back to a kept version (`weft rollback --kube`).
    pub rollback: bool,
}

/// One app in one cluster, as kubectl reaches it.
pub struct Cluster {
    kubectl: Kubectl,
    app: String,
    namespace: String,
}

impl Cluster {
    /// App `app` in the namespace kubectl acts in.
    pub async fn new(kubectl: Kubectl, app: &str) -> anyhow::Result<Cluster> {
        let namespace = kubectl.namespace().await?;
        Ok(Cluster {
            kubectl,
            app: app.to_string(),
            namespace,
        })
    }

    fn names(&self) -> EdgeNames<'_> {
        EdgeNames::new(&self.app)
    }

    /// The traffic table, or why there is none.
    pub async fn table(&self) -> anyhow::Result<TrafficTable> {
        let name = self.names().traffic();
        let map: ConfigMap = self
            .kubectl
            .get("configmap", &name)
            .await?
            .with_context(|| {
                format!(
                    "app '{}' has no traffic table (ConfigMap {name}) in namespace {}: deploy its \
                     first version with `weft kube` (its --secret output, then its objects) and \
                     kubectl apply",
                    self.app, self.namespace
                )
            })?;
        TrafficTable::from_config_map(&map)
    }

    /// Writes `table` as the traffic table.
    async fn write_table(&self, table: &TrafficTable) -> anyhow::Result<()> {
        let object =
            crate::kube::edge::traffic_object(&self.app, table, self.kubectl.namespace.as_deref());
        self.kubectl
            .apply(&crate::kube::render("", &[object]))
            .await
            .context("writing the traffic table")
    }

    /// Every ingress replica's counts, and the workers' calls.
    pub async fn report(&self) -> anyhow::Result<TrafficReport> {
        let path = format!(
            "/api/v1/namespaces/{}/services/http:{}:{STATUS_PORT_NAME}/proxy/traffic",
            self.namespace,
            self.names().ingress()
        );
        let text = self.kubectl.raw(&path).await.with_context(|| {
            format!(
                "cannot ask the ingress of app '{}' for its counts; is its Deployment {} ready?",
                self.app,
                self.names().ingress()
            )
        })?;
        serde_json::from_str(&text).context("the ingress's answer is not a traffic report")
    }

    /// Writes `table` and waits until every ingress replica follows it.
    async fn put_in_force(&self, table: &TrafficTable) -> anyhow::Result<()> {
        self.write_table(table).await?;
        let deadline = Instant::now() + FOLLOW_TIMEOUT;
        loop {
            let report = self.report().await;
            if let Ok(report) = &report
                && report.follows(table.generation)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let seen = match report {
                    Ok(r) => r
                        .replicas
                        .iter()
                        .map(|r| format!("{} follows {}", r.name, r.generation))
                        .collect::<Vec<_>>()
                        .join(", "),
                    Err(e) => format!("{e:#}"),
                };
                anyhow::bail!(
                    "the ingress replicas did not all follow traffic table {} within {} s ({seen})",
                    table.generation,
                    FOLLOW_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The selector of one version's objects.
    fn version_selector(&self, version: &str) -> String {
        format!("weft.dev/app={},weft.dev/version={version}", self.app)
    }

    /// Waits until every Deployment of `version` has all its replicas ready.
    async fn wait_ready(&self, version: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let selector = self.version_selector(version);
        loop {
            let deployments: Vec<Deployment> = self.kubectl.list("deployments", &selector).await?;
            let waiting: Vec<String> = deployments
                .iter()
                .filter(|d| {
                    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(1);
                    let ready = d
                        .status
                        .as_ref()
                        .and_then(|s| s.ready_replicas)
                        .unwrap_or(0);
                    ready < want
                })
                .map(|d| d.metadata.name.clone().unwrap_or_default())
                .collect();
            if !deployments.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "its Deployments were not ready within {} s: {}; see `kubectl describe \
                     deployment -l {selector}` and its pods' logs",
                    timeout.as_secs(),
                    if deployments.is_empty() {
                        "none was found".to_string()
                    } else {
                        waiting.join(", ")
                    }
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Says so when the new version has a listener that the ingress, as
    /// `weft kube` last configured it, does not serve.
    async fn warn_of_unserved_listeners(
        &self,
        new: &NewVersion,
        say: &mut (dyn FnMut(String) + Send),
    ) {
        let name = self.names().ingress();
        let Ok(Some(map)) = self.kubectl.get::<ConfigMap>("configmap", &name).await else {
            return;
        };
        let Ok(config) = crate::kube::traffic::IngressConfig::from_config_map(&map) else {
            return;
        };
        for listener in new.route.listeners.keys() {
            if !config.listeners.contains_key(listener) {
                say(format!(
                    "warning: version {} has listener '{listener}', which the ingress does not \
                     serve; to add it, apply the ConfigMap {name} (and the listener's Service) \
                     from the output of `weft kube --image IMAGE`, then `kubectl rollout \
                     restart deployment {name}`",
                    new.version
                ));
            }
        }
    }

    /// Waits until every ingress replica reaches a pod of `version` for
    /// every listener, so that its first share is served.
    async fn wait_reached(&self, version: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let report = self.report().await;
            if report.as_ref().is_ok_and(|r| r.reaches(version)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the ingress replicas did not find version {version}'s pods within {} s                      (its listener group's headless Service lists its ready pods); nothing                      moved",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until no ingress replica has a request of `version` in flight.
    async fn drained(&self, version: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.report().await {
                Ok(r) if r.versions.get(version).is_none_or(|c| c.in_flight == 0) => return,
                _ => tokio::time::sleep(POLL).await,
            }
        }
        tracing::warn!(
            "version {version} still had requests in flight after {} s; stopping it anyway",
            timeout.as_secs()
        );
    }

    /// Deletes `version`'s workers, Services and Secrets, and its
    /// ConfigMap unless it is kept for rollbacks.
    async fn delete_version(&self, version: &str, keep_config: bool) -> anyhow::Result<()> {
        let kinds = if keep_config {
            "deployment,service,secret,horizontalpodautoscaler"
        } else {
            "deployment,service,secret,horizontalpodautoscaler,configmap"
        };
        self.kubectl
            .delete(kinds, &self.version_selector(version))
            .await
    }

    /// Rolls out `new` as `ask` says, telling `say` how it goes; returns
    /// the last line once the new version serves everything (or already
    /// did), and fails with why when it was refused, rolled back or stopped.
    pub async fn roll_out(
        &self,
        new: NewVersion,
        ask: Ask,
        say: &mut (dyn FnMut(String) + Send),
    ) -> anyhow::Result<String> {
        let mut table = self.table().await?;
        let to = new.version.clone();
        let mut setup = ask.setup.clone();
        let from = match &table.rollout {
            Some(record) if record.to == to => {
                let percent = table.versions.get(&to).map_or(0, |r| r.weight);
                say(format!(
                    "resuming the rollout of version {to} (from {}) at {percent} %",
                    record.from
                ));
                setup.resume_at = Some(percent);
                record.from.clone()
            }
            Some(record) => anyhow::bail!(
                "a rollout from version {} to {} is under way in the cluster; run `weft rollout \
                 --kube` with {}'s files to finish it, or `weft rollback --kube` to end it",
                record.from,
                record.to,
                record.to
            ),
            None => {
                let from = table
                    .serving()
                    .context("the traffic table names no version; apply the first version's objects with `weft kube`")?
                    .to_string();
                if from == to {
                    return Ok(format!("version {to} is already running; nothing to do"));
                }
                let verb = if ask.rollback {
                    "rolling back to"
                } else {
                    "rolling out"
                };
                say(format!(
                    "{verb} version {to} (from {from}): starting its workers"
                ));
                // Recorded first, so that a run stopped from here on can be
                // resumed, or ended by `weft rollback --kube`.
                table.versions.insert(to.clone(), new.route.clone());
                table.rollout = Some(RolloutRecord {
                    from: from.clone(),
                    to: to.clone(),
                    steps: setup.schedule.steps.clone(),
                    over_ms: u64::try_from(setup.schedule.over.as_millis()).unwrap_or(u64::MAX),
                });
                table.generation += 1;
                self.put_in_force(&table).await?;
                from
            }
        };
        self.warn_of_unserved_listeners(&new, say).await;
        self.kubectl.apply(&new.yaml).await?;
        let started = async {
            self.wait_ready(&to, ask.ready_timeout).await?;
            self.wait_reached(&to, ask.ready_timeout).await
        };
        if let Err(e) = started.await {
            self.forget(&to, &from).await?;
            anyhow::bail!(
                "version {to} could not start, so no traffic moved: {e:#}\nversion {from} keeps \
                 all the traffic"
            );
        }
        say(schedule_line(&setup.schedule, &to));
        let traffic = TableTraffic {
            cluster: self,
            from: from.clone(),
            to: to.clone(),
        };
        let counts = IngressCounts {
            cluster: self,
            from: from.clone(),
            to: to.clone(),
        };
        let mut watcher = Lines {
            say,
            to: to.clone(),
        };
        let seams = Seams {
            traffic: &traffic,
            observed: &counts,
            watcher: &mut watcher,
            clock: &SystemClock,
        };
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match driver::drive(setup, seams, stop).await {
            Ending::Done => {
                say(format!(
                    "{to} has all new requests; letting {from}'s requests finish, then stopping it"
                ));
                self.retire(&from, &to, &ask).await?;
                Ok(format!(
                    "version {to} serves all requests; {from} is stopped"
                ))
            }
            Ending::RolledBack(verdict) => {
                self.drained(&to, ask.drain_timeout).await;
                self.forget(&to, &from).await?;
                anyhow::bail!("rolled back to {from}: {verdict}; version {to} is stopped")
            }
            Ending::Stopped(why) => anyhow::bail!(
                "{why}; both versions keep serving. Run `weft rollout --kube` with the same files \
                 to go on, or `weft rollback --kube` to go back to {from}"
            ),
        }
    }

    /// Ends the rollout that is under way, if one is: the version it
    /// started from gets everything again, and the new one is deleted.
    pub async fn end_rollout(&self, drain: Duration) -> anyhow::Result<Option<String>> {
        let table = self.table().await?;
        let Some(record) = table.rollout.clone() else {
            return Ok(None);
        };
        let back = table.with_weights(&[(&record.from, 100), (&record.to, 0)]);
        self.put_in_force(&back).await?;
        self.drained(&record.to, drain).await;
        self.forget(&record.to, &record.from).await?;
        Ok(Some(format!(
            "rolled back to {}; version {} is stopped",
            record.from, record.to
        )))
    }

    /// Takes `to` out of the table (and the rollout record), and deletes
    /// all of it: it failed, or was rolled back, so nothing of it is kept.
    async fn forget(&self, to: &str, from: &str) -> anyhow::Result<()> {
        let mut table = self.table().await?;
        table.versions.remove(to);
        if let Some(route) = table.versions.get_mut(from) {
            route.weight = 100;
        }
        table.rollout = None;
        table.generation += 1;
        self.put_in_force(&table).await?;
        self.delete_version(to, false).await
    }

    /// After a rollout: lets `from` finish, takes it out of the table, and
    /// deletes it, keeping the ConfigMaps of the last `keep` versions.
    async fn retire(&self, from: &str, to: &str, ask: &Ask) -> anyhow::Result<()> {
        self.drained(from, ask.drain_timeout).await;
        let mut table = self.table().await?;
        table.versions.remove(from);
        table.rollout = None;
        table.history.retain(|v| v != to);
        table.history.push(to.to_string());
        let keep = ask.keep.max(1);
        let dropped: Vec<String> = table.history.iter().rev().skip(keep).cloned().collect();
        table.history.retain(|v| !dropped.contains(v));
        table.generation += 1;
        self.put_in_force(&table).await?;
        self.delete_version(from, table.history.iter().any(|v| v == from))
            .await?;
        for version in dropped {
            self.kubectl
                .delete("configmap", &self.version_selector(&version))
                .await?;
        }
        Ok(())
    }

    /// The ConfigMap of a version kept for rollbacks: the one `to` names,
    /// else the newest kept one other than the version serving now.
    pub async fn kept_version(&self, to: Option<&str>) -> anyhow::Result<ConfigMap> {
        let table = self.table().await?;
        let serving = table.serving().unwrap_or_default().to_string();
        let version = match to {
            Some(v) => v.to_string(),
            None => table
                .history
                .iter()
                .rev()
                .find(|v| **v != serving)
                .cloned()
                .context(
                    "the cluster keeps no earlier version to roll back to (weft rollout --kube \
                     --keep)",
                )?,
        };
        let maps: Vec<ConfigMap> = self
            .kubectl
            .list("configmap", &self.version_selector(&version))
            .await?;
        maps.into_iter().next().with_context(|| {
            format!(
                "version {version} is not kept in the cluster (no ConfigMap labelled \
                 weft.dev/version={version}); the last {} versions are kept",
                table.history.len()
            )
        })
    }
}

/// The traffic table, as the driver's traffic.
struct TableTraffic<'a> {
    cluster: &'a Cluster,
    from: String,
    to: String,
}

impl Traffic for TableTraffic<'_> {
    fn shift(&self, percent: u8) -> Boxed<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let table = self.cluster.table().await?;
            let next = table.with_weights(&[(&self.from, 100 - percent), (&self.to, percent)]);
            self.cluster.put_in_force(&next).await
        })
    }
}

/// The ingress's report, as the driver's counts.
struct IngressCounts<'a> {
    cluster: &'a Cluster,
    from: String,
    to: String,
}

impl Observed for IngressCounts<'_> {
    fn counts(&self) -> Boxed<'_, anyhow::Result<(Counts, Counts)>> {
        Box::pin(async move {
            let report = self.cluster.report().await?;
            let of = |version: &str| {
                let c = report.versions.get(version).copied().unwrap_or_default();
                Counts {
                    requests: c.requests,
                    failed_requests: c.failed_requests,
                    calls: c.calls,
                    failed_calls: c.failed_calls,
                }
            };
            Ok((of(&self.from), of(&self.to)))
        })
    }
}

/// Tells people each step.
struct Lines<'a> {
    say: &'a mut (dyn FnMut(String) + Send),
    to: String,
}

impl Watcher for Lines<'_> {
    fn event(&mut self, event: Event) -> Boxed<'_, ()> {
        match event {
            Event::Shifted {
                step,
                steps,
                percent,
            } => (self.say)(shifted_line(step, steps, percent, &self.to)),
            Event::Trouble(why) => tracing::warn!("rollout to {}: {why}", self.to),
            Event::Observed { .. } => {}
        }
        Box::pin(async {})
    }
}
